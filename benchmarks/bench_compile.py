"""torch.compile against eager, side by side in one run: training steps and inference of a config's model.

Training steps as `training.loop.train_one_epoch` takes them (forward, CTC loss, backward, gradient clipping, AdamW step)
and inference (forward only, eval mode, no_grad), on a few real batches of the config's training set.

Every variant starts from the same weights and takes the same batches (epoch 1 of the config's seed, from the
trainer's own loader). Each variant first takes one step on every batch (the first pass: compilation, and a
recompile for each new shape until dynamic shapes kick in); then the variants take turns, one step each per round
with the order rotated every round, so a load on the machine hits them alike. Reported: the first pass, the
compile overhead (first pass minus that many steady steps), the median step after it, and the ratios to eager.

Eager against one compiled variant (`--compile`):
  trainer      what train.compile=true does (`speechrnn.training.loop.compile_encoder`: the encoder's conv subsampling)
  encoder      `model.encoder.compile()`: dynamo breaks the graph at every nn.LSTM/GRU/RNN, so StackedRNN.forward
               runs eagerly and only its calls of `reverse_padded` are compiled (per shape, stride and grad mode)
  encoder-rnn  the same with torch._dynamo.config.allow_rnn: the recurrent layers are traced too (one graph)
  model        the whole model, STFT front-end and SpecAugment included; graph breaks at the recurrent layers
  model-rnn    the whole model with allow_rnn
One compiled variant a run: dynamo caches compiled code per function (Encoder.forward, ...), not per module
instance, so a second variant in the same process would reuse the first one's code. The inductor cache is a fresh
temporary folder unless `--warm-cache`, so the compile time is a cold start's.

    python benchmarks/bench_compile.py                                  # AN4 default, 4 batches, 12 rounds
    python benchmarks/bench_compile.py --compile encoder-rnn --rounds 20 --threads 1 train.device=cpu
"""

import argparse
import atexit
import contextlib
import copy
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

if "--warm-cache" not in sys.argv:  # before torch: compile times from a cold inductor cache, as a new machine has
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench_compile_inductor_")
    atexit.register(shutil.rmtree, os.environ["TORCHINDUCTOR_CACHE_DIR"], ignore_errors=True)

import torch  # noqa: E402

from speechrnn.config import load_config  # noqa: E402
from speechrnn.data import load_dataset, manifest_texts  # noqa: E402
from speechrnn.model import build_model  # noqa: E402
from speechrnn.text import Tokenizer  # noqa: E402
from speechrnn.data import make_loader  # noqa: E402
from speechrnn.device import select_device  # noqa: E402
from speechrnn.tasks.ctc import keep_trainable  # noqa: E402
from speechrnn.training.cmvn import init_cmvn  # noqa: E402
from speechrnn.training.loop import compile_encoder  # noqa: E402
from speechrnn.training.optim import build_optimizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMPILED = ["trainer", "encoder", "encoder-rnn", "model", "model-rnn"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_variant(name: str, model: torch.nn.Module, config):
    """(model, context for each call) of a variant; compiled in place, so the state_dict keys stay plain."""
    model = copy.deepcopy(model)
    context = contextlib.nullcontext
    if name == "trainer":
        compile_encoder(model)
    elif name != "eager":
        (model.encoder if name.startswith("encoder") else model).compile()
        if name.endswith("-rnn"):
            context = lambda: torch._dynamo.config.patch(allow_rnn=True)  # noqa: E731 - read when dynamo traces
    return model, context


class Runner:
    """One variant: its copy of the model, its optimizer (and loss scaler on CUDA), its steps."""

    def __init__(self, name: str, model, config, device: torch.device):
        self.name = name
        self.model, self.context = make_variant(name, model, config)
        self.optimizer = build_optimizer(self.model, config.optim)
        self.grad_clip = config.optim.grad_clip
        self.device = device
        use_amp = config.train.amp and device.type == "cuda"
        self.amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if use_amp else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)

    def forward(self, batch):
        with self.context(), torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            return self.model(batch["inputs"], batch["input_lens"])

    def train_step(self, batch) -> tuple[float, float]:
        """(seconds, loss per token) of one training step, as train_one_epoch takes it."""
        self.model.train()
        sync(self.device)
        started = time.perf_counter()
        log_probs, lens = self.forward(batch)
        loss = self.ctc(log_probs.transpose(0, 1), batch["tokens"], lens, batch["token_lens"])
        tokens = int(batch["token_lens"].sum())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss / tokens).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        value = float(loss.detach()) / tokens
        sync(self.device)
        return time.perf_counter() - started, value

    @torch.no_grad()
    def infer_step(self, batch) -> tuple[float, torch.Tensor]:
        self.model.eval()
        sync(self.device)
        started = time.perf_counter()
        log_probs, _ = self.forward(batch)
        sync(self.device)
        return time.perf_counter() - started, log_probs.float().cpu()


