"""Training on real audio: AN4 steps lower the loss, a killed run resumes to the same model, and the yesno
recipe trains to zero word errors (the end-to-end integration test)."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from speechrnn.config import load_config
from speechrnn.data import read_manifest, write_manifest
from speechrnn.tasks.ctc import train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def an4_small(shared_data, tmp_path_factory) -> Path:
    """A few short AN4 training utterances (train) and two held-out speakers' (dev)."""
    out = tmp_path_factory.mktemp("an4")
    subprocess.run([sys.executable, str(REPO / "data_prep" / "an4.py"), "--src", str(shared_data / "an4"),
                    "--out", str(out)], check=True, capture_output=True)
    train_entries = sorted(read_manifest(out / "train.jsonl"), key=lambda e: e["duration"])[:24]
    dev_entries = sorted(read_manifest(out / "dev.jsonl"), key=lambda e: e["duration"])[:8]
    write_manifest(out / "small_train.jsonl", train_entries)
    write_manifest(out / "small_dev.jsonl", dev_entries)
    return out


def tiny_config(data: Path, exp_dir: Path, *extra: str):
    return load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml", [
        f"data.train_manifest={data / 'small_train.jsonl'}", f"data.dev_manifest={data / 'small_dev.jsonl'}",
        "data.cmvn=", "data.num_workers=0", "data.max_frames=1200", f"train.exp_dir={exp_dir}",
        "model.conv_channels=8", "model.rnn.hidden_size=48", "model.rnn.num_layers=2", "optim.warmup_steps=5",
        "train.tensorboard=false", *extra,
    ])


def epochs_logged(exp_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (exp_dir / "train_log.jsonl").read_text().splitlines()]


