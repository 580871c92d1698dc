"""The models shipped inside the package (speechrnn/pretrained/): each reproduces the dev numbers recorded for it
(recipes/an4/RESULTS.md, recipes/unipen/RESULTS.md), is small enough to ship, and `speechrnn transcribe` uses them
when no bundle is named."""

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from speechrnn.pretrained import default_bundle

REPO = Path(__file__).resolve().parents[1]
MAX_BYTES = 10_000_000
# (WER, CER) as recorded when the bundle was shipped; greedy, and with the decoder `speechrnn tune` stored in it
AN4_DEV = {"greedy": (38 / 545, 50 / 1664), "tuned": (31 / 545, 47 / 1664)}  # AN4 dev: 98 utterances, 8 speakers
UNIPEN_APE_DEV = {"greedy": (121 / 322, 284 / 1734), "tuned": (71 / 322, 179 / 1734)}  # contributor "ape": 322 words
TOLERANCE = 0.0035  # one word of the 322 (two of AN4's 545): float sums may differ across CPUs
# AN4 dev word times from the bundle's aligners against the energy boundary (benchmarks/eval_timestamps.py): % of
# utterances whose first word starts / last word ends within 100 ms of it, and both; all energy segments, and only
# those in which Silero VAD finds speech (--veto silero)
AN4_DEV_TIMES = {"none": {"first word start": 67.3, "last word end": 77.6, "both": 54.1},
                 "silero": {"first word start": 95.9, "last word end": 79.6, "both": 76.5}}


def evaluate(bundle: Path, manifest: Path, out: Path, tuned: bool) -> tuple[float, float]:
    name = "tuned" if tuned else "greedy"
    subprocess.run([sys.executable, "-m", "speechrnn", "eval", str(bundle), str(manifest), "--out", str(out),
                    "--name", name, "--threads", "1"] + (["--tuned"] if tuned else []), check=True, cwd=REPO)
    summary = json.loads((out / f"{name}.summary.json").read_text())
    return summary["wer"], summary["cer"]


@pytest.mark.parametrize("modality", ["audio", "ink"])
def test_shipped_bundles_are_small_and_int8(modality):
    path = default_bundle(modality)
    assert path.stat().st_size <= MAX_BYTES, f"{path}: {path.stat().st_size} bytes"
    import torch

    assert torch.load(path, weights_only=True)["weights"] == "int8"


def test_an4_model_reproduces_its_dev_numbers(shared_data, tmp_path):
    subprocess.run([sys.executable, "data_prep/an4.py", "--src", str(shared_data / "an4"), "--out", str(tmp_path)],
                   check=True, cwd=REPO, capture_output=True)
    for mode, (wer, cer) in AN4_DEV.items():
        measured = evaluate(default_bundle("audio"), tmp_path / "dev.jsonl", tmp_path, mode == "tuned")
        assert measured == pytest.approx((wer, cer), abs=TOLERANCE), mode


@pytest.mark.parametrize("veto", ["none", "silero"])
def test_an4_model_word_times_reproduce_their_dev_numbers(shared_data, tmp_path, veto):
    import re

    subprocess.run([sys.executable, "data_prep/an4.py", "--src", str(shared_data / "an4"), "--out", str(tmp_path)],
                   check=True, cwd=REPO, capture_output=True)
    run = subprocess.run([sys.executable, "benchmarks/eval_timestamps.py", "--bundle", str(default_bundle("audio")),
                          "--manifest", str(tmp_path / "dev.jsonl"), "--veto", veto],
                         capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "word times from the aligners" in run.stdout
    measured = {name: float(re.search(rf"^{name} .* ([0-9.]+)%$", run.stdout, re.M).group(1))
                for name in ("first word start", "last word end")}
    measured["both"] = float(re.search(r"both within 100 ms: ([0-9.]+) %", run.stdout).group(1))
    assert measured == pytest.approx(AN4_DEV_TIMES[veto], abs=1.1), run.stdout  # one utterance of the 98


def test_unipen_model_reproduces_its_dev_numbers(shared_data, tmp_path):
    """data_prep/unipen.py on contributor "ape" alone (its data and include files taken from the archive): the
    writer-disjoint split puts 4 of its writers, 322 words, in dev, the same lines as in the full recipe's dev."""
    with tarfile.open(shared_data / "unipen" / "train_r01_v07_cat6.tar.gz", "r|gz") as tar:
        for member in tar:
            if member.name.startswith(("data/6/ape/", "include/ape/")):
                tar.extract(member, tmp_path / "unipen", filter="data")
    subprocess.run([sys.executable, "data_prep/unipen.py", "--src", str(tmp_path / "unipen"), "--out",
                    str(tmp_path / "data")], check=True, cwd=REPO, capture_output=True)
    assert sum(1 for _ in open(tmp_path / "data" / "dev.jsonl")) == 322
    for mode, (wer, cer) in UNIPEN_APE_DEV.items():
        measured = evaluate(default_bundle("ink"), tmp_path / "data" / "dev.jsonl", tmp_path, mode == "tuned")
        assert measured == pytest.approx((wer, cer), abs=TOLERANCE), mode


def test_transcribe_without_a_bundle_uses_the_shipped_ones(shared_data, unipen_words, tmp_path):
    wav = sorted((shared_data / "an4" / "wav" / "an4test_clstk").rglob("*.wav"))[0]
    run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(wav)], capture_output=True, text=True,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "model: an4, shipped with speechrnn" in run.stderr and run.stdout.startswith(f"{wav}\t")
    word = unipen_words[0]
    ink = tmp_path / "word.json"
    ink.write_text(json.dumps({"strokes": [stroke.tolist() for stroke in word.ink.strokes]}))
    run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(ink)], capture_output=True, text=True,
                         cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert "model: unipen, shipped with speechrnn" in run.stderr and run.stdout.split("\t")[1].strip()
