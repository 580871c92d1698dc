"""Voice-activity detection and cutting audio into speech segments, for long recordings and the microphone demo.

A VAD is any object with two members (`EnergyVAD` here; `tasks.tagger.inference.TaggerVAD`, a trained frame tagger,
is the other):

    frame_shift                              seconds per frame; frame i is centred at i * frame_shift
    speech_probability(samples, rate)        mono float32 (N,) -> (n_frames,) in [0, 1]

`speech_segments` turns a whole probability track into (start, end) seconds; `StreamSegmenter` does the same on audio
pushed block by block (a microphone, a file read in blocks) with bounded memory, and hands out each segment's audio
as soon as it closes. Both run the same rules (`FrameSegmenter`): a segment opens at a frame with probability >=
threshold, closes after `min_silence` seconds below it, is dropped when its speech spans less than `min_speech`,
gets `pad` seconds of audio either side, and is split at its lowest-energy frame in its second half when it reaches
`max_length` seconds without closing (speech that never pauses).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError
from .tasks.tagger.inference import TaggerVAD


class EnergyVAD:
    """Log energy against an adaptive noise floor. The floor is the minimum of the smoothed frame energy (dB) over
    the last `floor_window` seconds, but never below `min_floor_db` (digital silence would otherwise put it at -100
    dB and make any background noise look like speech). A frame's speech probability is
    sigmoid((energy - floor - snr_db) / slope_db): 0.5 at `snr_db` above the floor."""

    def __init__(self, frame_shift: float = 0.01, frame_length: float = 0.025, smooth: float = 0.05,
                 floor_window: float = 4.0, snr_db: float = 12.0, slope_db: float = 2.0, min_floor_db: float = -70.0):
        self.frame_shift, self.frame_length, self.smooth = frame_shift, frame_length, smooth
        self.floor_window, self.snr_db, self.slope_db, self.min_floor_db = floor_window, snr_db, slope_db, min_floor_db

    def energy_db(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """Log energy (dB re full scale) of frames of `frame_length` centred at i * frame_shift, i = 0 .. N // hop.
        (N,) -> (N // hop + 1,); nothing for no samples."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        if len(samples) == 0:
            return np.zeros(0)
        hop, win = max(1, round(self.frame_shift * rate)), max(1, round(self.frame_length * rate))
        frames = len(samples) // hop + 1
        padded = np.concatenate([np.zeros(win // 2), samples, np.zeros(win)])
        power = np.concatenate([[0.0], np.cumsum(padded**2)])  # running sums: any window's energy in O(1)
        starts = np.arange(frames) * hop
        energy = (power[starts + win] - power[starts]) / win
        return 10 * np.log10(np.maximum(energy, 1e-10))

    def speech_probability(self, samples: np.ndarray, rate: int) -> np.ndarray:
        energy = self.energy_db(samples, rate)
        if len(energy) == 0:
            return np.zeros(0, dtype=np.float32)
        energy = moving_average(energy, max(1, round(self.smooth / self.frame_shift)))
        floor = np.maximum(trailing_min(energy, max(1, round(self.floor_window / self.frame_shift))),
                           self.min_floor_db)
        z = (energy - floor - self.snr_db) / self.slope_db
        return (1 / (1 + np.exp(-np.clip(z, -30, 30)))).astype(np.float32)


def moving_average(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of `width` frames; the ends are averaged over the frames that exist."""
    if width <= 1 or len(x) == 0:
        return x
    kernel = np.ones(width)
    sums = np.convolve(x, kernel, mode="same")
    counts = np.convolve(np.ones(len(x)), kernel, mode="same")
    return sums / counts


def trailing_min(x: np.ndarray, width: int) -> np.ndarray:
    """out[t] = min(x[max(0, t - width + 1) : t + 1])."""
    if width <= 1 or len(x) == 0:
        return x
    padded = np.concatenate([np.full(width - 1, np.inf), x])
    out = np.empty_like(x)
    step = 65536  # bounded temporary memory for long inputs
    for first in range(0, len(x), step):
        view = np.lib.stride_tricks.sliding_window_view(padded[first: first + step + width - 1], width)
        out[first: first + len(view)] = view.min(axis=1)
    return out


def load_vad(spec: str = "energy", device: str = "cpu"):
    """"energy" -> EnergyVAD(); otherwise the path of a frame-tagger bundle (`speechrnn tagger train`)."""
    if spec == "energy":
        return EnergyVAD()
    if not Path(spec).is_file():
        raise UserError(f"--vad {spec}: neither 'energy' nor a frame-tagger bundle file")
    return TaggerVAD.load(spec, device)


# ---------------------------------------------------------------------------------------------- segmentation

@dataclass
class SegmentRules:
    threshold: float = 0.5  # speech when the probability is at least this
    min_silence: float = 0.3  # s below the threshold that close a segment
    min_speech: float = 0.2  # s: shorter segments (first to last speech frame) are dropped
    pad: float = 0.1  # s of audio kept before and after the speech
    max_length: float | None = None  # s: longer segments are split at their lowest-energy frame


class FrameSegmenter:
    """Incremental segmentation of a probability track, frame by frame. push() returns the segments that closed,
    as (start, end) frame indices, end exclusive, padding included; consecutive segments never overlap."""

    def __init__(self, frame_shift: float, rules: SegmentRules):
        self.rules = rules
        frames = lambda seconds: max(1, round(seconds / frame_shift))  # noqa: E731
        self.min_silence, self.min_speech = frames(rules.min_silence), frames(rules.min_speech)
        self.pad = round(rules.pad / frame_shift)
        self.max_length = frames(rules.max_length) if rules.max_length else None
        self.frames = 0  # frames seen
        self.start: int | None = None  # first speech frame of the open segment
        self.last = 0  # its last speech frame
        self.previous_end = 0  # end of the last segment handed out
        self.energy: list[float] = []  # energy of the open segment's frames from self.start on (for splits)

    def open_start(self) -> int | None:
        """First frame (padding included) of the open segment, None when none is open."""
        return None if self.start is None else max(self.start - self.pad, self.previous_end)

    def _close(self, end: int) -> list[tuple[int, int]]:
        """Close the open segment; its speech ended at frame end (exclusive)."""
        start, self.start, self.energy = self.start, None, []
        if end - start < self.min_speech:
            return []
        segment = (max(start - self.pad, self.previous_end), min(end + self.pad, self.frames))
        self.previous_end = segment[1]
        return [segment]

    def push(self, probs: np.ndarray, energy: np.ndarray | None = None) -> list[tuple[int, int]]:
        out = []
        for k, p in enumerate(np.asarray(probs, dtype=np.float64)):
            t = self.frames
            self.frames += 1
            speech = p >= self.rules.threshold
            if self.start is None:
                if not speech:
                    continue
                self.start, self.last = t, t
            elif speech:
                self.last = t
            elif t - self.last >= self.min_silence:
                out += self._close(self.last + 1)
                continue
            self.energy.append(float(energy[k]) if energy is not None else p)
            if self.max_length and t + 1 - self.start >= self.max_length:  # no pause: cut at the quietest frame
                half = self.max_length // 2
                cut = self.start + half + int(np.argmin(self.energy[half:]))  # the new segment starts there
                segment = (max(self.start - self.pad, self.previous_end), max(cut, self.start + 1))
                self.previous_end = segment[1]
                out.append(segment)
                self.energy = self.energy[segment[1] - self.start:]
                self.start, self.last = segment[1], max(self.last, segment[1])
        return out

    def flush(self) -> list[tuple[int, int]]:
        """End of the track: close the open segment (its end padding as far as the track goes)."""
        return self._close(self.last + 1) if self.start is not None else []


def speech_segments(prob: np.ndarray, frame_shift: float, threshold: float = 0.5, min_silence: float = 0.3,
                    min_speech: float = 0.2, pad: float = 0.1, max_length: float | None = None,
                    energy: np.ndarray | None = None) -> list[tuple[float, float]]:
    """A whole speech-probability track -> [(start, end)] seconds of its speech segments (see the module
    docstring). With max_length, a segment that reaches it is cut at its lowest `energy` frame (lowest
    probability when no energy is given)."""
    segmenter = FrameSegmenter(frame_shift, SegmentRules(threshold, min_silence, min_speech, pad, max_length))
    frames = segmenter.push(prob, energy) + segmenter.flush()
    return [(start * frame_shift, end * frame_shift) for start, end in frames]


@dataclass
class Segment:
    start: float  # s from the start of the stream (padding included)
    end: float
    audio: np.ndarray  # the samples from start to end, at the stream's rate
    closed_at: float  # s of audio the segmenter had been given when the segment closed


class StreamSegmenter:
    """Audio pushed in blocks of any size -> closed speech segments with their audio; memory stays bounded.

    The VAD runs on each new stretch of audio with `context` seconds of the audio before it (a VAD with an
    adaptive floor or a recurrent tagger needs some history), and the last `lookahead` seconds of frames wait for
    the next block (a centred smoothing looks ahead), so the probabilities are those of one pass over the whole
    stream. Frame energies (dB) pick the split point of segments longer than rules.max_length."""

    def __init__(self, vad, rate: int, rules: SegmentRules, context: float = 5.0, lookahead: float = 0.1):
        self.vad, self.rate, self.rules = vad, rate, rules
        self.shift = vad.frame_shift
        self.hop = self.shift * rate  # samples per frame
        self.frames = FrameSegmenter(self.shift, rules)
        self.context = round(context / self.shift)
        self.lookahead = lookahead
        self.buffer = np.zeros(0, dtype=np.float32)
        self.buffer_start = 0  # sample index of buffer[0] in the stream
        self.total = 0  # samples pushed
        self.done = 0  # frames given to the FrameSegmenter
        self.energy_meter = EnergyVAD(frame_shift=self.shift)

    def _sample(self, frame: int) -> int:
        """Sample index of frame `frame`'s centre: where a segment starting (or ending, exclusive) there is cut."""
        return int(round(frame * self.hop))

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self.buffer[max(0, start - self.buffer_start): max(0, end - self.buffer_start)]

    def _segments(self, spans: list[tuple[int, int]], final: bool) -> list[Segment]:
        out = []
        for first, last in spans:
            start, end = self._sample(first), self._sample(last)
            if final and last >= self.done:  # the last segment of the stream keeps everything to the end
                end = self.total
            audio = self._slice(start, min(end, self.total)).copy()
            out.append(Segment(start / self.rate, min(end, self.total) / self.rate, audio, self.total / self.rate))
        return out

    def _run_vad(self, final: bool) -> list[Segment]:
        first = max(0, self.done - self.context)  # VAD window: frames from `first` on, on the global grid
        window = self._slice(self._sample(first), self.total)
        if len(window) == 0:
            return []
        probs = np.asarray(self.vad.speech_probability(window, self.rate), dtype=np.float32).reshape(-1)
        # frame i of the window is centred at (first + i) * shift; take the new ones whose audio is all here
        # (plus the lookahead), or all of them at the end of the stream
        usable = len(probs)
        if not final:  # global frame g is usable when g * shift + lookahead <= the audio seen
            usable = min(usable, int(np.floor((self.total / self.rate - self.lookahead) / self.shift)) + 1 - first)
        new = probs[self.done - first: max(self.done - first, usable)]
        if len(new) == 0:
            return []
        energy = self.energy_meter.energy_db(window, self.rate)[self.done - first:][: len(new)]
        if len(energy) < len(new):
            energy = np.pad(energy, (0, len(new) - len(energy)), constant_values=-100.0)
        spans = self.frames.push(new, energy)
        self.done += len(new)
        return self._segments(spans, False)

    def push(self, samples: np.ndarray) -> list[Segment]:
        """Add mono samples at `rate`; returns the segments that closed."""
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.buffer = np.concatenate([self.buffer, samples])
        self.total += len(samples)
        out = self._run_vad(final=False)
        # keep the VAD's context and the open segment's audio; drop the rest
        keep = self._sample(max(0, self.done - self.context - 1))
        open_start = self.frames.open_start()
        if open_start is not None:
            keep = min(keep, self._sample(open_start))
        if keep > self.buffer_start:
            self.buffer = self.buffer[keep - self.buffer_start:]
            self.buffer_start = keep
        return out

    def flush(self) -> list[Segment]:
        """End of the stream: the remaining frames, and the open segment closed."""
        out = self._run_vad(final=True)
        return out + self._segments(self.frames.flush(), True)

    def open_audio(self) -> tuple[float, np.ndarray] | None:
        """(start s, samples so far) of the segment now open, or None."""
        start = self.frames.open_start()
        if start is None:
            return None
        return self._sample(start) / self.rate, self._slice(self._sample(start), self.total).copy()

    @property
    def seconds(self) -> float:
        return self.total / self.rate