def test_an4_training_steps_lower_the_loss(an4_small, tmp_path):
    result = train(tiny_config(an4_small, tmp_path, "train.max_epochs=4"))
    losses = [e["train_loss"] for e in epochs_logged(tmp_path)]
    assert len(losses) == 4
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(torch.isfinite(torch.tensor(losses)))
    assert result.bundle.is_file() and (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()

    # The bundle alone reproduces the dev CER the trainer logged for the best epoch.
    run = subprocess.run([sys.executable, "-m", "speechrnn", "eval", str(result.bundle), str(an4_small / "small_dev.jsonl"),
                          "--out", str(tmp_path / "decode"), "--name", "dev"], env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads((tmp_path / "decode" / "dev.summary.json").read_text())
    best = next(e for e in epochs_logged(tmp_path) if e["epoch"] == result.best_epoch)
    assert summary["cer"] == pytest.approx(best["dev_cer"], abs=1e-9)
    assert len((tmp_path / "decode" / "dev.per_utt.jsonl").read_text().splitlines()) == 8

    # The same bundle decodes with beam search, a lexicon and a word LM of the training text, through the CLI.
    for command in (["lm", "build", str(an4_small / "small_train.jsonl"), "-o", str(tmp_path / "w.arpa"), "--order", "2"],
                    ["lm", "lexicon", str(result.bundle), str(an4_small / "small_train.jsonl"), "-o", str(tmp_path / "w.lex")],
                    ["eval", str(result.bundle), str(an4_small / "small_dev.jsonl"), "--out", str(tmp_path / "decode"),
                     "--name", "dev_beam", "--beam", "8", "--lexicon", str(tmp_path / "w.lex"), "--lm", str(tmp_path / "w.arpa")]):
        run = subprocess.run([sys.executable, "-m", "speechrnn", *command], env=ENV, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
    lexicon_words = {line.split("\t")[0] for line in (tmp_path / "w.lex").read_text().splitlines()}
    beam_hyps = [json.loads(line)["hyp"] for line in (tmp_path / "decode" / "dev_beam.per_utt.jsonl").read_text().splitlines()]
    assert len(beam_hyps) == 8
    assert all(word in lexicon_words for hyp in beam_hyps for word in hyp.split())  # nothing outside the lexicon

    png = subprocess.run([sys.executable, "-m", "speechrnn", "plot", str(tmp_path / "train_log.jsonl")],
                         env=ENV, capture_output=True, text=True)
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "train_log.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def train_cli(config_args: list[str], exp_dir: Path, resume: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechrnn", "train", str(REPO / "recipes/an4/conf/default.yaml"),
                             *config_args, f"train.exp_dir={exp_dir}", *(["--resume"] if resume else [])],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_killed_run_resumes_to_the_same_model(an4_small, tmp_path):
    args = [f"data.train_manifest={an4_small / 'small_train.jsonl'}", f"data.dev_manifest={an4_small / 'small_dev.jsonl'}",
            "data.cmvn=", "data.num_workers=0", "data.max_frames=1200", "model.conv_channels=8",
            "model.rnn.hidden_size=32", "model.rnn.num_layers=2", "train.max_epochs=4", "train.tensorboard=false"]
    straight = train_cli(args, tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()

    killed_dir = tmp_path / "killed"
    killed = train_cli(args, killed_dir)
    deadline = time.time() + 300
    while not (killed_dir / "last.pt").exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)  # no chance to clean up, like a power cut
    killed.wait()
    interrupted_at = torch.load(killed_dir / "last.pt", weights_only=True)["epoch"]
    assert interrupted_at < 4, "the run finished before it could be killed; the test proved nothing"

    resumed = train_cli(args, killed_dir, resume=True)
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert "resumed from" in resumed.stderr.read()

    final_straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    final_resumed = torch.load(killed_dir / "last.pt", weights_only=True)
    assert final_resumed["epoch"] == final_straight["epoch"] == 4
    for name, tensor in final_straight["model"].items():
        assert torch.equal(tensor, final_resumed["model"][name]), f"{name} differs after resume"
    straight_log = [{k: v for k, v in e.items() if k not in ("epoch_seconds", "utts_per_second")}
                    for e in epochs_logged(tmp_path / "straight")]
    resumed_log = [{k: v for k, v in e.items() if k not in ("epoch_seconds", "utts_per_second")}
                   for e in epochs_logged(killed_dir)]
    assert resumed_log == straight_log


@pytest.mark.slow
def test_yesno_recipe_reaches_zero_word_errors(shared_data):
    """The yesno recipe end to end (data prep, train, greedy and lexicon decoding, scoring) on its 30 held-out
    files, run as a user runs it (under its own tag, removed afterwards)."""
    tag = f"pytest-{os.getpid()}"
    exp = REPO / "recipes" / "yesno" / "exp" / tag
    try:
        run = subprocess.run([str(REPO / "recipes" / "yesno" / "run.sh"), "--tag", tag, "--yesno", str(shared_data / "yesno")],
                             env=ENV, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        greedy = json.loads((exp / "decode" / "test_greedy.summary.json").read_text())
        lexicon = json.loads((exp / "decode" / "test.summary.json").read_text())
    finally:
        shutil.rmtree(exp, ignore_errors=True)
    assert greedy["words"] == lexicon["words"] == 240
    assert greedy["wer"] <= 0.01, run.stdout  # 1-2 of 240 words: "NO" heard as "NOS"
    assert lexicon["wer"] == 0.0, run.stdout  # (its speed is in the recipe's README, not asserted: tests check results)


def test_speed_perturbation_is_seeded_by_epoch_and_index(an4_small):
    from speechrnn.data import AudioDataset, load_utterances
    from speechrnn.text import TextConfig, Tokenizer

    utts = load_utterances(an4_small / "small_train.jsonl")[:6]
    tokenizer = Tokenizer.build([u.text for u in utts], TextConfig())
    plain = AudioDataset(utts, tokenizer, 16000)
    perturbed = AudioDataset(utts, tokenizer, 16000, speed_factors=[0.9, 1.1], seed=3)
    again = AudioDataset(utts, tokenizer, 16000, speed_factors=[0.9, 1.1], seed=3)
    ratios = set()
    for epoch in (1, 2):
        perturbed.epoch = again.epoch = epoch
        for index in range(len(utts)):
            wav = perturbed[index]["inputs"]
            assert torch.equal(wav, again[index]["inputs"])
            ratios.add(round(len(plain[index]["inputs"]) / len(wav), 1))
    assert ratios == {0.9, 1.1}
