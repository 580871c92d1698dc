"""The speech / no-speech and ink / no-ink gate: a recognizer says nothing when there is nothing to read.

A CTC model trained only on speech has never seen silence, noise or a click on its own, and it reads a letter into
them with high confidence (the shipped AN4 model: "S" for 10 s of silence, "X" for 50 ms of noise), so its own
posteriors cannot tell; the gate looks at the input instead, before the model runs. An input the gate stops gets an
empty transcript, and every transcript says what the gate decided (`Transcript.gate`, the "gate" field of json
output): {"speech": true|false, "reason": ...} for audio, {"ink": true|false, "reason": ...} for ink.

Audio: speech is sound that lasts and that is voiced. There must be at least `min_speech` seconds (0.1 s, about
the shortest syllable) of sustained sound in one stretch: the waveform is cut into `block`-second blocks (10 ms), a
block's level is its energy in dB re full scale, median-filtered over 3 blocks (a click, which fills one block,
disappears; a one-block dip inside speech is filled); the background is the `floor_percentile` (10th) percentile
of the levels, but never below `min_floor_db` (-70 dBFS: digital silence would put it at -100 dB), and a block is
sound when it is `snr_db` (10 dB) over the background. So digital or near silence, steady noise of any level (its
blocks sit at its own background), clicks and anything under 0.1 s have none. A word cut tight to its edges (FSDD's
clips) has little or no background of its own: there, blocks within `core_db` (6 dB) of the loudest count as
sound too, and an input with under `min_speech` seconds of blocks 2 x `snr_db` below its loudest (no room for a
background) passes when it is voiced without a break for `min_vowel` seconds (50 ms, a vowel; noise reaches 30 ms
at most) and is not silence. And there must be `min_voiced`
seconds (30 ms) of voiced frames, periodic at a lag of one pitch period (70-400 Hz, `voicing`): every word has a
vowel, while a burst of noise, faded in or not, white, pink or brown, has no period. The settings are physical, not
fitted to data; benchmarks/eval_gate.py measures the margins on synthetic non-speech and on AN4 (dev's utterances
have 0.18 s or more of sustained sound and 0.09 s or more voiced).

Ink: at least `min_points` distinct pen positions and an extent of at least `min_extent` times the typical step
between consecutive points (a tap of the pen, a dot, leaves a few samples on almost one spot; the smallest letter
written on a tablet has tens of samples spread over many steps).
"""

from dataclasses import dataclass

import numpy as np


def passes(decision: dict | None) -> bool:
    """Whether a decision of Gate.audio / Gate.ink lets the input through (None, no gate: it does)."""
    return decision is None or bool(decision.get("speech", decision.get("ink", True)))


