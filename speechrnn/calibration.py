"""Calibrated word confidences: a word said with confidence 0.8 should be right about 80 % of the time.

The raw confidence of a word (speechrnn/align.py: the lowest of its characters' mean posteriors) ranks words well
but is not a probability (the AN4 bundles' are too low for the words they get right: words at 0.7-0.9 are right
96-98 % of the time). Here:

- `word_outcomes`: whether each hypothesis word is right, from the word alignment of hypothesis and reference
  (jiwer): a word aligned 'equal' to a reference word is right; substituted and inserted words are wrong (a
  deleted reference word has no hypothesis word, hence no confidence, and is not counted);
- `expected_calibration_error` (ECE) and `reliability_table`: the words in equal-width confidence bins, each bin's
  |accuracy - mean confidence| weighted by its share of the words;
- `fit_calibration`: Platt scaling, p = sigmoid(a * logit(raw) + b) with raw clamped to [CLAMP, 1 - CLAMP],
  fitted on dev by minimising the log-loss (Newton's method, with Platt's smoothed targets so that a dev set
  with no wrong word still gives finite parameters); `calibrate` applies it (None: the raw confidence);
- `store_calibration`: writes the fitted map into a bundle's extra ("confidence_calibration"), atomically;
  `speechrnn.recognizer.Recognizer` applies it to every word confidence it returns;
- `manifest_words`: a recognizer's raw word confidences and their outcomes on a manifest (what `speechrnn
  calibrate` fits on and benchmarks/calibration.py scores).

The map is monotonic (a >= 0), so it never reorders words: what a confidence threshold keeps stays the same set
for some other threshold; only what the number says changes.
"""

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .bundle import update_extra
from .errors import UserError
from .output import Span

KEY = "confidence_calibration"  # the bundle extra that holds the map
CLAMP = 1e-4  # raw confidences are clamped to [CLAMP, 1 - CLAMP] before the logit
BINS = 10


def word_outcomes(ref: str, hyp_words: list[Span]) -> list[bool]:
    """For each hypothesis word, in order: True when the word alignment of `ref` (normalised text) and the
    hypothesis puts it on an equal reference word; substitutions and insertions are False."""
    hyp = [w.text for w in hyp_words]
    if not hyp:
        return []
    if not ref.split():
        return [False] * len(hyp)  # every word an insertion
    import jiwer

    outcomes = [False] * len(hyp)
    for chunk in jiwer.process_words(ref, " ".join(hyp)).alignments[0]:
        if chunk.type == "equal":
            outcomes[chunk.hyp_start_idx: chunk.hyp_end_idx] = [True] * (chunk.hyp_end_idx - chunk.hyp_start_idx)
    return outcomes


def _bins(confidences: Sequence[float], outcomes: Sequence[bool], bins: int) -> tuple[np.ndarray, ...]:
    """(bin index of each word, confidences, outcomes as floats): equal-width bins over [0, 1], 1.0 in the last."""
    conf = np.asarray(confidences, dtype=np.float64)
    hits = np.asarray(outcomes, dtype=np.float64)
    if conf.shape != hits.shape:
        raise ValueError(f"{len(conf)} confidences but {len(hits)} outcomes")
    return np.clip((conf * bins).astype(np.int64), 0, bins - 1), conf, hits


def expected_calibration_error(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = BINS) -> float:
    """ECE: over `bins` equal-width confidence bins, sum of (words in bin / words) * |accuracy - mean confidence|.
    0 for no words."""
    index, conf, hits = _bins(confidences, outcomes, bins)
    if not len(conf):
        return 0.0
    counts = np.bincount(index, minlength=bins)
    gap = np.abs(np.bincount(index, hits, bins) - np.bincount(index, conf, bins))  # per bin: count * |acc - conf|
    return float(gap.sum() / counts.sum())


def reliability_table(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = BINS) -> list[dict]:
    """The non-empty bins: [{"low", "high", "words", "confidence" (mean), "accuracy"}], low to high."""
    index, conf, hits = _bins(confidences, outcomes, bins)
    rows = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            rows.append({"low": b / bins, "high": (b + 1) / bins, "words": int(mask.sum()),
                         "confidence": float(conf[mask].mean()), "accuracy": float(hits[mask].mean())})
    return rows


