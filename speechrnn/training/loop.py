"""fit(task, config): the one training loop, shared by every model of the package.

    start_run (exp_dir, threads, seeds, last.pt)  ->  task.setup (model, datasets)  ->  task.initialize (CMVN or
    pretrained weights, fresh runs only)  ->  AdamW + warm-up/cosine schedule  ->  restore the checkpoint  ->
    per epoch: train_one_epoch (task.compute_loss, AMP, clipping) -> task.evaluate on dev -> JSONL/TensorBoard log
    -> best.pt (when dev improves) then last.pt  ->  early stop after train.patience stale epochs  ->  the bundle
    from best.pt (task.save_bundle)

A task (speechrnn/tasks/) supplies only what differs: its model and data, its loss, its evaluation and selection
key, the fields it logs and what its bundle carries. `last.pt` holds everything needed to resume to the model an
uninterrupted run gives (model, optimizer, scheduler, sampler and RNG state); `best.pt` is written before `last.pt`,
so a run killed between the two writes still finds it when resumed. A folder holding an earlier run is never
written over without `resume` or `overwrite` (training/rundir.py). Under torchrun (WORLD_SIZE > 1) see
training/distributed.py."""

import contextlib
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..bundle import atomic_save, save_bundle
from ..config import to_dict
from ..data import BucketBatchSampler, make_loader
from ..device import select_device
from ..errors import UserError
from . import distributed as ddp
from . import rundir
from .optim import build_optimizer, build_scheduler
from .state import best_key as stored_best_key
from .state import rng_state, seed_everything, set_rng_state, trim_log


class Task:
    """What fit() needs from a task. setup() sets `model` (the plain module), `train_set` and `dev_set`."""

    name = ""  # the bundle's extra["task"] (recognizer bundles have none)
    model: torch.nn.Module
    train_set = None
    dev_set = None

    def __init__(self, config):
        self.config = config

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        """Build the model on `device` and the datasets (from the checkpoint's vocabulary when resuming). `main`:
        this process evaluates and prints (the only one without torchrun)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The "model: ..." line printed before training."""
        raise NotImplementedError

    def initialize(self, device: torch.device, main: bool) -> None:
        """A fresh run's start (not when resuming): CMVN statistics, or pretrained weights."""

    def start_epoch(self, epoch: int) -> None:
        """Per-epoch switches: SpecAugment from specaugment.start_epoch on, the dataset's augmentation draws."""
        if getattr(self.model, "specaugment", None) is not None:
            self.model.specaugment.enabled = epoch >= self.config.specaugment.start_epoch
        self.train_set.epoch = epoch

    def compute_loss(self, net: torch.nn.Module, batch: dict, device: torch.device, amp_dtype) -> tuple:
        """-> (the loss to back-propagate, {statistic: summed value}); the statistics hold "loss" (summed) and
        "count" (what train_loss is the mean over)."""
        raise NotImplementedError

    def evaluate(self, loader, device: torch.device) -> dict:
        raise NotImplementedError

    def selection_key(self, dev: dict) -> tuple:
        """Orders epochs by `evaluate`'s result: the highest key is best."""
        raise NotImplementedError

    def log_fields(self, sums: dict, dev: dict) -> dict:
        """The task's fields of an epoch's JSONL record, in order (train_loss, dev_loss, ...)."""
        raise NotImplementedError

    def epoch_line(self, record: dict) -> str:
        """The middle of the printed epoch line: "train loss ..., dev ..."."""
        raise NotImplementedError

    def best_line(self, key: tuple) -> str:
        """The selected epoch's dev score in words, e.g. "dev CER 8.62 %"."""
        raise NotImplementedError

    def checkpoint_extras(self) -> dict:
        """What the task needs back when resuming (its vocabulary or classes)."""
        return {}

    def bundle_vocabulary(self, best: dict) -> dict:
        """What the bundle stores as its "tokenizer": the vocabulary or the classes, from the best checkpoint."""
        raise NotImplementedError

    def bundle_scores(self, key: tuple) -> dict:
        """The selected epoch's dev scores as the bundle's extras record them."""
        raise NotImplementedError

    def save_bundle(self, best: dict, path: Path) -> None:
        """Write the bundle from the best checkpoint."""
        extra = {"task": self.name} if self.name else {}
        save_bundle(path, best["model"], best["config"], self.bundle_vocabulary(best),
                    extra={**extra, "epoch": best["epoch"], **self.bundle_scores(tuple(best["best_key"])),
                           "train_seconds": best["train_seconds"]})


