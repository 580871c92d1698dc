"""Audio input, from files and streams: any file soundfile reads (wav, flac, ogg, mp3, NIST sphere) -> mono float32
at a given rate, whole (`load_audio`) or block by block with bounded memory (`audio_blocks`, `StreamResampler`: the
same samples as resampling the whole file)."""

import stat
from collections.abc import Iterator
from math import ceil, gcd
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from .errors import AudioError

BLOCK_SECONDS = 10.0  # read from a file at a time by audio_blocks
SOUNDFILE_ERRORS = (soundfile.LibsndfileError, RuntimeError, ValueError)
MIN_RATE, MAX_RATE = 1000, 768_000  # Hz: sample rates taken from a file's header
MAX_KERNEL = 1 << 24  # resampling filter elements: rate pairs needing more (e.g. 47999 Hz -> 16 kHz) are refused
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}


def _checked_path(path: str | Path, manifest: bool) -> Path:
    """`path` if it is a non-empty regular file, else AudioError (with advice for manifest entries when `manifest`).
    Only stat() is used: a FIFO, device or socket is refused before anything opens it (opening a FIFO blocks until
    a writer comes, for ever)."""
    path = Path(path)
    where = "check the manifest's audio_filepath" if manifest else "check the path"
    try:
        mode = path.stat().st_mode
    except OSError as err:  # missing, a broken link, a symlink loop, no permission
        raise AudioError(f"{path}: cannot open the audio file ({err.strerror}); {where}") from None
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: is a folder, not an audio file; {where}")
    if not stat.S_ISREG(mode):
        raise AudioError(f"{path}: not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')}); save the "
                         f"audio to a file first, or {where}")
    if path.stat().st_size == 0:
        advice = "re-copy or drop it from the manifest" if manifest else "re-copy it"
        raise AudioError(f"{path}: file is empty ({advice})")
    return path


def _unreadable(path: Path, err: Exception) -> AudioError:
    reason = " ".join(str(err).split())
    if "possibly a pipe" in reason:  # what libsndfile says of a regular file it cannot decode as mp3
        reason = "not a valid audio file of its kind"
    return AudioError(f"{path}: not readable as audio ({reason}); use wav/flac/ogg/mp3/sphere")


def _check_finite(samples: np.ndarray, path) -> None:
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: contains NaN or infinite samples; re-encode it")


def check_rate(rate: int, target: int, name) -> None:
    """AudioError unless audio at `rate` Hz can be resampled to `target` Hz (a sane rate, and a filter of bounded
    size: torchaudio's kernel has target/g * rate/g taps for g = gcd, 16 kHz from 47999 Hz would take 3 GB)."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz in the header is outside {MIN_RATE}-{MAX_RATE} Hz "
                         f"(corrupt header?); re-encode it at {target} Hz")
    g = gcd(int(rate), int(target))
    if rate != target and (target // g) * (rate // g + 2 * ceil(6 * rate / min(rate, target) / 0.99)) > MAX_KERNEL:
        raise AudioError(f"{name}: sample rate {rate} Hz is unusual and too costly to resample exactly to {target} "
                         f"Hz; re-encode it at {target} Hz (e.g. sox IN -r {target} OUT)")


def resample(wav: torch.Tensor, rate: int, target: int, name) -> torch.Tensor:
    """`wav` (N,) from `rate` to `target` Hz (torchaudio), after check_rate."""
    if int(rate) == int(target):
        return wav
    check_rate(int(rate), int(target), name)
    return AF.resample(wav, int(rate), int(target))


def load_audio(path: str | Path, sample_rate: int, manifest: bool = True) -> torch.Tensor:
    """Read `path`, downmix to mono and resample to `sample_rate`. Returns a float32 tensor of shape (N,).
    AudioError, with advice for a manifest entry when `manifest`, for anything that is not usable audio."""
    path = _checked_path(path, manifest)
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except SOUNDFILE_ERRORS as err:
        raise _unreadable(path, err) from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (truncated?); "
                         + ("re-copy or drop it from the manifest" if manifest else "re-copy or re-encode it"))
    _check_finite(samples, path)
    return resample(torch.from_numpy(samples.mean(axis=1)), file_rate, sample_rate, path)  # (N, C) -> (N,)


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding)."""
    path = _checked_path(path, manifest=False)
    try:
        info = soundfile.info(str(path))
    except SOUNDFILE_ERRORS as err:
        raise AudioError(f"{path}: not readable as audio ({err})") from None
    return info.frames / info.samplerate


# ------------------------------------------------------------------------------------------------- streams


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
    path = _checked_path(path, manifest=False)
    try:
        return soundfile.SoundFile(str(path))
    except SOUNDFILE_ERRORS as err:
        raise _unreadable(path, err) from None


def audio_blocks(source, rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 blocks at `rate` from a file path (read `block_seconds` at a time), a (waveform, rate) pair or
    a waveform already at `rate`."""
    if isinstance(source, (str, Path)):
        with open_audio(source) as f:
            check_rate(f.samplerate, rate, source)
            resampler = StreamResampler(f.samplerate, rate)
            blocksize = max(1, int(block_seconds * f.samplerate))
            try:
                for block in f.blocks(blocksize=blocksize, dtype="float32", always_2d=True):  # (n, C)
                    _check_finite(block, source)
                    yield resampler.push(block.mean(axis=1))  # (n, C) -> (n,)
            except (soundfile.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{source}: reading failed after {f.tell() / f.samplerate:.1f} s ({err})") from None
            yield resampler.flush()
        return
    source_rate = rate
    if isinstance(source, tuple):
        source, source_rate = source
    wav = np.asarray(source.numpy() if isinstance(source, torch.Tensor) else source, dtype=np.float32).reshape(-1)
    if int(source_rate) != rate:
        check_rate(int(source_rate), rate, "<audio>")
    resampler = StreamResampler(int(source_rate), rate)
    step = max(1, int(block_seconds * source_rate))
    for first in range(0, len(wav), step):
        yield resampler.push(wav[first: first + step])
    yield resampler.flush()


def source_seconds(source, rate: int) -> float | None:
    """Length of a path (from its header), (waveform, rate) pair or waveform at `rate`; None when unknown.
    AudioError for a path that is not a regular, non-empty file (a FIFO would block soundfile for ever)."""
    if isinstance(source, (str, Path)):
        _checked_path(source, manifest=False)
        try:
            info = soundfile.info(str(source))
        except SOUNDFILE_ERRORS:
            return None
        return info.frames / info.samplerate if info.frames > 0 else None
    if isinstance(source, tuple):
        return len(source[0]) / float(source[1])
    if isinstance(source, (np.ndarray, torch.Tensor)) and source.ndim == 1:
        return len(source) / rate
    return None
