"""Training: AdamW with warm-up and cosine decay, gradient clipping, AMP on CUDA, a progress bar, a JSONL log
per epoch, early stopping on dev CER, and `last`/`best` checkpoints that hold everything needed to resume
to the same model an uninterrupted run gives (model, optimizer, scheduler, sampler and RNG state).

Under torchrun (`torchrun --nproc-per-node N -m speechrnn.train CONFIG [key=value ...] [--resume]`) each process
trains a DistributedDataParallel replica on its share of every epoch's batches (NCCL on CUDA, gloo on CPU); rank 0
alone evaluates, prints, logs and writes checkpoints, which hold the plain model and resume on any number of
processes."""

import contextlib
import hashlib
import io
import json
import math
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from .bundle import atomic_save, save_bundle
from .config import Config, to_dict
from .data import BucketBatchSampler, collate, load_dataset, manifest_texts
from .decode import greedy_decode
from .errors import UserError
from .features import Cmvn, CmvnAccumulator
from .metrics import error_rates
from .model import CTCModel, build_model
from .text import Tokenizer, normalize


def select_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def ctc_frames_needed(tokens: list[int]) -> int:
    """CTC needs one frame per token plus one blank between each pair of repeated tokens."""
    return len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))


def keep_trainable(dataset, tokenizer: Tokenizer, model: CTCModel, where: str):
    """The dataset without (and counting) samples with no text or too short for their transcript under CTC."""
    frames = model.output_lengths(torch.tensor(dataset.input_lengths, dtype=torch.long)).tolist()
    keep, empty, too_short = [], 0, 0
    for index, (tokens, num_frames) in enumerate(zip(dataset.tokens, frames)):
        if not tokens:
            empty += 1
        elif num_frames < ctc_frames_needed(tokens):
            too_short += 1
        else:
            keep.append(index)
    if empty or too_short:
        print(f"warning: {where}: skipped {empty} sample(s) with empty text and {too_short} too short for "
              f"their transcript under CTC", file=sys.stderr)
    return dataset.subset(keep)


def make_loader(dataset, config: Config, shuffle: bool, seed: int, num_replicas: int = 1, rank: int = 0) -> DataLoader:
    """Length-bucketed batches; with `num_replicas` > 1, rank `rank`'s share of them (see BucketBatchSampler)."""
    sampler = BucketBatchSampler(dataset.frame_lengths, config.data.max_frames, shuffle=shuffle, seed=seed,
                                 max_batch_size=config.data.max_batch_size, num_replicas=num_replicas, rank=rank)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=config.data.num_workers)