class AccuracyTask(Task):
    """A task selected by dev accuracy (ties: the lower dev loss), its evaluate() giving "accuracy" and "loss"."""

    accuracy_name = "accuracy"  # in the closing line: best dev ACCURACY_NAME ...

    def selection_key(self, dev: dict) -> tuple:
        return dev["accuracy"], -dev["loss"]

    def best_line(self, key: tuple) -> str:
        return f"dev {self.accuracy_name} {100 * key[0]:.2f} %"

    def bundle_scores(self, key: tuple) -> dict:
        return {"dev_accuracy": key[0], "dev_loss": -key[1]}


@dataclass
class FitResult:
    best_epoch: int
    best_key: tuple
    epochs: int
    seconds: float
    bundle: Path


def autocast(device: torch.device, amp_dtype):
    """Mixed precision around a forward pass when `amp_dtype` is set (CUDA with train.amp), else nothing."""
    return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)


def amp_dtype_for(config, device: torch.device):
    """bf16 where the GPU has it, else fp16 (with loss scaling); None on CPU or with train.amp off."""
    if not (config.train.amp and device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def progress_bar(loader, desc: str, disable: bool = False):
    """On a terminal a live bar; in a log file (nohup, CI) a progress line a minute."""
    interactive = sys.stderr.isatty()
    return tqdm(loader, desc=desc, unit="batch", dynamic_ncols=True, file=sys.stderr,
                mininterval=0.1 if interactive else 60, ascii=not interactive, disable=disable)


def train_one_epoch(task: Task, net: torch.nn.Module, loader, optimizer, scheduler, scaler, amp_dtype,
                    grad_clip: float, device: torch.device, desc: str) -> dict:
    """One pass over `loader`: per batch task.compute_loss, backward (scaled under fp16), gradient clipping, an
    optimizer and a scheduler step. Returns the task's statistics summed over the batches, plus "utterances".
    With `net` a DistributedDataParallel replica the gradient is averaged over the ranks, only rank 0 shows the bar,
    and the sums are this rank's."""
    distributed = isinstance(net, DistributedDataParallel)
    sums, started = {"utterances": 0}, time.time()
    bar = progress_bar(loader, desc, disable=distributed and dist.get_rank() > 0)
    for batch in bar:
        if ddp.skip_everywhere(not batch["ids"], device) if distributed else not batch["ids"]:
            continue
        loss, stats = task.compute_loss(net, batch, device, amp_dtype)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        for key, value in stats.items():
            sums[key] = sums.get(key, 0) + value
        sums["utterances"] += len(batch["ids"])
        bar.set_postfix(loss=f"{sums['loss'] / max(sums['count'], 1):.3f}",
                        utt_s=f"{sums['utterances'] / (time.time() - started):.1f}",
                        lr=f"{scheduler.get_last_lr()[0]:.2e}", refresh=False)
    bar.close()
    return sums


def begin_epoch(task: Task, net: torch.nn.Module, loader, epoch: int) -> None:
    """Training mode, the sampler's shuffle for `epoch` and the task's per-epoch switches."""
    net.train()
    loader.batch_sampler.set_epoch(epoch)
    task.start_epoch(epoch)


def start_run(config, resume: bool, announce: bool = True, overwrite: bool = False) -> tuple[Path, dict | None]:
    """Claim exp_dir (training/rundir.py: created, writable, an earlier run refused without `resume` or
    `overwrite`), set the CPU threads and the seeds; with `resume`, the exp_dir/last.pt checkpoint (None when there
    is none yet, or without `resume`)."""
    exp_dir = Path(config.train.exp_dir)
    rundir.claim(exp_dir, resume, overwrite, main=announce)
    if config.train.threads > 0:
        torch.set_num_threads(config.train.threads)
    checkpoint = None
    last = exp_dir / "last.pt"
    if resume and last.is_file():
        checkpoint = rundir.load_checkpoint(last)
    elif resume and announce:
        print(f"note: --resume given but {last} does not exist; starting from scratch", file=sys.stderr)
    seed_everything(config.train.seed)
    return exp_dir, checkpoint


def compile_encoder(model: torch.nn.Module) -> bool:
    """train.compile: the encoder's conv subsampling (convolutions, GELU, length masks, LayerNorm) compiled by
    torch.compile, in place (nn.Module.compile): `model` stays the plain module, so its state_dict keys (checkpoints,
    bundles, resume) carry no `_orig_mod.` prefix. False when there is none (model.conv_channels=0).

    The rest runs eagerly, with the cuDNN/oneDNN RNN kernels. Compiling more measured no faster on CPU
    (benchmarks/bench_compile.py): the whole encoder breaks the graph at every nn.LSTM/GRU/RNN and recompiles
    `reverse_padded` per shape, stride and grad mode up to dynamo's recompile limit; tracing the recurrent layers
    (dynamo's allow_rnn) unrolls them over time (over 10 minutes of compiling, 1.7x slower steps); the whole model
    adds the STFT front-end (complex ops inductor leaves to eager) and SpecAugment's graph breaks."""
    if model.encoder.conv is None:
        return False
    model.encoder.conv.compile()
    return True


def fit(task: Task, config, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train `task` with `config` (its train and optim sections) into config.train.exp_dir: last.pt, best.pt,
    train_log.jsonl and the bundle model.pt. A folder holding an earlier run is refused unless `resume` (continue
    it) or `overwrite` (replace it). Under torchrun with WORLD_SIZE > 1, or in a process group the caller
    initialised, with DistributedDataParallel."""
    device = select_device(config.train.device)
    if ddp.world()[1] == 1:
        return run(task, config, resume, device, overwrite)
    return ddp.run_distributed(lambda rank_device: run(task, config, resume, rank_device, overwrite), device,
                               float(config.train.dist_timeout))


def restore(checkpoint: dict, model, optimizer, scheduler, scaler, sampler, world_size: int, exp_dir: Path,
            main: bool, config=None) -> None:
    """Load a checkpoint into the training objects. When it was trained on another number of processes an epoch
    now takes another number of steps: the LR schedule (planned in steps) goes on at the same fraction."""
    try:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        if "scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["scaler"])
        sampler.load_state_dict(checkpoint["sampler"])
        set_rng_state(checkpoint["rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as err:
        raise rundir.mismatch(exp_dir / "last.pt", checkpoint, config, err) from None
    if main:
        print(f"resumed from {exp_dir / 'last.pt'} after epoch {checkpoint['epoch']}", file=sys.stderr)
    trained_on = checkpoint.get("world_size", 1)
    if trained_on != world_size:
        steps_per_epoch = len(sampler)
        before = len(BucketBatchSampler(sampler.lengths, sampler.max_frames, seed=sampler.seed,
                                        max_batch_size=sampler.max_batch_size, num_replicas=trained_on))
        step = round(scheduler.last_epoch * steps_per_epoch / max(before, 1))
        if main:
            print(f"note: {exp_dir / 'last.pt'} was trained on {trained_on} process(es), this run has {world_size}: "
                  f"an epoch is {steps_per_epoch} steps instead of {before}, the LR schedule goes on at step {step} "
                  f"instead of {scheduler.last_epoch}", file=sys.stderr)
        scheduler.last_epoch = step - 1
        scheduler.step()


def open_tensorboard(exp_dir: Path, enabled: bool):
    """A SummaryWriter under exp_dir/tensorboard when asked for and the tensorboard package is installed."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(exp_dir / "tensorboard"))


@dataclass
class Progress:
    """Where a run stands after an epoch: what resuming needs besides the model and the optimizer."""
    epoch: int = 0
    best_key: tuple | None = None
    best_epoch: int = 0
    stale: int = 0
    train_seconds: float = 0.0

    @classmethod
    def of(cls, checkpoint: dict | None) -> "Progress":
        if not checkpoint:
            return cls()
        return cls(checkpoint["epoch"], stored_best_key(checkpoint), checkpoint["best_epoch"], checkpoint["stale"],
                   checkpoint["train_seconds"])

    def shared(self) -> tuple:
        return self.best_key, self.best_epoch, self.stale, self.train_seconds


class Run:
    """One process's training: the objects set up from the task and config, then `epochs()` (see fit)."""

    def __init__(self, task: Task, config, resume: bool, device: torch.device, overwrite: bool = False):
        self.task, self.config, self.device = task, config, device
        self.rank, self.world_size = ddp.world()
        self.distributed, self.main = self.world_size > 1, self.rank == 0  # main: evaluates, prints, writes files
        self.exp_dir, checkpoint = start_run(config, resume, announce=self.main, overwrite=overwrite)
        with contextlib.nullcontext() if self.main else contextlib.redirect_stderr(io.StringIO()):  # warnings once
            try:
                task.setup(checkpoint, device, self.main)
            except KeyError as err:  # a checkpoint lacking the task's extras (its vocabulary, its classes)
                if checkpoint is None:
                    raise
                raise UserError(f"{self.exp_dir / 'last.pt'}: not a checkpoint of this task (it lacks {err}); "
                                "resume with the command that wrote it, or start afresh with --overwrite") from None
        if self.distributed:
            ddp.check_same_on_every_rank(config, task.train_set, checkpoint["epoch"] if checkpoint else 0)
        self.train_loader = make_loader(task.train_set, config, True, config.train.seed, self.world_size, self.rank)
        self.dev_loader = make_loader(task.dev_set, config, False, 0) if self.main else None
        if self.main:
            print(f"{task.describe()}; device {device}"
                  f"{f' x {self.world_size} processes' if self.distributed else ''}", file=sys.stderr)
        if not checkpoint:
            task.initialize(device, self.main)
        self.model = task.model
        self.optimizer = build_optimizer(self.model, config.optim)
        steps_per_epoch = len(self.train_loader.batch_sampler)  # per rank: each step takes a batch on every rank
        if not steps_per_epoch:
            raise UserError(f"{config.data.train_manifest}: {len(task.train_set)} samples make fewer batches than "
                            f"the {self.world_size} processes; lower data.max_frames or start fewer processes")
        self.scheduler = build_scheduler(self.optimizer, config.optim, steps_per_epoch * config.train.max_epochs)
        self.amp_dtype = amp_dtype_for(config, device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.progress = Progress.of(checkpoint)
        if checkpoint:
            restore(checkpoint, self.model, self.optimizer, self.scheduler, self.scaler,
                    self.train_loader.batch_sampler, self.world_size, self.exp_dir, self.main, config)
        if config.train.compile and not compile_encoder(self.model) and self.main:  # compiled on the first batches
            print("note: train.compile: the model has no conv subsampling (model.conv_channels=0), nothing to "
                  "compile", file=sys.stderr)
        # averages the gradients over the ranks in backward; self.model stays the plain module
        self.net = DistributedDataParallel(self.model, device_ids=[device.index] if device.type == "cuda" else None) \
            if self.distributed else self.model
        self.writer = open_tensorboard(self.exp_dir, config.train.tensorboard and self.main)
        self.log_path = self.exp_dir / "train_log.jsonl"
        if self.main and self.log_path.exists():  # keep only the epochs the checkpoint holds (none when afresh)
            with rundir.writing(self.log_path):
                trim_log(self.log_path, self.progress.epoch)

    def epochs(self) -> None:
        config, progress = self.config, self.progress
        for epoch in range(progress.epoch + 1, config.train.max_epochs + 1):
            if config.train.patience and progress.stale >= config.train.patience:
                break
            started = time.time()
            begin_epoch(self.task, self.net, self.train_loader, epoch)
            if self.distributed:  # each rank its own dropout and masks, from (seed, epoch, rank): resumes draw the same
                torch.manual_seed(int(np.random.SeedSequence([config.train.seed, epoch, self.rank]).generate_state(1)[0]))
            sums = train_one_epoch(self.task, self.net, self.train_loader, self.optimizer, self.scheduler, self.scaler,
                                   self.amp_dtype, config.optim.grad_clip, self.device,
                                   f"epoch {epoch}/{config.train.max_epochs}")
            if self.distributed:  # the log holds every rank's batches
                sums = ddp.sum_over_ranks(sums, self.device)
            epoch_seconds = time.time() - started
            progress.epoch, progress.train_seconds = epoch, progress.train_seconds + epoch_seconds
            if self.main:
                self.end_epoch(sums, epoch_seconds)
            if self.distributed:  # the others wait for rank 0's evaluation, checkpoint and word on early stopping
                progress.best_key, progress.best_epoch, progress.stale, progress.train_seconds = \
                    ddp.from_rank0(*progress.shared())

    def end_epoch(self, sums: dict, epoch_seconds: float) -> None:
        """Evaluate on dev, log the epoch, write best.pt (when dev improved) and last.pt."""
        task, progress = self.task, self.progress
        dev = task.evaluate(self.dev_loader, self.device)
        key = task.selection_key(dev)
        improved = progress.best_key is None or key > progress.best_key
        if improved:
            progress.best_key, progress.best_epoch, progress.stale = key, progress.epoch, 0
        else:
            progress.stale += 1
        record = {"epoch": progress.epoch, **task.log_fields(sums, dev), "lr": self.scheduler.get_last_lr()[0],
                  "epoch_seconds": round(epoch_seconds, 2),
                  "utts_per_second": round(sums["utterances"] / epoch_seconds, 2), "best_epoch": progress.best_epoch}
        with rundir.writing(self.log_path), open(self.log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        if self.writer:
            for name, value in record.items():
                if name not in ("epoch", "best_epoch", "epoch_seconds", "utts_per_second"):
                    self.writer.add_scalar(name, value, progress.epoch)
        print(f"epoch {progress.epoch}: {task.epoch_line(record)}, {epoch_seconds:.0f} s"
              f"{' (best)' if improved else ''}", file=sys.stderr)
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "sampler": self.train_loader.batch_sampler.state_dict(), "rng": rng_state(), "epoch": progress.epoch,
                 "best_key": list(progress.best_key), "best_epoch": progress.best_epoch, "stale": progress.stale,
                 "train_seconds": progress.train_seconds, "config": to_dict(self.config),
                 "world_size": self.world_size, **task.checkpoint_extras()}
        # best before last: a run killed between the two writes still finds best.pt when it resumes
        with rundir.writing(self.exp_dir / "last.pt"):
            if improved:
                atomic_save(state, self.exp_dir / "best.pt")
            atomic_save(state, self.exp_dir / "last.pt")

    def finish(self) -> FitResult:
        """The bundle from best.pt (rank 0; the other ranks wait until it is written)."""
        if self.writer:
            self.writer.close()
        bundle_path = self.exp_dir / "model.pt"
        if self.main:
            best = rundir.load_checkpoint(self.exp_dir / "best.pt")
            self.task.save_bundle(best, bundle_path)
            print(f"best {self.task.best_line(self.progress.best_key)} at epoch {self.progress.best_epoch}; bundle "
                  f"written to {bundle_path}", file=sys.stderr)
        if self.distributed:
            dist.barrier()
        p = self.progress
        return FitResult(p.best_epoch, p.best_key, p.epoch, p.train_seconds, bundle_path)


def run(task: Task, config, resume: bool, device: torch.device, overwrite: bool = False) -> FitResult:
    """The whole training, or with an initialised process group of several ranks this rank's part of it."""
    training = Run(task, config, resume, device, overwrite)
    training.epochs()
    return training.finish()
