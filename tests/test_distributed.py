"""Distributed training (DistributedDataParallel, gloo on CPU) on a few real AN4 batches: two processes under torchrun
end with the parameters of one process that takes both ranks' batches at every step, the sampler shares batches
evenly, and a dead or hung rank, or a rank with other training data, stops the others with a clear message."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speechrnn.config import load_config
from speechrnn.data import BucketBatchSampler, collate, load_dataset, manifest_texts, read_manifest, write_manifest
from speechrnn.model import build_model
from speechrnn.text import Tokenizer
from speechrnn.data import make_loader
from speechrnn.tasks.ctc import keep_trainable, train
from speechrnn.training.cmvn import compute_cmvn
from speechrnn.training.optim import lr_lambda

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "recipes" / "an4" / "conf" / "default.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
STEPS = 3  # optimizer steps per rank in the one epoch trained: 18 utterances of ~0.8 s make 6 batches of 3 s


@pytest.fixture(scope="module")
def an4_tiny(shared_data, tmp_path_factory) -> Path:
    """The 18 shortest AN4 training utterances (train) and the 8 shortest of the held-out speakers (dev)."""
    out = tmp_path_factory.mktemp("an4")
    subprocess.run([sys.executable, str(REPO / "data_prep" / "an4.py"), "--src", str(shared_data / "an4"),
                    "--out", str(out)], check=True, capture_output=True)
    shortest = {name: sorted(read_manifest(out / f"{name}.jsonl"), key=lambda e: e["duration"])
                for name in ("train", "dev")}
    write_manifest(out / "small_train.jsonl", shortest["train"][:18])
    write_manifest(out / "small_dev.jsonl", shortest["dev"][:8])
    return out


def overrides(data: Path, exp_dir: Path, train_manifest: str | None = None) -> list[str]:
    """A tiny model without dropout or SpecAugment (nothing random in a step), one epoch of batches of 3 s."""
    return [f"data.train_manifest={train_manifest or data / 'small_train.jsonl'}",
            f"data.dev_manifest={data / 'small_dev.jsonl'}", "data.cmvn=", "data.num_workers=0", "data.max_frames=300",
            f"train.exp_dir={exp_dir}", "model.conv_channels=8", "model.rnn.hidden_size=48", "model.rnn.num_layers=2",
            "model.rnn.dropout=0", "model.dropout=0", "use_specaugment=false", "optim.warmup_steps=5",
            "train.max_epochs=1", "train.tensorboard=false"]


def shards(config, train_set, world_size: int, epoch: int) -> list[list[list[int]]]:
    """Each rank's batches (sample indexes) of `epoch`, as the training's sampler gives them."""
    ranks = []
    for rank in range(world_size):
        sampler = BucketBatchSampler(train_set.frame_lengths, config.data.max_frames, seed=config.train.seed,
                                     max_batch_size=config.data.max_batch_size, num_replicas=world_size, rank=rank)
        sampler.set_epoch(epoch)
        ranks.append(sampler.batches())
    return ranks


def reference_run(config) -> tuple[dict, dict, list, object]:
    """One process, set up as train() sets up a run, that at every step takes the gradient of the mean over the
    ranks of (rank's CTC loss / rank's target tokens), i.e. DDP's average of the ranks' gradients.
    Returns (initial state, final state, the ranks' batches, the training set)."""
    torch.manual_seed(config.train.seed)
    tokenizer = Tokenizer.build(manifest_texts(config.data.train_manifest), config.text)
    model = build_model(len(tokenizer), config, training=True)
    manifest = config.data.train_manifest
    train_set = keep_trainable(load_dataset(config, manifest, tokenizer, True), tokenizer, model, manifest)
    plain = make_loader(train_set.without_augmentation(), config, False, 0)
    model.frontend.set_cmvn(*compute_cmvn(model.frontend, plain, torch.device("cpu")))
    initial = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ranks = shards(config, train_set, 2, epoch=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.optim.lr, betas=tuple(config.optim.betas),
                                  weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.optim.warmup_steps, len(ranks[0]) * config.train.max_epochs,
                             config.optim.final_lr_ratio))
    ctc = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)
    model.train()
    train_set.epoch = 1
    for step in zip(*ranks):
        optimizer.zero_grad(set_to_none=True)
        for indexes in step:  # accumulates sum over ranks of d(loss_r / tokens_r) / world_size
            batch = collate([train_set[i] for i in indexes])
            log_probs, lens = model(batch["inputs"], batch["input_lens"])
            loss = ctc(log_probs.transpose(0, 1), batch["tokens"], lens, batch["token_lens"])
            (loss / int(batch["token_lens"].sum()) / len(step)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        optimizer.step()
        scheduler.step()
    return initial, model.state_dict(), ranks, train_set


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[name].float() - b[name].float()).abs().max()) for name in a)


