"""Waveform augmentation for training: the conditions users' audio comes in, drawn per utterance.

Each transform is a config switch (a probability, and the range its parameters are drawn from). The chain follows
the path of sound from a mouth to a file: speech -> room (silence and room tone at the edges, or edges cut) ->
additive noise -> channel (telephone bandwidth) -> gain and clipping -> codec (mp3 / ogg at low bitrates).
Every draw comes from a generator seeded by (seed, epoch, index), so a resumed run draws what an uninterrupted one
would, on any number of data-loader workers.

`CONDITIONS` holds the same transforms at fixed settings: the test conditions of `benchmarks/robustness.py`.
"""

import io
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

NOISE_COLORS = ("white", "pink", "brown")
CODECS = ("mp3", "ogg")


def _range(low: float, high: float, allowed: str):
    return field(default_factory=lambda: [low, high], metadata={"range": allowed})


@dataclass
class AugmentConfig:
    start_epoch: int = field(default=1, metadata={"range": ">= 1"})  # from this epoch on (CTC first learns to align
    # on clean audio: from scratch, heavy augmentation keeps it on its all-blank plateau for tens of epochs)
    # silence at the edges: with probability `pad`, 0 to pad_seconds[1] s at each end (drawn per end), digital
    # silence or room tone (coloured noise pad_level_db below the speech); with probability `trim`, the silence
    # already at the edges is cut at a drawn point (speech that starts on the first sample)
    pad: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    pad_seconds: list[float] = _range(0.0, 1.0, ">= 0")
    pad_level_db: list[float] = _range(-60.0, -30.0, "<= 0")
    trim: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    # additive noise at an SNR (dB, relative to the utterance's mean power) drawn from noise_snr
    noise: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    noise_snr: list[float] = _range(5.0, 30.0, "> -100")
    noise_colors: list[str] = field(default_factory=lambda: list(NOISE_COLORS), metadata={"choices": NOISE_COLORS})
    # telephone and other narrow channels: down to a rate drawn from narrowband_rates and back (nothing above half
    # that rate is left), with a 300 Hz high-pass half of the time
    narrowband: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    narrowband_rates: list[int] = field(default_factory=lambda: [8000], metadata={"range": "> 0"})
    # level: a gain drawn in dB; then, with probability `clip`, the peak driven clip_db over full scale and clipped
    gain: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    gain_db: list[float] = _range(-25.0, 10.0, "> -100")
    clip: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    clip_db: list[float] = _range(3.0, 15.0, ">= 0")
    # lossy codecs through soundfile (libsndfile): mp3 or ogg vorbis at a compression level drawn from
    # codec_levels (0 = best, 1 = smallest: at 16 kHz mp3 0.85 is about 32 kbit/s)
    codec: float = field(default=0.0, metadata={"range": ">= 0 and <= 1"})
    codecs: list[str] = field(default_factory=lambda: list(CODECS), metadata={"choices": CODECS})
    codec_levels: list[float] = _range(0.6, 0.9, ">= 0 and <= 1")

    def enabled(self) -> bool:
        return any((self.pad, self.trim, self.noise, self.narrowband, self.gain, self.clip, self.codec))


