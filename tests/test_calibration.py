"""Word-confidence calibration (speechrnn/calibration.py): the ECE and the word outcomes on hand-made inputs, the
Platt fit on synthetic overconfident words, the map stored in a bundle and applied by Recognizer, and `speechrnn
calibrate` on a few real AN4 dev utterances (the shipped AN4 bundle, copied)."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import an4  # data_prep/an4.py: pyproject's pytest pythonpath lists data_prep/
from speechrnn.bundle import load_bundle
from speechrnn.calibration import (KEY, calibrate, expected_calibration_error, fit_calibration, reliability_table,
                                   store_calibration, word_outcomes)
from speechrnn.output import Span
from speechrnn.pretrained import resolve
from speechrnn.recognizer import Recognizer

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def spans(text: str) -> list[Span]:
    return [Span(word, 0.0, 0.0, 0.5) for word in text.split()]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], env=ENV, capture_output=True,
                          text=True)


def test_ece_of_calibrated_and_overconfident_words():
    # 70 % right at 0.7, 20 % right at 0.2: calibrated
    confidences = [0.7] * 10 + [0.2] * 10
    outcomes = [True] * 7 + [False] * 3 + [True] * 2 + [False] * 8
    assert expected_calibration_error(confidences, outcomes) == pytest.approx(0.0, abs=1e-12)
    # said 0.95, right half the time: ECE 0.45
    assert expected_calibration_error([0.95] * 10, [True, False] * 5) == pytest.approx(0.45)
    # two bins of 3 and 1 words: weighted by count
    assert expected_calibration_error([0.9, 0.9, 0.9, 0.1], [True, True, True, True]) == pytest.approx(
        3 / 4 * 0.1 + 1 / 4 * 0.9)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0  # the edges fall in the outer bins
    assert expected_calibration_error([], []) == 0.0
    rows = reliability_table([0.95, 0.91, 0.15], [True, False, False])
    assert [(r["low"], r["words"], r["accuracy"]) for r in rows] == [(0.1, 1, 0.0), (0.9, 2, 0.5)]
    assert rows[1]["confidence"] == pytest.approx(0.93)
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [True, False])


def test_word_outcomes_with_substitution_insertion_and_deletion():
    # B -> X substituted, E inserted (or D -> E substituted and F inserted): only equal words are right
    assert word_outcomes("A B C D", spans("A X C E F")) == [True, False, True, False, False]
    assert word_outcomes("A B C", spans("A C")) == [True, True]  # B deleted: no hypothesis word to score
    assert word_outcomes("YES", spans("YES YES")) == [True, False]  # one of the two is inserted
    assert word_outcomes("", spans("A B")) == [False, False]
    assert word_outcomes("A B", []) == []


def overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Words right with probability p, reported with confidence sigmoid(3 logit(p)) (too sure both ways)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.2, 0.98, n)
    raw = 1 / (1 + np.exp(-3 * np.log(p / (1 - p))))
    return raw, rng.random(n) < p


def test_platt_fit_lowers_the_ece_of_overconfident_words():
    raw, hits = overconfident(4000, 0)
    calibration = fit_calibration(raw.tolist(), hits.tolist())
    assert calibration["kind"] == "platt" and calibration["words"] == 4000
    assert calibration["a"] == pytest.approx(1 / 3, abs=0.05)  # undoes the factor 3
    assert calibration["dev_ece_before"] > 0.1 and calibration["dev_ece_after"] < 0.03
    # on fresh words from the same source too
    raw, hits = overconfident(4000, 1)
    after = [calibrate(c, calibration) for c in raw]
    assert expected_calibration_error(after, hits) < 0.03 < expected_calibration_error(raw, hits)
    # every word right: finite parameters (Platt's smoothed targets), confidences pushed up
    sure = fit_calibration([0.6, 0.7, 0.8] * 20, [True] * 60)
    assert math.isfinite(sure["a"]) and math.isfinite(sure["b"]) and calibrate(0.6, sure) > 0.9


def test_calibrate_is_monotonic_and_none_is_the_identity():
    grid = np.linspace(0, 1, 201).tolist()
    for a, b in [(0.5, 1.4), (2.0, -1.0), (1e-3, 0.0)]:
        mapped = [calibrate(c, {"kind": "platt", "a": a, "b": b}) for c in grid]
        assert all(x <= y for x, y in zip(mapped, mapped[1:])) and all(0 < m < 1 for m in mapped)
    assert calibrate(0.37, None) == 0.37
    assert calibrate(0.37, {"kind": "platt", "a": 1.0, "b": 0.0}) == pytest.approx(0.37)
    # confidence that falls as accuracy rises: a = 0 (the dev accuracy for every word), never a reversing map
    backwards = fit_calibration([0.9] * 50 + [0.1] * 50, [False] * 40 + [True] * 10 + [True] * 40 + [False] * 10)
    assert backwards["a"] == 0.0 and calibrate(0.2, backwards) == pytest.approx(0.5, abs=0.02)


@pytest.fixture
def bundle_copy(tmp_path) -> Path:
    path = tmp_path / "an4.pt"
    shutil.copyfile(resolve("an4"), path)
    return path


@pytest.fixture(scope="module")
def dev_manifest(shared_data, tmp_path_factory) -> Path:
    """4 utterances of the first AN4 dev speaker (data_prep/an4.py's split), read in place."""
    root = shared_data / "an4"
    if not (root / "etc").is_dir():
        pytest.skip(f"AN4 not found at {root}")
    train, _ = an4.read_split(an4.find_an4_root(root), "train")
    speaker = sorted(an4.dev_speakers({e["speaker"] for e in train}, 10))[0]
    path = tmp_path_factory.mktemp("calibration") / "dev.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [e for e in train if e["speaker"] == speaker][:4]))
    return path


def test_bundle_round_trip_and_recognizer_applies_the_map(bundle_copy, dev_manifest):
    before = load_bundle(bundle_copy)["extra"]
    calibration = {"kind": "platt", "a": 0.5, "b": 1.0, "dev_ece_before": 0.1, "dev_ece_after": 0.02, "words": 9}
    store_calibration(bundle_copy, calibration)
    after = load_bundle(bundle_copy)
    assert after["extra"][KEY] == calibration
    # the tuned decoder and the aligners kept
    assert {k: v for k, v in after["extra"].items() if k != KEY} == {k: v for k, v in before.items() if k != KEY}
    assert not bundle_copy.with_name(bundle_copy.name + ".tmp").exists()

    recognizer = Recognizer.load(bundle_copy)
    assert recognizer.calibration == calibration
    wav = json.loads(dev_manifest.read_text().splitlines()[0])["audio_filepath"]
    calibrated = recognizer.transcribe(wav, timestamps=True).words
    recognizer.calibration = None
    raw = recognizer.transcribe(wav, timestamps=True).words
    assert calibrated and [w.text for w in calibrated] == [w.text for w in raw]
    assert [w.confidence for w in calibrated] == pytest.approx([calibrate(w.confidence, calibration) for w in raw])
    assert [w.confidence for w in calibrated] != pytest.approx([w.confidence for w in raw])


def test_calibrate_command_fits_on_dev_and_stores_the_map(bundle_copy, dev_manifest, tmp_path):
    run = cli("calibrate", bundle_copy, dev_manifest, "--threads", "1")
    assert run.returncode == 0, run.stderr
    assert "ECE" in run.stdout and str(bundle_copy) in run.stdout
    stored = load_bundle(bundle_copy)["extra"]
    calibration = stored[KEY]
    assert calibration["kind"] == "platt" and calibration["decoding"] == "tuned" and calibration["a"] >= 0
    assert calibration["words"] >= 4 and 0 <= calibration["dev_ece_after"] <= 1
    assert "decoding" in stored  # the tuned decoder is still there
    wav = json.loads(dev_manifest.read_text().splitlines()[0])["audio_filepath"]
    words = json.loads(cli("transcribe", bundle_copy, wav, "--format", "json").stdout)[0]["words"]
    recognizer = Recognizer.load(bundle_copy)
    recognizer.calibration = None  # the raw confidences
    raw = [w.confidence for w in recognizer.transcribe(wav, timestamps=True).words]
    assert words and [w["confidence"] for w in words] == pytest.approx([calibrate(c, calibration) for c in raw],
                                                                       abs=1e-3)  # json rounds to 4 decimals

    # no readable utterance, hence no word: one line, the bundle untouched
    unreadable = tmp_path / "bad.jsonl"
    unreadable.write_text(json.dumps({"audio_filepath": str(tmp_path / "missing.wav"), "duration": 1.0,
                                      "text": "YES"}) + "\n")
    content = bundle_copy.read_bytes()
    run = cli("calibrate", bundle_copy, unreadable)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and len(run.stderr.splitlines()) == 1
    assert "no hypothesis words" in run.stderr and bundle_copy.read_bytes() == content
    run = cli("calibrate", "an4", unreadable)  # a shipped model is never rewritten
    assert run.returncode == 2 and "calibrate the copy" in run.stderr and len(run.stderr.splitlines()) == 1