def test_sampler_gives_every_rank_as_many_disjoint_batches_per_epoch():
    lengths = [50 + (i * 37) % 400 for i in range(203)]
    for epoch in (1, 2):
        whole = BucketBatchSampler(lengths, 1500, seed=7)
        whole.set_epoch(epoch)
        full = whole.batches()
        for world_size in (2, 3, 5):
            ranks = []
            for rank in range(world_size):
                sampler = BucketBatchSampler(lengths, 1500, seed=7, num_replicas=world_size, rank=rank)
                sampler.set_epoch(epoch)
                assert sampler.batches() == sampler.batches()  # the same on every call (and so on every rank)
                ranks.append(sampler.batches())
                assert len(sampler) == len(full) // world_size
            assert {len(batches) for batches in ranks} == {len(full) // world_size}
            taken = [batch for batches in ranks for batch in batches]
            assert all(batch in full for batch in taken)
            assert len({tuple(batch) for batch in taken}) == len(taken)  # disjoint
            assert len(full) - len(taken) == len(full) % world_size  # fewer than world_size batches dropped
            assert sampler.state_dict() == {"epoch": epoch, "seed": 7}  # the same for any world size


def test_two_gloo_processes_match_one_process_on_both_ranks_batches(an4_tiny, tmp_path):
    started = time.time()
    exp_dir = tmp_path / "ddp"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "speechrnn", "train", str(CONF), *overrides(an4_tiny, exp_dir)],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp_seconds = time.time() - started
    assert run.stderr.count("epoch 1: train loss") == 1  # only rank 0 reports
    assert "x 2 processes" in run.stderr
    log = [json.loads(line) for line in (exp_dir / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["epoch"] == 1

    config = load_config(CONF, overrides(an4_tiny, exp_dir))
    initial, expected, ranks, train_set = reference_run(config)
    assert [len(batches) for batches in ranks] == [STEPS, STEPS]
    checkpoint = torch.load(exp_dir / "last.pt", weights_only=True)
    assert checkpoint["world_size"] == 2 and checkpoint["scheduler"]["last_epoch"] == STEPS
    difference = max_difference(checkpoint["model"], expected)
    assert difference < 1e-5, f"DDP and the single-process reference differ by {difference:g} after {STEPS} steps"
    assert max_difference(checkpoint["model"], initial) > 1e-3  # the steps did move the parameters

    # the bundle holds the plain module (no DDP "module." prefix), as a single-process run writes it
    bundle = torch.load(exp_dir / "model.pt", weights_only=True)
    assert bundle["state_dict"].keys() == expected.keys()

    # resume on one process: the LR schedule goes on at the same point of the plan (3 steps of 2 ranks = 6 of 1)
    config.train.max_epochs = 2
    train(config, resume=True)
    resumed = torch.load(exp_dir / "last.pt", weights_only=True)
    assert resumed["epoch"] == 2 and resumed["world_size"] == 1
    assert resumed["scheduler"]["last_epoch"] == 2 * STEPS + len(shards(config, train_set, 1, epoch=2)[0])
    print(f"2 gloo processes: {ddp_seconds:.1f} s; max parameter difference {difference:.2g}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# One rank of a distributed run, started as torchrun starts it (RANK, WORLD_SIZE, MASTER_ADDR/PORT), with a short
# train.dist_timeout; with a fault, rank 1 dies (exits at once) or hangs at its second training step.
RANK_SCRIPT = """
import json, os, sys, time
import torch
from speechrnn.config import load_config
from speechrnn.errors import UserError
from speechrnn.tasks.ctc import train

config_path, overrides, timeout, fault = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
config = load_config(config_path, overrides)
config.train.dist_timeout = timeout
if fault and os.environ["RANK"] == "1":
    forward, calls = torch.nn.CTCLoss.forward, []

    def faulty(self, *args):
        calls.append(1)
        if len(calls) == 2:
            if fault == "die":
                os._exit(3)
            time.sleep(300)
        return forward(self, *args)

    torch.nn.CTCLoss.forward = faulty
try:
    train(config)
except UserError as err:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
"""


def start_ranks(config_overrides: list[str], timeout: float, fault: str = "", cwds=(None, None)) -> list:
    port = free_port()
    processes = []
    for rank, cwd in enumerate(cwds):
        env = {**ENV, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(len(cwds)),
               "LOCAL_WORLD_SIZE": str(len(cwds)), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", RANK_SCRIPT, str(CONF), json.dumps(config_overrides), str(timeout), fault],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return processes


@pytest.mark.parametrize("fault", ["die", "hang"])
def test_a_dead_or_hung_rank_stops_the_other_with_a_clear_message(an4_tiny, tmp_path, fault):
    timeout = 10
    rank0, rank1 = start_ranks(overrides(an4_tiny, tmp_path), timeout, fault)
    try:
        started = time.time()
        assert rank0.wait(timeout=120) == 2
        waited = time.time() - started
        error = rank0.stderr.read()
    finally:
        rank1.kill()  # the hung one sleeps on
        rank1.wait()
    assert "error: rank 0 of 2: lost contact with the other training processes" in error, error[-2000:]
    assert "train.dist_timeout=10 s" in error
    assert "Traceback" not in error
    if fault == "hang":
        assert "Timed out" in error, error[-2000:]
    else:
        assert rank1.returncode == 3
    print(f"{fault}: rank 0 stopped {waited:.1f} s after start")


def test_ranks_with_different_training_manifests_are_refused(an4_tiny, tmp_path):
    """The same relative manifest path read in two folders (as on two machines) with one utterance less on rank 1."""
    entries = read_manifest(an4_tiny / "small_train.jsonl")
    cwds = (tmp_path / "node0", tmp_path / "node1")
    write_manifest(cwds[0] / "train.jsonl", entries)
    write_manifest(cwds[1] / "train.jsonl", entries[:-1])
    processes = start_ranks(overrides(an4_tiny, tmp_path / "exp", train_manifest="train.jsonl"), 60, cwds=cwds)
    for process in processes:
        assert process.wait(timeout=120) == 2
        error = process.stderr.read()
        assert ("error: train.jsonl: rank 1 reads other training data than rank 0 (17 usable samples against 18"
                in error), error[-2000:]
    assert not (tmp_path / "exp" / "last.pt").exists()