@dataclass
class Gate:
    min_speech: float = 0.1  # s of sustained sound in one stretch
    block: float = 0.01  # s per level block
    snr_db: float = 10.0  # dB over the background that a block of sound has
    floor_percentile: float = 10.0  # the background: this percentile of the block levels...
    min_floor_db: float = -70.0  # ...but at least this (dB re full scale)
    core_db: float = 6.0  # blocks this close to the loudest are sound too, when it is snr_db over the background
    pitch: tuple[float, float] = (70.0, 400.0)  # Hz: the voice's fundamental frequency lies in this range
    min_periodicity: float = 0.4  # a frame is voiced when its normalised autocorrelation peaks at least this high
    min_voiced: float = 0.03  # s of voiced frames (10 ms apart) that speech has
    min_vowel: float = 0.05  # s voiced without a break: speech even with no sustained sound over a background
    min_points: int = 8  # ink: distinct pen positions
    min_extent: float = 3.0  # ink: extent (the larger side of its box) in typical steps between points

    def audio(self, samples, rate: int) -> dict:
        """{"speech": bool, "reason": str} for mono samples (N,) at `rate`."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        hop = max(1, round(self.block * rate))
        blocks = len(samples) // hop
        needed = max(1, round(self.min_speech / self.block))
        if blocks < needed:
            return {"speech": False, "reason": f"{len(samples) / rate:.3f} s of audio, under the "
                                               f"{self.min_speech:g} s a word takes"}
        power = np.mean(samples[: blocks * hop].reshape(blocks, hop) ** 2, axis=1)
        level = 10 * np.log10(np.maximum(power, 1e-10))
        level = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(level, 1, mode="reflect"), 3), axis=1)
        floor = max(float(np.percentile(level, self.floor_percentile)), self.min_floor_db)
        sound = level >= floor + self.snr_db
        if sound.any():  # the loud core of an input with no background of its own (a word cut tight)
            sound |= level >= level.max() - self.core_db
        longest = longest_run(sound)
        quiet = int((level < level.max() - 2 * self.snr_db).sum())  # blocks that could be a background
        audible = level.max() >= self.min_floor_db + self.snr_db
        if longest < needed and (quiet >= needed or not audible):
            voiced = None  # neither rule can pass it: no voicing to compute
        else:
            voiced = voicing(samples, rate, self.pitch) >= self.min_periodicity
        if longest >= needed:
            if voiced.sum() * self.block >= self.min_voiced:
                return {"speech": True, "reason": f"sustained sound for {longest * self.block:.2f} s at a stretch, "
                                                  f"voiced for {voiced.sum() * self.block:.2f} s"}
            return {"speech": False, "reason": f"no voice: {longest * self.block:.2f} s of sustained sound but "
                                               f"{voiced.sum() * self.block:.2f} s voiced, under "
                                               f"{self.min_voiced:g} s (noise)"}
        vowel = longest_run(voiced) if voiced is not None else 0
        if vowel * self.block >= self.min_vowel:
            return {"speech": True, "reason": f"voiced without a break for {vowel * self.block:.2f} s (a vowel; "
                                              f"no background to stand out from)"}
        if not audible:
            return {"speech": False, "reason": f"silence (loudest {self.block * 1000:g} ms at "
                                               f"{level.max():.0f} dBFS)"}
        return {"speech": False, "reason": f"no sustained sound: the longest stretch {self.snr_db:g} dB over the "
                                           f"background is {longest * self.block:.2f} s, under {self.min_speech:g} s"}

    def ink(self, ink) -> dict:
        """{"ink": bool, "reason": str} for an ink.Ink (strokes of x, y[, t] points)."""
        strokes = [np.asarray(s, dtype=np.float64).reshape(len(s), -1)[:, :2] for s in ink.strokes if len(s)]
        steps = [np.hypot(*np.diff(s, axis=0).T) for s in strokes]
        moves = np.concatenate([d[d > 0] for d in steps]) if steps else np.zeros(0)
        points = len(strokes) + len(moves)  # distinct positions: each stroke's first and each move
        if points < self.min_points:
            return {"ink": False, "reason": f"{points} distinct pen position(s), under the {self.min_points} "
                                            f"a letter takes"}
        both = np.concatenate(strokes)
        extent = float(np.max(np.ptp(both, axis=0)))
        step = float(np.median(moves)) if len(moves) else 0.0
        if not np.isfinite(extent) or extent < self.min_extent * step or extent == 0:
            return {"ink": False, "reason": f"a dot: the ink spans {extent / step if step else 0:.1f} pen steps, "
                                            f"under {self.min_extent:g}"}
        return {"ink": True, "reason": f"{points} pen positions over {extent / step:.0f} pen steps"}


def longest_run(flags: np.ndarray) -> int:
    """The length of the longest run of True in a bool array (N,)."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flags.astype(np.int8), [0]])))
    return int((edges[1::2] - edges[::2]).max()) if len(edges) else 0


def voicing(samples: np.ndarray, rate: int, pitch: tuple[float, float] = (70.0, 400.0), frame: float = 0.04,
            hop: float = 0.01) -> np.ndarray:
    """Periodicity of frames `frame` s long every `hop` s of mono samples (N,): the highest normalised
    autocorrelation at a lag of one pitch period (1 / pitch[1] to 1 / pitch[0] s), looked for only after the
    autocorrelation first turns negative (so low-frequency content alone does not count), on pre-emphasised samples
    (so the slope of pink or brown noise does not either). About 0.1-0.2 for noise, 0.5-0.95 for voiced speech.
    (N,) -> (frames,); nothing when N is under one frame."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    n, step = round(frame * rate), max(1, round(hop * rate))
    if len(x) < n or n < 2:
        return np.zeros(0)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]])
    window = np.hanning(n)
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::step]
    frames = (frames - frames.mean(axis=1, keepdims=True)) * window
    auto = np.fft.irfft(np.abs(np.fft.rfft(frames, 2 * n)) ** 2)[:, :n]  # (frames, lags)
    window_auto = np.fft.irfft(np.abs(np.fft.rfft(window, 2 * n)) ** 2)[:n]
    auto = auto / np.maximum(auto[:, :1], 1e-20) / np.maximum(window_auto / window_auto[0], 1e-3)
    lags = np.arange(int(rate / pitch[1]), min(int(rate / pitch[0]), n - 1) + 1)
    first_negative = np.argmax(auto < 0, axis=1)  # 0 when it never turns negative: then no lag counts
    first_negative[(auto >= 0).all(axis=1)] = n
    candidates = np.where(lags[None, :] > first_negative[:, None], auto[:, lags], -1.0)
    return candidates.max(axis=1)