def compute_cmvn(frontend: Cmvn, loader: DataLoader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and std of the front-end's features (before CMVN) over every valid frame of `loader`."""
    accumulator = CmvnAccumulator(frontend.cmvn_mean.numel())
    with torch.no_grad():
        for batch in tqdm(loader, desc="cmvn stats", unit="batch", disable=None, leave=False):
            if not batch["ids"]:
                continue
            feats, lens = frontend.raw(batch["inputs"].to(device), batch["input_lens"].to(device))
            accumulator.add(feats.cpu(), lens.cpu())
    return accumulator.result()


@torch.no_grad()
def evaluate(model: CTCModel, loader: DataLoader, tokenizer: Tokenizer, device: torch.device, beam=None) -> dict:
    """Decode a loader greedily, or with `beam` (a decode.BeamDecoder). Returns ids, refs (normalised), hyps,
    mean CTC loss and the error rates."""
    model.eval()
    ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    ids, refs, hyps, loss_sum, token_count = [], [], [], 0.0, 0
    for batch in loader:
        if not batch["ids"]:
            continue
        log_probs, lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        loss_sum += float(ctc(log_probs.transpose(0, 1), batch["tokens"].to(device), lens, batch["token_lens"].to(device)))
        token_count += int(batch["token_lens"].sum())
        ids += batch["ids"]
        refs += [normalize(t, tokenizer.config) for t in batch["texts"]]
        if beam is None:
            hyps += [tokenizer.decode(seq) for seq in greedy_decode(log_probs, lens)]
        else:
            hyps += [nbest[0].text for nbest in beam.decode(log_probs.cpu(), lens.cpu())]
    return {"ids": ids, "refs": refs, "hyps": hyps, "loss": loss_sum / max(token_count, 1),
            "rates": error_rates(refs, hyps)}


def lr_lambda(warmup: int, total: int, final_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def ctc_gradient_fix(scores: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Zero in value; in gradient it removes the exp(scores) term torch's CTC backward adds (its formula assumes
    log-softmax inputs), so CTC on unnormalised scores (B, T, V) gets its true gradient (checked by gradcheck in
    tests/test_aligner.py)."""
    valid = (torch.arange(scores.shape[1], device=scores.device)[None, :] < lens[:, None]).unsqueeze(-1)  # (B, T, 1)
    term = (scores * (scores.detach().exp() * valid)).sum()
    return term.detach() - term


def with_edge_token(tokens: torch.Tensor, token_lens: torch.Tensor, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded targets (B, L) -> (B, L + 2) with `token` before and after each target's own tokens."""
    edged = torch.zeros(tokens.shape[0], tokens.shape[1] + 2, dtype=tokens.dtype, device=tokens.device)
    edged[:, 0] = token
    edged[:, 1:-1] = tokens
    edged[torch.arange(tokens.shape[0], device=tokens.device), token_lens + 1] = token
    return edged, token_lens + 2


def train_one_epoch(model: CTCModel, loader: DataLoader, optimizer, scheduler, scaler, amp_dtype, grad_clip: float,
                    device: torch.device, desc: str, edge_token: int | None = None) -> tuple[float, int, int]:
    """One pass over `loader` with a progress bar. Returns (summed CTC loss, target tokens, utterances).
    `edge_token` (model.edge_silence): the id put before and after every target.

    With `model` a DistributedDataParallel replica each step's gradient is the mean over the ranks of their
    batch's loss per token, and only rank 0 shows the bar; the sums returned are this rank's."""
    ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    loss_sum, token_sum, utt_count, started = 0.0, 0, 0, time.time()
    distributed = isinstance(model, DistributedDataParallel)
    # on a terminal a live bar; in a log file (nohup, CI) a progress line a minute
    interactive = sys.stderr.isatty()
    bar = tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True, file=sys.stderr,
               mininterval=0.1 if interactive else 60, ascii=not interactive,
               disable=distributed and dist.get_rank() > 0)
    for batch in bar:
        if distributed:  # a batch none of whose files loaded is skipped by every rank, or the others would wait for it
            empty = torch.tensor([0 if batch["ids"] else 1], device=device)
            dist.all_reduce(empty, op=dist.ReduceOp.MAX)
            if empty.item():
                continue
        elif not batch["ids"]:
            continue
        tokens, token_lens = batch["tokens"].to(device), batch["token_lens"].to(device)
        if edge_token is not None:
            tokens, token_lens = with_edge_token(tokens, token_lens, edge_token)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            log_probs, lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        core = model.module if distributed else model
        if core.prior_scale:
            scores = core.alignment_scores(log_probs)  # (B, T, V), no longer normalised per frame
            loss = ctc(scores.transpose(0, 1), tokens, lens, token_lens) + ctc_gradient_fix(scores, lens)
            core.update_prior(log_probs, lens)
        else:
            loss = ctc(log_probs.transpose(0, 1), tokens, lens, token_lens)  # (B, T, V) -> (T, B, V)
        tokens_in_batch = int(token_lens.sum())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss / tokens_in_batch).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += float(loss.detach())
        token_sum += tokens_in_batch
        utt_count += len(batch["ids"])
        bar.set_postfix(loss=f"{loss_sum / token_sum:.3f}", utt_s=f"{utt_count / (time.time() - started):.1f}",
                        lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
    bar.close()
    return loss_sum, token_sum, utt_count


@dataclass
class TrainResult:
    best_epoch: int
    best_dev_cer: float
    epochs: int
    seconds: float
    bundle: Path


def init_weights_from(model: CTCModel, path: str, tokenizer: Tokenizer, announce: bool = True) -> None:
    """Start `model` from the recognizer bundle `path` (same features and vocabulary): every tensor of the same
    shape is copied, CMVN statistics included. From a bidirectional bundle into a unidirectional model each layer
    takes the bundle's direction that reads the same way (backward for model.rnn.reverse), reading only that
    direction's half of the layer below (the CTC head likewise), so a streaming model or an aligner
    (recipes/an4/aligner.sh) starts from an offline recognizer."""
    from .bundle import load_bundle

    bundle = load_bundle(path)
    if bundle["tokenizer"] != tokenizer.to_dict():
        raise UserError(f"train.init_from={path}: its vocabulary differs from this run's; start from a bundle trained "
                        f"on the same text settings")
    source, target = bundle["state_dict"], model.state_dict()
    reverse = model.encoder.rnn.config.reverse and any(".backward_layers." in name for name in source)
    copied = 0
    for name, value in target.items():
        weight = source.get(name.replace(".forward_layers.", ".backward_layers.") if reverse else name)
        if weight is not None and weight.dim() == 2 and weight.shape[0] == value.shape[0] \
                and weight.shape[1] == 2 * value.shape[1]:  # (out, 2H) -> (out, H): one direction's half
            weight = weight[:, value.shape[1]:] if reverse else weight[:, : value.shape[1]]
        if weight is not None and weight.shape == value.shape:
            value.copy_(weight)
            copied += 1
    if announce:
        print(f"initialised {copied} of {len(target)} tensors from {path}", file=sys.stderr)


def world() -> tuple[int, int]:
    """(rank, world size) of this process: the initialised process group's, else torchrun's environment's."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def fingerprint(*values) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def check_same_on_every_rank(config: Config, train_set, resumed_after: int) -> None:
    """Stop every rank with the reason when a rank's config, training data or checkpoint differs from rank 0's."""
    mine = {"config": fingerprint(to_dict(config)), "samples": len(train_set), "resumed": resumed_after,
            "data": train_set.fingerprint()}
    ranks = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, mine)
    first = ranks[0]
    for rank, theirs in enumerate(ranks):
        if theirs["config"] != first["config"]:
            raise UserError(f"rank {rank} has another config than rank 0: start every process with the same config "
                            "file and key=value overrides")
        if theirs["data"] != first["data"]:
            raise UserError(f"{config.data.train_manifest}: rank {rank} reads other training data than rank 0 "
                            f"({theirs['samples']} usable samples against {first['samples']}, or other texts or "
                            "lengths); every process must read the same manifest and audio (identical copies on "
                            "every machine)")
        if theirs["resumed"] != first["resumed"]:
            raise UserError(f"{Path(config.train.exp_dir) / 'last.pt'}: rank {rank} resumes after epoch "
                            f"{theirs['resumed']} but rank 0 after epoch {first['resumed']} (0: from scratch); "
                            "train.exp_dir must be one folder that every machine shares")


def from_rank0(*values) -> list:
    """`values` as rank 0 has them. Every rank calls this: the others wait in it while rank 0 evaluates and writes."""
    shared = list(values)
    dist.broadcast_object_list(shared, src=0)
    return shared


def train(config: Config, resume: bool = False) -> TrainResult:
    """Train a model (see the module's docstring). Under torchrun with WORLD_SIZE > 1, or in a process group the
    caller initialised, with DistributedDataParallel; a rank that dies or does not answer within
    train.dist_timeout seconds makes the others stop with a UserError that says so."""
    device = select_device(config.train.device)
    rank, world_size = world()
    if world_size == 1:
        return train_process(config, resume, device)
    timeout = float(config.train.dist_timeout)
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started_group = not dist.is_initialized()
    try:
        if started_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout),
                                    device_id=device if device.type == "cuda" else None)
        return train_process(config, resume, device)
    except RuntimeError as err:  # gloo reports a lost peer as a plain RuntimeError, NCCL and the store as DistError
        if not (isinstance(err, dist.DistError) or "gloo" in str(err)):
            raise
        detail = re.sub(r"^\[\S*\] ", "", (str(err).strip().splitlines() or [type(err).__name__])[0]).split(". ")[0]
        raise UserError(f"rank {rank} of {world_size}: lost contact with the other training processes ({detail}): "
                        f"another rank died (see its own error) or did not answer within train.dist_timeout="
                        f"{timeout:g} s (raise it if a rank is only slow, e.g. rank 0 evaluating a large dev set)"
                        ) from None
    finally:
        if started_group and dist.is_initialized():
            dist.destroy_process_group()


def trim_log(log_path: Path, done: int) -> None:
    """Keep only the JSONL epoch records up to epoch `done` (the one a resumed checkpoint holds)."""
    kept = [line for line in log_path.read_text().splitlines() if line and json.loads(line)["epoch"] <= done]
    log_path.write_text("".join(line + "\n" for line in kept))


def restore_run(checkpoint: dict | None, exp_dir: Path, model, optimizer, scheduler, sampler, scaler=None) -> tuple:
    """The per-epoch trainers' (classify, tagger) resume: load `checkpoint` (from start_run; None: a fresh run) into
    the training objects and trim train_log.jsonl to its epochs. Returns (start_epoch, best_key, best_epoch, stale,
    train_seconds); best_key is (dev accuracy, -dev loss)."""
    state = (1, (-1.0, float("-inf")), 0, 0, 0.0)
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if scaler is not None:
            scaler.load_state_dict(checkpoint["scaler"])
        sampler.load_state_dict(checkpoint["sampler"])
        set_rng_state(checkpoint["rng"])
        state = (checkpoint["epoch"] + 1, tuple(checkpoint["best_key"]), checkpoint["best_epoch"], checkpoint["stale"],
                 checkpoint["train_seconds"])
        print(f"resumed from {exp_dir / 'last.pt'} after epoch {checkpoint['epoch']}", file=sys.stderr)
    log_path = exp_dir / "train_log.jsonl"
    if log_path.exists():  # keep only the epochs the checkpoint holds (none when starting afresh)
        trim_log(log_path, checkpoint["epoch"] if checkpoint else 0)
    return state


def init_cmvn(frontend: Cmvn, config, train_set, device: torch.device) -> None:
    """The front-end's CMVN from config.data.cmvn (`speechrnn stats`), else from the training inputs as they are
    (without augmentation)."""
    if config.data.cmvn:
        stats = torch.load(config.data.cmvn, map_location="cpu", weights_only=True)
        frontend.set_cmvn(stats["mean"], stats["std"])
    else:
        plain = make_loader(train_set.without_augmentation(), config, False, 0)
        frontend.set_cmvn(*compute_cmvn(frontend, plain, device))


def build_optimizer(model: torch.nn.Module, config) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas),
                             weight_decay=config.optim.weight_decay)


def compile_model(model: CTCModel) -> bool:
    """train.compile: the encoder's conv subsampling (convolutions, GELU, length masks, LayerNorm) compiled by
    torch.compile, in place (nn.Module.compile): `model` stays the plain module, so its state_dict keys (checkpoints,
    bundles, resume) carry no `_orig_mod.` prefix. False when there is none (model.conv_channels=0): nothing compiled.

    The rest runs eagerly, with the cuDNN/oneDNN RNN kernels. Compiling more measured no faster on CPU
    (benchmarks/bench_compile.py): the whole encoder breaks the graph at every nn.LSTM/GRU/RNN and recompiles
    `reverse_padded` per shape, stride and grad mode up to dynamo's recompile limit; tracing the recurrent layers
    (dynamo's allow_rnn) unrolls them over time (over 10 minutes of compiling, 1.7x slower steps); the whole model
    adds the STFT front-end (complex ops inductor leaves to eager) and SpecAugment's graph breaks."""
    if model.encoder.conv is None:
        return False
    model.encoder.conv.compile()
    return True


def start_run(config, resume: bool, announce: bool = True) -> tuple[Path, dict | None]:
    """Shared by the trainers: create exp_dir, set the CPU threads and the seeds; with `resume`, the exp_dir/last.pt
    checkpoint (None when there is none yet, or without `resume`)."""
    exp_dir = Path(config.train.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    checkpoint = None
    last = exp_dir / "last.pt"
    if resume and last.is_file():
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    elif resume and announce:
        print(f"note: --resume given but {last} does not exist; starting from scratch", file=sys.stderr)
    torch.manual_seed(config.train.seed)
    random.seed(config.train.seed)
    np.random.seed(config.train.seed)
    return exp_dir, checkpoint


def train_process(config: Config, resume: bool, device: torch.device) -> TrainResult:
    """The whole training, or with an initialised process group of several ranks this rank's part of it."""
    rank, world_size = world()
    distributed, main = world_size > 1, rank == 0  # main: the process that evaluates, prints and writes files
    exp_dir, checkpoint = start_run(config, resume, announce=main)

    tokenizer = (Tokenizer.from_dict(checkpoint["tokenizer"]) if checkpoint
                 else Tokenizer.build(manifest_texts(config.data.train_manifest), config.text))
    model = build_model(len(tokenizer), config, training=True).to(device)
    edge_token = None
    if config.model.edge_silence:
        if " " not in tokenizer.index:
            raise UserError("model.edge_silence needs a word separator (space) among the tokens; these texts have none")
        edge_token = tokenizer.index[" "]
    datasets = {}
    for name, training in (("train", True), ("dev", False))[: 2 if main else 1]:  # only rank 0 evaluates on dev
        manifest = getattr(config.data, f"{name}_manifest")
        with contextlib.nullcontext() if main else contextlib.redirect_stderr(io.StringIO()):  # warnings once
            dataset = keep_trainable(load_dataset(config, manifest, tokenizer, training), tokenizer, model, manifest)
            tokenizer.report_unknown(manifest)
        if not len(dataset):
            raise UserError(f"{manifest}: no usable samples (see the warnings above)")
        datasets[name] = dataset
    train_set = datasets["train"]
    if distributed:
        check_same_on_every_rank(config, train_set, checkpoint["epoch"] if checkpoint else 0)
    train_loader = make_loader(train_set, config, True, config.train.seed, world_size, rank)
    dev_loader = make_loader(datasets["dev"], config, False, 0) if main else None
    params = sum(p.numel() for p in model.parameters())
    if main:
        print(f"model: {params / 1e6:.2f} M parameters, vocabulary {len(tokenizer)}; train {len(train_set)} samples, "
              f"dev {len(datasets['dev'])} samples; device {device}"
              f"{f' x {world_size} processes' if distributed else ''}", file=sys.stderr)

    if not checkpoint and config.train.init_from:
        init_weights_from(model, config.train.init_from, tokenizer, announce=main)
    elif not checkpoint:
        init_cmvn(model.frontend, config, train_set, device)
    optimizer = build_optimizer(model, config)
    steps_per_epoch = len(train_loader.batch_sampler)  # per rank: each step takes one batch on every rank
    if not steps_per_epoch:
        raise UserError(f"{config.data.train_manifest}: {len(train_set)} samples make fewer batches than the "
                        f"{world_size} processes; lower data.max_frames or start fewer processes")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.optim.warmup_steps, steps_per_epoch * config.train.max_epochs,
                             config.optim.final_lr_ratio))
    use_amp = config.train.amp and device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)

    start_epoch, best_cer, best_epoch, stale, train_seconds = 1, float("inf"), 0, 0, 0.0
    if checkpoint:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        train_loader.batch_sampler.load_state_dict(checkpoint["sampler"])
        set_rng_state(checkpoint["rng"])
        start_epoch = checkpoint["epoch"] + 1
        best_cer, best_epoch, stale = checkpoint["best_cer"], checkpoint["best_epoch"], checkpoint["stale"]
        train_seconds = checkpoint["train_seconds"]
        if main:
            print(f"resumed from {exp_dir / 'last.pt'} after epoch {checkpoint['epoch']}", file=sys.stderr)
        trained_on = checkpoint.get("world_size", 1)
        if trained_on != world_size:
            # model, optimizer and sampler (epoch, seed) carry over to any number of processes, but an epoch now
            # takes another number of steps: the LR schedule (planned in steps) goes on at the same fraction
            sampler = train_loader.batch_sampler
            before = len(BucketBatchSampler(sampler.lengths, sampler.max_frames, seed=sampler.seed,
                                            max_batch_size=sampler.max_batch_size, num_replicas=trained_on))
            step = round(scheduler.last_epoch * steps_per_epoch / max(before, 1))
            if main:
                print(f"note: {exp_dir / 'last.pt'} was trained on {trained_on} process(es), this run has "
                      f"{world_size}: an epoch is {steps_per_epoch} steps instead of {before}, the LR schedule "
                      f"goes on at step {step} instead of {scheduler.last_epoch}", file=sys.stderr)
            scheduler.last_epoch = step - 1
            scheduler.step()
    if config.train.compile and not compile_model(model) and main:  # compiled on the first batches
        print("note: train.compile: the model has no conv subsampling (model.conv_channels=0), nothing to compile",
              file=sys.stderr)
    net = model
    if distributed:  # averages the gradients over the ranks in backward; `model` stays the plain module
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    writer = None
    if config.train.tensorboard and main:
        try:
            from torch.utils.tensorboard import SummaryWriter
            writer = SummaryWriter(str(exp_dir / "tensorboard"))
        except ImportError:
            pass
    log_path = exp_dir / "train_log.jsonl"
    if main and log_path.exists():  # keep only the epochs the checkpoint holds (none when starting afresh)
        trim_log(log_path, checkpoint["epoch"] if checkpoint else 0)

    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.train.max_epochs + 1):
        if config.train.patience and stale >= config.train.patience:
            break
        started = time.time()
        net.train()
        if model.specaugment is not None:
            model.specaugment.enabled = epoch >= config.specaugment.start_epoch
        train_loader.batch_sampler.set_epoch(epoch)
        train_set.epoch = epoch
        if distributed:  # each rank its own dropout and masks, drawn from (seed, epoch, rank): resumes draw the same
            torch.manual_seed(int(np.random.SeedSequence([config.train.seed, epoch, rank]).generate_state(1)[0]))
        loss_sum, token_sum, utt_count = train_one_epoch(
            net, train_loader, optimizer, scheduler, scaler, amp_dtype if use_amp else None, config.optim.grad_clip,
            device, f"epoch {epoch}/{config.train.max_epochs}", edge_token)
        if distributed:  # the log holds every rank's batches
            sums = torch.tensor([loss_sum, token_sum, utt_count], dtype=torch.float64, device=device)
            dist.all_reduce(sums)
            loss_sum, token_sum, utt_count = sums[0].item(), int(sums[1]), int(sums[2])
        epoch_seconds = time.time() - started
        train_seconds += epoch_seconds
        if not main:  # wait for rank 0's evaluation and checkpoint, and its word on early stopping
            best_cer, best_epoch, stale, train_seconds = from_rank0(best_cer, best_epoch, stale, train_seconds)
            continue
        dev = evaluate(model, dev_loader, tokenizer, device)
        rates = dev["rates"]
        improved = rates.cer < best_cer
        if improved:
            best_cer, best_epoch, stale = rates.cer, epoch, 0
        else:
            stale += 1
        record = {"epoch": epoch, "train_loss": loss_sum / max(token_sum, 1), "dev_loss": dev["loss"],
                  "dev_cer": rates.cer, "dev_wer": rates.wer, "lr": scheduler.get_last_lr()[0],
                  "epoch_seconds": round(epoch_seconds, 2), "utts_per_second": round(utt_count / epoch_seconds, 2),
                  "best_epoch": best_epoch}
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        if writer:
            for key in ("train_loss", "dev_loss", "dev_cer", "dev_wer", "lr"):
                writer.add_scalar(key, record[key], epoch)
        print(f"epoch {epoch}: train loss {record['train_loss']:.3f}, dev loss {dev['loss']:.3f}, dev CER "
              f"{100 * rates.cer:.2f} %, WER {100 * rates.wer:.2f} %, {epoch_seconds:.0f} s"
              f"{' (best)' if improved else ''}", file=sys.stderr)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict(), "sampler": train_loader.batch_sampler.state_dict(), "rng": rng_state(),
                 "epoch": epoch, "best_cer": best_cer, "best_epoch": best_epoch, "stale": stale,
                 "train_seconds": train_seconds, "config": to_dict(config), "tokenizer": tokenizer.to_dict(),
                 "world_size": world_size}
        # best before last: a run killed between the two writes still finds best.pt when it resumes
        if improved:
            atomic_save(state, exp_dir / "best.pt")
        atomic_save(state, exp_dir / "last.pt")
        if distributed:
            from_rank0(best_cer, best_epoch, stale, train_seconds)
    if writer:
        writer.close()

    bundle_path = exp_dir / "model.pt"
    if not main:
        dist.barrier()  # until rank 0 has written the bundle
        return TrainResult(best_epoch, best_cer, epoch, train_seconds, bundle_path)
    best = torch.load(exp_dir / "best.pt", map_location="cpu", weights_only=True)
    save_bundle(bundle_path, best["model"], best["config"], best["tokenizer"],
                extra={"epoch": best["epoch"], "dev_cer": best["best_cer"], "train_seconds": best["train_seconds"]})
    print(f"best dev CER {100 * best_cer:.2f} % at epoch {best_epoch}; bundle written to {bundle_path}", file=sys.stderr)
    if distributed:
        dist.barrier()
    return TrainResult(best_epoch, best_cer, epoch, train_seconds, bundle_path)


if __name__ == "__main__":  # torchrun --nproc-per-node N -m speechrnn.train CONFIG [key=value ...] [--resume]
    from .cli import main

    main(["train", *sys.argv[1:]])
