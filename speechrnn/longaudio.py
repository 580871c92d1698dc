"""Long recordings (minutes to hours) with bounded memory: the file is read in blocks (soundfile), each block is
resampled to the model's rate (`StreamResampler`: the same samples as resampling the whole file), a VAD cuts the
stream into speech segments at pauses (`vad.StreamSegmenter`; a segment that never pauses is split at its quietest
frame after `max_length` seconds), segments are transcribed in groups of about `GROUP_SECONDS` (sorted by length
into batches by `Recognizer.transcribe_inputs`), and the texts and word times are stitched with each segment's
offset in the file. At most one block, the VAD's context, one open segment and one group of segments are in
memory at a time, whatever the length of the file.
"""

from collections.abc import Callable, Iterator
from math import ceil, gcd
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from .align import Span
from .errors import AudioError
from .vad import EnergyVAD, Segment, SegmentRules, StreamSegmenter

BLOCK_SECONDS = 10.0  # read from the file at a time
GROUP_SECONDS = 300.0  # segments collected before they are decoded together
# Segments for transcription: pauses of 0.3 s end a segment, and a segment never runs past 25 s (the models are
# trained on utterances of a few seconds; a BiLSTM degrades slowly past that, but memory and padding grow).
LONG_RULES = SegmentRules(threshold=0.5, min_silence=0.3, min_speech=0.2, pad=0.1, max_length=25.0)


class StreamResampler:
    """Resample a stream block by block to exactly the samples `torchaudio.functional.resample` gives for the
    whole stream at once (up to float rounding): each block is resampled with enough input on either side for
    the filter, and output samples are handed out only once all the input they depend on has arrived."""

    def __init__(self, orig: int, new: int, lowpass_filter_width: int = 6, rolloff: float = 0.99):
        self.orig, self.new = int(orig), int(new)
        g = gcd(self.orig, self.new)
        self.o, self.n = self.orig // g, self.new // g  # output sample j sits at input position j * o / n
        # torchaudio's kernel reaches `width` input samples before an output's block of o inputs and width after it
        self.width = ceil(lowpass_filter_width * self.o / (min(self.o, self.n) * rolloff)) + self.o + 1
        self.kwargs = dict(lowpass_filter_width=lowpass_filter_width, rolloff=rolloff)
        self.buffer = np.zeros(0, dtype=np.float32)
        self.start = 0  # input index of buffer[0]: always a multiple of o, so the output grid lines up
        self.emitted = 0  # output samples handed out
        self.total = 0  # input samples seen

    def _resample(self, end_out: int) -> np.ndarray:
        """Output samples [emitted, end_out) from the buffer."""
        if end_out <= self.emitted:
            return np.zeros(0, dtype=np.float32)
        out = AF.resample(torch.from_numpy(self.buffer), self.orig, self.new, **self.kwargs).numpy()
        first = self.start // self.o * self.n  # output index of out[0]
        return out[self.emitted - first: end_out - first]

    def push(self, block: np.ndarray) -> np.ndarray:
        block = np.asarray(block, dtype=np.float32)
        if self.o == self.n:
            return block
        self.buffer = np.concatenate([self.buffer, block])
        self.total += len(block)
        # output j needs input up to j * o / n + width
        ready = max(0, (self.total - self.width) * self.n // self.o)
        out = self._resample(ready)
        self.emitted = max(self.emitted, ready)
        # keep the input that outputs from `emitted` on need (width before them), from a multiple of o
        keep = max(0, (self.emitted * self.o // self.n - self.width) // self.o * self.o)
        if keep > self.start:
            self.buffer = self.buffer[keep - self.start:]
            self.start = keep
        return out

    def flush(self) -> np.ndarray:
        if self.o == self.n:
            return np.zeros(0, dtype=np.float32)
        out = self._resample(ceil(self.total * self.n / self.o))  # torchaudio's length for the whole stream
        self.buffer = np.zeros(0, dtype=np.float32)
        return out


def open_audio(path: str | Path) -> soundfile.SoundFile:
    """soundfile.SoundFile for reading, with load_audio's error messages."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (re-copy it)")
    try:
        return soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: not readable as audio ({err}); use wav/flac/ogg/mp3/sphere") from None


def audio_blocks(source, rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `rate` from a file path (read `block_seconds` at a time), a (waveform, rate) pair or
    a waveform already at `rate`."""
    if isinstance(source, (str, Path)):
        with open_audio(source) as f:
            resampler = StreamResampler(f.samplerate, rate)
            blocksize = max(1, int(block_seconds * f.samplerate))
            try:
                for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):
                    if not np.isfinite(block).all():
                        raise AudioError(f"{source}: contains NaN or infinite samples; re-encode it")
                    yield resampler.push(block.mean(axis=1))
            except (soundfile.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{source}: reading failed after {f.tell() / f.samplerate:.1f} s ({err})") from None
            yield resampler.flush()
        return
    source_rate = rate
    if isinstance(source, tuple):
        source, source_rate = source
    wav = np.asarray(source.numpy() if isinstance(source, torch.Tensor) else source, dtype=np.float32).reshape(-1)
    resampler = StreamResampler(int(source_rate), rate)
    step = max(1, int(block_seconds * source_rate))
    for first in range(0, len(wav), step):
        yield resampler.push(wav[first: first + step])
    yield resampler.flush()


def source_seconds(source, rate: int) -> float | None:
    """Length of a path (from its header), (waveform, rate) pair or waveform at `rate`; None when unknown."""
    if isinstance(source, (str, Path)):
        try:
            info = soundfile.info(str(source))
        except (soundfile.LibsndfileError, RuntimeError, ValueError):
            return None
        return info.frames / info.samplerate if info.frames > 0 else None
    if isinstance(source, tuple):
        return len(source[0]) / float(source[1])
    if isinstance(source, (np.ndarray, torch.Tensor)) and source.ndim == 1:
        return len(source) / rate
    return None


def transcribe_long(recognizer, source, timestamps: bool = False, vad=None, rules: SegmentRules = LONG_RULES,
                    group_seconds: float = GROUP_SECONDS, progress: Callable[[float], None] | None = None):
    """One long recording -> one recognizer.Transcript: the segments' texts joined, word times in seconds from the
    start of the recording. `progress(seconds)` is called with the audio read so far after each group."""
    from .recognizer import Transcript

    rate = recognizer.config.features.sample_rate
    texts: list[str] = []
    words: list[Span] = []
    group: list[Segment] = []

    def decode() -> None:
        results = recognizer.transcribe_inputs([torch.from_numpy(s.audio) for s in group], timestamps)
        for segment, result in zip(group, results):
            if result.text.strip():
                texts.append(result.text.strip())
            words.extend(Span(w.text, w.start + segment.start, w.end + segment.start, w.confidence)
                         for w in result.words)
        if progress:
            progress(group[-1].closed_at)
        group.clear()

    segmenter = StreamSegmenter(vad or EnergyVAD(), rate, rules)
    for block in audio_blocks(source, rate):
        for segment in segmenter.push(block):
            group.append(segment)
            if sum(len(s.audio) for s in group) >= group_seconds * rate:
                decode()
    group.extend(segmenter.flush())
    if group:
        decode()
    if progress:
        progress(segmenter.seconds)
    return Transcript("", " ".join(texts), words, segmenter.seconds)