def timed_rounds(runners, batches, rounds: int, budget: float, step: str) -> dict:
    """First pass (one step per batch, per variant in turn), then `rounds` interleaved rounds (at least 3, fewer
    once `budget` seconds are spent). Returns {name: {"first": [s...], "steady": [s...], "paired": [ratio...]}}."""
    out = {r.name: {"first": [], "steady": []} for r in runners}
    for runner in runners:
        for batch in batches:
            out[runner.name]["first"].append(getattr(runner, step)(batch)[0])
    started = time.time()
    per_round = []
    for index in range(rounds):
        if index >= 3 and time.time() - started > budget:
            break
        batch = batches[index % len(batches)]
        order = runners[index % len(runners):] + runners[: index % len(runners)]
        times = {r.name: getattr(r, step)(batch)[0] for r in order}
        per_round.append(times)
        for name, seconds in times.items():
            out[name]["steady"].append(seconds)
    base = runners[0].name
    for runner in runners:
        out[runner.name]["paired"] = [times[runner.name] / times[base] for times in per_round]
    return out


def report(title: str, out: dict, batches: int) -> None:
    names = list(out)
    base = statistics.median(out[names[0]]["steady"])
    print(f"\n{title}")
    print(f"  {'variant':<12} {'first pass s':>12} {'compile s':>9} {'median ms':>9} {'min ms':>7} {'max ms':>7} "
          f"{'vs eager':>8} {'paired':>6} {'steps':>5}")
    for name in names:
        steady, first = out[name]["steady"], out[name]["first"]
        median = statistics.median(steady)
        overhead = sum(first) - batches * median
        print(f"  {name:<12} {sum(first):12.1f} {overhead:9.1f} {1000 * median:9.1f} {1000 * min(steady):7.1f} "
              f"{1000 * max(steady):7.1f} {median / base:7.2f}x {statistics.median(out[name]['paired']):5.2f}x "
              f"{len(steady):5d}")
    print(f"  (first pass: one step on each of the {batches} batches; compile: first pass minus {batches} median "
          f"steps; vs eager: ratio of medians, < 1 is faster; paired: median over rounds of the ratio within a round)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "recipes" / "an4" / "conf" / "default.yaml"))
    parser.add_argument("--cwd", help="folder the config's relative paths start from (default: the config's "
                                      "recipe folder, the parent of its conf/)")
    parser.add_argument("--compile", choices=COMPILED, default="trainer",
                        help="the compiled variant timed against eager (default: trainer)")
    parser.add_argument("--batches", type=int, default=4, help="real training batches, cycled (default 4)")
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds per mode (default 12)")
    parser.add_argument("--time-budget", type=float, default=120, help="stop a mode's rounds after this many "
                                                                       "seconds, at least 3 rounds (default 120)")
    parser.add_argument("--no-infer", action="store_true", help="time training steps only")
    parser.add_argument("--no-specaugment", action="store_true", help="SpecAugment off (the trainer turns it on "
                                                                      "at specaugment.start_epoch)")
    parser.add_argument("--warm-cache", action="store_true", help="use torch's inductor cache (default: a fresh "
                                                                  "one, so the compile time is a cold start's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: the config's "
                                                               "train.threads, else torch's default)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()

    config_path = Path(args.config).resolve()
    os.chdir(args.cwd or config_path.parent.parent)
    tmp = tempfile.TemporaryDirectory()
    config = load_config(config_path, [f"train.exp_dir={tmp.name}", "train.tensorboard=false",
                                       "data.num_workers=0", *args.overrides])
    threads = args.threads or config.train.threads
    if threads > 0:
        torch.set_num_threads(threads)
    device = select_device(config.train.device)
    torch.manual_seed(config.train.seed)
    tokenizer = Tokenizer.build(manifest_texts(config.data.train_manifest), config.text)
    model = build_model(len(tokenizer), config, training=True).to(device)
    manifest = config.data.train_manifest
    train_set = keep_trainable(load_dataset(config, manifest, tokenizer, training=True), tokenizer, model, manifest)
    init_cmvn(model.frontend, config, train_set, device)
    if model.specaugment is not None:
        model.specaugment.enabled = not args.no_specaugment
    loader = make_loader(train_set, config, True, config.train.seed)
    loader.batch_sampler.set_epoch(1)
    train_set.epoch = 1
    batches = []
    for batch in loader:
        if batch["ids"]:
            batches.append({k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()})
        if len(batches) == args.batches:
            break
    shapes = ", ".join(f"{b['inputs'].shape[0]}x{b['inputs'].shape[1] / config.features.sample_rate:.1f}s"
                       for b in batches)
    print(f"{config_path.name}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, "
          f"{config.model.rnn.cell} {config.model.rnn.num_layers}x{config.model.rnn.hidden_size}; device {device}, "
          f"{torch.get_num_threads()} torch thread(s); torch {torch.__version__}; "
          f"SpecAugment {'off' if args.no_specaugment else 'on'}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs\nbatches (utterances x padded length): {shapes}")

    runners = [Runner(name, model, config, device) for name in ("eager", args.compile)]
    out = timed_rounds(runners, batches, args.rounds, args.time_budget, "train_step")
    report("training step (forward + CTC + backward + clip + AdamW)", out, len(batches))
    if not args.no_infer:
        for runner in runners:  # inference from one set of weights: the eager copy's
            runner.model.load_state_dict(runners[0].model.state_dict())
        out = timed_rounds(runners, batches, args.rounds, args.time_budget, "infer_step")
        reference = runners[0].infer_step(batches[0])[1]
        diffs = {r.name: (r.infer_step(batches[0])[1] - reference).abs().max().item() for r in runners[1:]}
        report("inference (forward only, eval, no_grad)", out, len(batches))
        print("  max |log-prob diff| vs eager: " + ", ".join(f"{n} {d:.1e}" for n, d in diffs.items()))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
