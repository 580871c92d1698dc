"""How much of a training step is spent waiting for data: the trainer's own loader (`train.make_loader`) and step
(`training.loop.train_one_epoch`) on the first steps of an epoch, with the time blocked in the loader's next() (and, for
the first batch, in starting its workers) against the whole step, for several `data.num_workers`.

The same batches (epoch 1 of the config's seed) and the same initial weights for every setting; the settings take
turns over `--rounds` rounds. The first `--warmup` steps of each run are reported apart (workers start and the
first batches are made while nothing is prefetched yet: what every epoch start pays), the rest as the steady state.

    python benchmarks/bench_data_wait.py                                 # AN4 default, 40 steps, workers 0 and 1
    python benchmarks/bench_data_wait.py --steps 24 --workers 0 1 2 --threads 1 train.device=cpu
"""

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from speechrnn.config import load_config
from speechrnn.data import make_loader
from speechrnn.device import select_device
from speechrnn.tasks.ctc import CTCTask
from speechrnn.training.loop import amp_dtype_for, begin_epoch, train_one_epoch
from speechrnn.training.optim import build_optimizer, build_scheduler

REPO = Path(__file__).resolve().parents[1]


class TimedLoader:
    """Wraps a DataLoader for train_one_epoch: gives its first `steps` batches and records, per step, the seconds
    blocked getting the batch (iter() included for the first: worker start) and the seconds from asking for it
    to asking for the next one (the whole step)."""

    def __init__(self, loader, steps: int):
        self.loader, self.steps = loader, min(steps, len(loader))
        self.waits, self.totals = [], []

    def __len__(self) -> int:
        return self.steps

    def __iter__(self):
        self.waits, self.totals = [], []
        started = time.perf_counter()
        batches = iter(self.loader)
        for _ in range(self.steps):
            try:
                batch = next(batches)
            except StopIteration:
                break
            self.waits.append(time.perf_counter() - started)
            yield batch
            now = time.perf_counter()
            self.totals.append(now - started)
            started = now
        del batches  # stops the workers


def setup(config):
    """What training.loop.fit sets up before its first epoch (single process), minus checkpoints and logging."""
    device = select_device(config.train.device)
    torch.manual_seed(config.train.seed)
    task = CTCTask(config)
    task.setup(None, device, main=True)
    task.initialize(device, main=True)
    return device, task


def run(config, device, task: CTCTask, workers: int, steps: int) -> TimedLoader:
    task = copy.copy(task)
    task.model = model = copy.deepcopy(task.model)  # the same initial weights for every setting
    config = copy.deepcopy(config)
    config.data.num_workers = workers
    loader = make_loader(task.train_set, config, True, config.train.seed)
    optimizer = build_optimizer(model, config.optim)
    scheduler = build_scheduler(optimizer, config.optim, len(loader.batch_sampler) * config.train.max_epochs)
    amp_dtype = amp_dtype_for(config, device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    begin_epoch(task, model, loader, 1)
    timed = TimedLoader(loader, steps)
    train_one_epoch(task, model, timed, optimizer, scheduler, scaler, amp_dtype, config.optim.grad_clip, device,
                    f"workers {workers}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "recipes" / "an4" / "conf" / "default.yaml"))
    parser.add_argument("--cwd", help="folder the config's relative paths start from (default: the config's "
                                      "recipe folder, the parent of its conf/)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument("--warmup", type=int, default=3, help="first steps of a run reported apart (default 3)")
    parser.add_argument("--workers", type=int, nargs="+", help="data.num_workers settings (default: 0 and the "
                                                               "config's)")
    parser.add_argument("--rounds", type=int, default=1, help="runs per setting, taking turns (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: the config's "
                                                               "train.threads, else torch's default)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args()

    config_path = Path(args.config).resolve()
    os.chdir(args.cwd or config_path.parent.parent)
    tmp = tempfile.TemporaryDirectory()
    config = load_config(config_path, [f"train.exp_dir={tmp.name}", "train.tensorboard=false", *args.overrides])
    threads = args.threads or config.train.threads
    if threads > 0:
        torch.set_num_threads(threads)
    workers = args.workers if args.workers else sorted({0, config.data.num_workers})
    device, task = setup(config)
    print(f"{config_path.name}: {len(task.train_set)} training samples, max_frames {config.data.max_frames}, "
          f"{sum(p.numel() for p in task.model.parameters()) / 1e6:.2f} M parameters; device {device}, "
          f"{torch.get_num_threads()} torch thread(s); config's num_workers {config.data.num_workers}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    results = {w: [] for w in workers}
    for _ in range(args.rounds):
        for w in workers:
            results[w].append(run(config, device, task, w, args.steps))

    print(f"\n{'num_workers':>11} {'steps':>5} {'step ms':>8} {'wait ms':>8} {'waiting':>8} "
          f"{'first':>7} {'first wait ms':>13} {'all steps':>9}")
    for w in workers:
        warm = [(wait, total) for t in results[w] for wait, total in list(zip(t.waits, t.totals))[args.warmup:]]
        every = [(wait, total) for t in results[w] for wait, total in zip(t.waits, t.totals)]
        first = [(wait, total) for t in results[w] for wait, total in list(zip(t.waits, t.totals))[: args.warmup]]
        fraction = sum(x for x, _ in warm) / sum(y for _, y in warm)
        print(f"{w:>11} {len(warm):>5} {1000 * statistics.median(y for _, y in warm):8.0f} "
              f"{1000 * statistics.median(x for x, _ in warm):8.1f} {100 * fraction:7.1f}% "
              f"{100 * sum(x for x, _ in first) / sum(y for _, y in first):6.1f}% "
              f"{1000 * statistics.median(t.waits[0] for t in results[w]):13.0f} "
              f"{100 * sum(x for x, _ in every) / sum(y for _, y in every):8.1f}%")
    print(f"(step and wait: medians over the steady steps; waiting: their share of the steady steps' time; first: "
          f"the same over the first {args.warmup} steps of each run; all steps: over every step)")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
