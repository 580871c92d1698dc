"""Lines of handwriting composed from one writer's isolated words, placed as a person writes a line.

`compose_line(words, rng)` puts the words left to right on a shared baseline that drifts:
  - sizes: each word keeps its writer's own size (one tablet, one hand), times a small random scale;
  - baseline: the words' vertical centres (writing_box) sit on a line tilted by a small random angle, each word
    off it by a small random step, so the line wanders as a hand does;
  - gaps: a word gap drawn around 1.1 writing heights (lognormal), and never narrower than 1.3 times the widest
    gap between strokes inside either neighbouring word, so that a space is where a reader would see one;
  - slant and letter shapes are the words' own (nothing is sheared or rotated per word);
  - time: each word starts a pen-up pause (0.2-0.8 s) after the previous one ended; inks without a time channel
    give a line without one.
The text is the words' texts joined by single spaces. Deterministic given `rng`'s state.
"""

from __future__ import annotations

import math

import numpy as np

from .features import writing_box
from .readers import Ink

WORD_GAP = 1.1  # median word gap, in writing heights
WORD_GAP_SPREAD = 0.3  # std of its log
MIN_GAP_OVER_LETTER_GAP = 1.3  # a word gap is at least this times the widest gap inside a neighbouring word
SCALE_SPREAD = 0.05  # std of the log of each word's size change
TILT_DEGREES = 1.5  # std of the line's angle
WORD_STEP = 0.06  # std of each word's vertical offset from the line, in heights


def widest_inner_gap(strokes: list[np.ndarray]) -> float:
    """The widest horizontal gap between strokes of one word (0 when they all overlap in x): strokes in order of
    their left end, a gap where one starts right of everything before it."""
    spans = sorted((float(s[:, 0].min()), float(s[:, 0].max())) for s in strokes if len(s))
    widest, reach = 0.0, -math.inf
    for lo, hi in spans:
        if reach > -math.inf and lo > reach:
            widest = max(widest, lo - reach)
        reach = max(reach, hi)
    return widest


def compose_line(words: list[Ink], rng: np.random.Generator) -> Ink:
    """One line of `words` (Inks of one writer, y up), as the module docstring describes."""
    if not words:
        raise ValueError("compose_line needs at least one word")
    with_time = all(w.has_time for w in words)
    placed: list[list[np.ndarray]] = []
    heights, inner_gaps = [], []
    for word in words:
        strokes = [np.asarray(s, dtype=np.float64)[:, : 3 if with_time else 2].copy() for s in word.strokes if len(s)]
        x0, yc, height = writing_box(Ink(strokes))
        scale = math.exp(rng.normal(0.0, SCALE_SPREAD))
        for s in strokes:  # (N, 2|3): x from 0, y centred on the word's centre, then scaled
            s[:, 0] = (s[:, 0] - x0) * scale
            s[:, 1] = (s[:, 1] - yc) * scale
        placed.append(strokes)
        heights.append(height * scale)
        inner_gaps.append(widest_inner_gap(strokes))
    line_height = float(np.median(heights))
    tilt = math.tan(math.radians(rng.normal(0.0, TILT_DEGREES)))
    out: list[np.ndarray] = []
    x, t = 0.0, 0.0
    for k, strokes in enumerate(placed):
        if k:
            gap = line_height * math.exp(rng.normal(math.log(WORD_GAP), WORD_GAP_SPREAD))
            x += max(gap, MIN_GAP_OVER_LETTER_GAP * max(inner_gaps[k], inner_gaps[k - 1]))
        dy = rng.normal(0.0, WORD_STEP) * line_height
        t0 = min(float(s[0, 2]) for s in strokes) if with_time else 0.0
        for s in strokes:
            s[:, 1] += tilt * (s[:, 0] + x) + dy
            s[:, 0] += x
            if with_time:
                s[:, 2] += t - t0
            out.append(s)
        x = max(float(s[:, 0].max()) for s in out)
        if with_time:
            t = max(float(s[:, 2].max()) for s in strokes) + rng.uniform(0.2, 0.8)
    return Ink(out, " ".join((w.text or "").strip() for w in words))


def line_lengths(count: int, rng: np.random.Generator, shortest: int = 2, longest: int = 10) -> list[int]:
    """Numbers of words (each in shortest..longest, uniformly) adding up to `count` words: one writer's words cut
    into lines. The last line takes what is left (it may be shorter than `shortest` when `count` is)."""
    lengths = []
    while count > 0:
        n = min(int(rng.integers(shortest, longest + 1)), count)
        if count - n and count - n < shortest:  # never leave a one-word tail
            n = count if count <= longest else count - shortest
        lengths.append(n)
        count -= n
    return lengths