def _logit(confidences) -> np.ndarray:
    p = np.clip(np.asarray(confidences, dtype=np.float64), CLAMP, 1 - CLAMP)
    return np.log(p) - np.log1p(-p)


def _newton(features: np.ndarray, targets: np.ndarray, steps: int = 100) -> np.ndarray:
    """Logistic regression weights (F,) minimising the mean log-loss of sigmoid(features (N, F) @ w) against soft
    `targets` (N,): Newton steps, halved while they do not lower the loss."""
    def loss(w):
        z = features @ w
        return float(np.mean(np.logaddexp(0, z) - targets * z))

    w = np.zeros(features.shape[1])
    current = loss(w)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(features @ w)))
        grad = features.T @ (p - targets) / len(targets)
        hessian = (features * (p * (1 - p))[:, None]).T @ features / len(targets) + 1e-9 * np.eye(len(w))
        step, scale = np.linalg.solve(hessian, grad), 1.0
        while scale > 1e-6 and loss(w - scale * step) > current:
            scale /= 2
        new = loss(w - scale * step)
        if new > current:
            break
        w, done = w - scale * step, current - new < 1e-12
        current = new
        if done:
            break
    return w


def fit_calibration(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = BINS) -> dict:
    """Platt scaling fitted on (raw confidence, right or wrong) pairs: {"kind": "platt", "a", "b", "dev_ece_before",
    "dev_ece_after", "words"}. Targets are Platt's smoothed ones ((N+ + 1) / (N+ + 2) for right words, 1 / (N- + 2)
    for wrong ones). A fit with a < 0 (confidence that falls as accuracy rises) is replaced by a = 0, the dev
    accuracy for every word, so that the map stays monotonic."""
    hits = np.asarray(outcomes, dtype=bool)
    if not len(hits):
        raise UserError("calibration: no hypothesis words to fit on; give a dev manifest the model transcribes "
                        "with words")
    right, wrong = int(hits.sum()), int((~hits).sum())
    targets = np.where(hits, (right + 1) / (right + 2), 1 / (wrong + 2))
    x = _logit(confidences)
    a, b = _newton(np.stack([x, np.ones_like(x)], 1), targets)  # (N, 2): logit, bias
    if a < 0:
        a, b = 0.0, float(_newton(np.ones((len(x), 1)), targets)[0])
    calibration = {"kind": "platt", "a": float(a), "b": float(b)}
    after = [calibrate(c, calibration) for c in confidences]
    return {**calibration, "dev_ece_before": expected_calibration_error(confidences, hits, bins),
            "dev_ece_after": expected_calibration_error(after, hits, bins), "words": len(hits)}


def calibrate(confidence: float, calibration: dict | None) -> float:
    """A raw word confidence through the calibration map (fit_calibration's dict); None: unchanged."""
    if calibration is None:
        return confidence
    if calibration.get("kind") != "platt":
        raise UserError(f"confidence calibration of kind {calibration.get('kind')!r} is not known to this speechrnn "
                        "(it knows 'platt'); upgrade speechrnn or run `speechrnn calibrate` again")
    p = min(max(float(confidence), CLAMP), 1 - CLAMP)
    z = calibration["a"] * (math.log(p) - math.log1p(-p)) + calibration["b"]
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def store_calibration(bundle_path: str | Path, calibration: dict) -> None:
    """Rewrite the bundle (atomically) with `calibration` as its extra["confidence_calibration"]; the rest is kept."""
    update_extra(bundle_path, **{KEY: calibration})


def manifest_words(recognizer, manifest: str | Path) -> tuple[list[float], list[bool], int]:
    """A speech recognizer (speechrnn.recognizer.Recognizer, its calibration switched off here) on an audio
    manifest: (raw confidence of every hypothesis word, whether it is right, utterances that could not be read)."""
    from .data import read_manifest
    from .text import normalize

    entries = read_manifest(manifest)
    saved, recognizer.calibration = recognizer.calibration, None
    confidences, outcomes, unreadable = [], [], 0
    try:
        results = recognizer.transcribe_each([e["audio_filepath"] for e in entries], timestamps=True)
        for entry, result in zip(entries, results):
            if isinstance(result, UserError):
                unreadable += 1
                continue
            confidences += [w.confidence for w in result.words]
            outcomes += word_outcomes(normalize(entry["text"], recognizer.tokenizer.config), result.words)
    finally:
        recognizer.calibration = saved
    return confidences, outcomes, unreadable
