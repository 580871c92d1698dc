"""Audio loading: any file soundfile reads (wav, flac, ogg, mp3, NIST sphere) -> mono float32 at a given rate."""

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF

from .errors import AudioError


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Read `path`, downmix to mono and resample to `sample_rate`. Returns a float32 tensor of shape (N,)."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such audio file (check the manifest's audio_filepath)")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty (re-copy or drop it from the manifest)")
    try:
        samples, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)  # (N, C)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as err:
        raise AudioError(f"{path}: not readable as audio ({err}); use wav/flac/ogg/mp3/sphere") from None
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: holds no samples (truncated?); re-copy or drop it from the manifest")
    if not np.isfinite(samples).all():
        raise AudioError(f"{path}: contains NaN or infinite samples; re-encode it")
    wav = torch.from_numpy(samples.mean(axis=1))  # (N, C) -> (N,)
    if file_rate != sample_rate:
        wav = AF.resample(wav, file_rate, sample_rate)
    return wav


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"{path}: not readable as audio ({err})") from None
    return info.frames / info.samplerate