def colored_noise(num_samples: int, color: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise (N,) whose power falls as 1/f^0 (white), 1/f (pink) or 1/f^2 (brown)."""
    white = rng.standard_normal(num_samples)
    if color != "white" and num_samples > 1:
        exponent = {"pink": 0.5, "brown": 1.0}[color]  # amplitude ~ f^-exponent
        spectrum = np.fft.rfft(white)
        freqs = np.arange(len(spectrum), dtype=np.float64)
        freqs[0] = 1.0
        white = np.fft.irfft(spectrum / freqs**exponent, n=num_samples)
    return (white / max(np.sqrt(np.mean(white**2)), 1e-12)).astype(np.float32)


def mean_power(wav: torch.Tensor) -> float:
    return float(wav.double().square().mean()) if len(wav) else 0.0


def add_noise(wav: torch.Tensor, snr_db: float, color: str, rng: np.random.Generator) -> torch.Tensor:
    power = mean_power(wav)
    if power <= 0:
        return wav
    noise = torch.from_numpy(colored_noise(len(wav), color, rng))
    return wav + noise * float(np.sqrt(power / 10 ** (snr_db / 10)))


def narrowband(wav: torch.Tensor, sample_rate: int, channel_rate: int, highpass: bool = False) -> torch.Tensor:
    """`wav` as a channel sampled at `channel_rate` would pass it, read back at `sample_rate`."""
    if channel_rate < sample_rate:
        wav = AF.resample(AF.resample(wav, sample_rate, channel_rate), channel_rate, sample_rate)
    if highpass:
        wav = AF.highpass_biquad(wav, sample_rate, 300.0)
    return wav


def clip(wav: torch.Tensor, over_db: float) -> torch.Tensor:
    """Drive the peak `over_db` dB over full scale (1.0), then clip at +-1."""
    peak = float(wav.abs().max()) if len(wav) else 0.0
    if peak <= 0:
        return wav
    return (wav * (10 ** (over_db / 20) / peak)).clamp(-1.0, 1.0)


def codec_round_trip(wav: torch.Tensor, sample_rate: int, codec: str, level: float) -> torch.Tensor:
    """Encode (N,) with a lossy codec at compression `level` in memory and decode it; the length is kept (the
    encoder's delay stays at the start, as it does in a real file)."""
    buffer = io.BytesIO()
    audio = wav.clamp(-1.0, 1.0).numpy()
    if codec == "mp3":
        sf.write(buffer, audio, sample_rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                 bitrate_mode="CONSTANT")
    else:
        sf.write(buffer, audio, sample_rate, format="OGG", subtype="VORBIS", compression_level=level)
    buffer.seek(0)
    decoded, _ = sf.read(buffer, dtype="float32", always_2d=False)
    out = torch.zeros_like(wav)
    out[: min(len(wav), len(decoded))] = torch.from_numpy(decoded[: len(wav)])
    return out


def speech_bounds(wav: torch.Tensor, sample_rate: int, floor_db: float = 35.0) -> tuple[int, int]:
    """First and last sample of the 10 ms frames within `floor_db` of the loudest frame (the whole input if none)."""
    hop = max(sample_rate // 100, 1)
    frames = len(wav) // hop
    if frames < 2:
        return 0, len(wav)
    energy = wav[: frames * hop].double().reshape(frames, hop).square().mean(1)  # (N,) -> (frames, hop) -> (frames,)
    level = 10 * torch.log10(energy + 1e-12)
    loud = torch.nonzero(level > level.max() - floor_db).flatten()
    return int(loud[0]) * hop, min(int(loud[-1] + 1) * hop, len(wav))


def pad_edges(wav: torch.Tensor, before: int, after: int, level_db: float | None, color: str,
              rng: np.random.Generator) -> torch.Tensor:
    """`before` and `after` samples of digital silence (level_db None) or of noise level_db under the speech."""
    if level_db is None:
        return torch.cat([wav.new_zeros(before), wav, wav.new_zeros(after)])
    scale = float(np.sqrt(mean_power(wav) * 10 ** (level_db / 10)))
    tone = torch.from_numpy(colored_noise(before + len(wav) + after, color, rng)) * scale
    return torch.cat([tone[:before], wav + tone[before: before + len(wav)], tone[before + len(wav):]])


def augment(wav: torch.Tensor, sample_rate: int, config: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """One draw of the chain on a waveform (N,) -> (N',). A transform whose probability is 0 draws nothing."""
    def happens(p: float) -> bool:
        return p > 0 and rng.random() < p

    if happens(config.trim):
        start, end = speech_bounds(wav, sample_rate)
        wav = wav[int(rng.integers(0, start + 1)): int(rng.integers(end, len(wav) + 1))]
    if happens(config.pad):
        before, after = (int(rng.uniform(*config.pad_seconds) * sample_rate) for _ in range(2))
        level = rng.uniform(*config.pad_level_db) if rng.random() < 0.5 else None
        wav = pad_edges(wav, before, after, level, str(rng.choice(NOISE_COLORS)), rng)
    if happens(config.noise):
        wav = add_noise(wav, rng.uniform(*config.noise_snr), str(rng.choice(config.noise_colors)), rng)
    if happens(config.narrowband):
        wav = narrowband(wav, sample_rate, int(rng.choice(config.narrowband_rates)), highpass=rng.random() < 0.5)
    if happens(config.gain):
        wav = wav * 10 ** (rng.uniform(*config.gain_db) / 20)
    if happens(config.clip):
        wav = clip(wav, rng.uniform(*config.clip_db))
    if happens(config.codec):
        wav = codec_round_trip(wav, sample_rate, str(rng.choice(config.codecs)), rng.uniform(*config.codec_levels))
    return wav.float()


# The test conditions of benchmarks/robustness.py: name -> (what it is, waveform (N,), rate -> waveform)
CONDITIONS = {
    "16k": ("as recorded", lambda wav, sr: wav),
    "8k": ("telephone rate: down to 8 kHz and back", lambda wav, sr: narrowband(wav, sr, 8000)),
    "mp3_32k": ("mp3 at 32 kbit/s (16 kHz)", lambda wav, sr: codec_round_trip(wav, sr, "mp3", 0.85)),
    "silence_1s": ("1 s of digital silence at both ends",
                   lambda wav, sr: pad_edges(wav, sr, sr, None, "white", np.random.default_rng(0))),
    "silence_0.5s": ("0.5 s of digital silence at both ends",
                     lambda wav, sr: pad_edges(wav, sr // 2, sr // 2, None, "white", np.random.default_rng(0))),
    "trimmed": ("cut to the speech (the 10 ms blocks within 35 dB of the loudest)",
                lambda wav, sr: wav[slice(*speech_bounds(wav, sr))]),
    "white_20db": ("white noise at 20 dB SNR",
                   lambda wav, sr: add_noise(wav, 20.0, "white", np.random.default_rng(0))),
    "white_10db": ("white noise at 10 dB SNR",
                   lambda wav, sr: add_noise(wav, 10.0, "white", np.random.default_rng(0))),
    "gain_-20db": ("20 dB quieter", lambda wav, sr: wav * 0.1),
    "clipped": ("peak driven 12 dB over full scale and clipped", lambda wav, sr: clip(wav, 12.0)),
}
