"""Model front-ends as nn.Modules (run batched on the model's device): log-mel fbank or MFCC from waveforms,
or pen-stroke features (computed by `ink.featurize` in the data loader) stacked into frames; both with global
CMVN from training statistics. SpecAugment for training."""

from dataclasses import dataclass, field

import torch
import torchaudio
import torchaudio.functional as AF
from torch import nn


@dataclass
class FeatureConfig:
    kind: str = field(default="fbank", metadata={"choices": ("fbank", "mfcc")})  # fbank (log-mel) | mfcc
    sample_rate: int = field(default=16000, metadata={"range": "> 0"})
    n_fft: int = field(default=400, metadata={"range": "> 0"})  # 25 ms at 16 kHz
    hop_length: int = field(default=160, metadata={"range": "> 0"})  # 10 ms at 16 kHz
    n_mels: int = field(default=80, metadata={"range": "> 0"})
    n_mfcc: int = field(default=40, metadata={"range": "> 0"})
    dither: float = field(default=0.0, metadata={"range": ">= 0"})  # white noise added to the waveform in training (Kaldi-style), in sample units


@dataclass
class SpecAugmentConfig:
    freq_masks: int = field(default=2, metadata={"range": ">= 0"})
    freq_mask_width: int = field(default=27, metadata={"range": ">= 0"})
    time_masks: int = field(default=2, metadata={"range": ">= 0"})
    time_mask_width: int = field(default=40, metadata={"range": ">= 0"})
    time_mask_max_ratio: float = field(default=0.2, metadata={"range": ">= 0 and <= 1"})  # a time mask covers at most this share of the shortest utterance in a batch
    start_epoch: int = 1  # masking starts at this epoch (CTC leaves its all-blank plateau sooner on clean input)


class Cmvn(nn.Module):
    """Global CMVN buffers (identity until set_cmvn) for a front-end whose raw() gives (B, T, cmvn_dim) features."""

    def __init__(self, cmvn_dim: int):
        super().__init__()
        self.register_buffer("cmvn_mean", torch.zeros(cmvn_dim))
        self.register_buffer("cmvn_std", torch.ones(cmvn_dim))

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.cmvn_mean.copy_(mean)
        self.cmvn_std.copy_(std.clamp(min=1e-3))

    def normalize(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        return mask_time((feats - self.cmvn_mean) / self.cmvn_std, lens)


class Features(Cmvn):
    """Waveforms (B, N) + lengths -> normalised features (B, T, F) + lengths, zero past each length."""

    def __init__(self, config: FeatureConfig):
        dim = {"fbank": config.n_mels, "mfcc": config.n_mfcc}.get(config.kind)
        if dim is None:
            raise ValueError(f"features.kind={config.kind!r} is not one of: fbank, mfcc")
        super().__init__(dim)
        self.dim = dim
        self.config = config
        if config.kind == "fbank":
            self.transform = torchaudio.transforms.MelSpectrogram(
                sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
                n_mels=config.n_mels, power=2.0, center=True, pad_mode="constant",
            )
        else:
            self.transform = torchaudio.transforms.MFCC(
                sample_rate=config.sample_rate, n_mfcc=config.n_mfcc, log_mels=False,
                melkwargs=dict(n_fft=config.n_fft, hop_length=config.hop_length, n_mels=config.n_mels,
                               center=True, pad_mode="constant", mel_scale="slaney", norm="slaney"),
            )

    def num_frames(self, num_samples: torch.Tensor) -> torch.Tensor:
        return num_samples // self.config.hop_length + 1  # center=True framing

    def frame_shift(self, subsampling: int = 1) -> float:
        """Seconds per frame after `subsampling` (the encoder's): hop x subsampling / rate (0.04 s for AN4)."""
        return self.config.hop_length * subsampling / self.config.sample_rate

    def raw(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features before CMVN. Padding samples are zero, so frames past the length are masked after."""
        if self.training and self.config.dither > 0:
            wav = wav + self.config.dither * torch.randn_like(wav)
        with torch.autocast(wav.device.type, enabled=False):
            # (B, N) -> (B, 1, N) -> (B, 1, F, T) -> (B, F, T): the channel axis makes MFCC's top_db clamp per item
            spec = self.transform(wav.float().unsqueeze(1)).squeeze(1)
        if self.config.kind == "fbank":
            spec = torch.log(spec + 1e-6)
        feats = spec.transpose(1, 2)  # (B, F, T) -> (B, T, F)
        lens = self.num_frames(wav_lens)
        return feats, lens

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lens = self.raw(wav, wav_lens)
        return self.normalize(feats, lens), lens


class StrokeFrames(Cmvn):
    """Pen-stroke features (B, T, F) per resampled point -> CMVN -> `stack` consecutive points concatenated into
    one frame (B, ceil(T / stack), stack * F). Stacking shortens the sequence the RNN runs over; the zero padding
    of the last group is what the utterance alone would get, so batching stays exact."""

    def __init__(self, num_features: int, stack: int = 1):
        super().__init__(num_features)
        self.stack = stack
        self.dim = num_features * stack

    def num_frames(self, num_points: torch.Tensor) -> torch.Tensor:
        return (num_points + self.stack - 1) // self.stack

    def frame_shift(self, subsampling: int = 1) -> float:
        """Resampled points per frame after `subsampling` (the encoder's); time is not known for every ink."""
        return float(self.stack * subsampling)

    def raw(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return feats.float(), lens

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.normalize(feats.float(), lens)
        batch, points, dim = feats.shape
        frames = (points + self.stack - 1) // self.stack
        feats = nn.functional.pad(feats, (0, 0, 0, frames * self.stack - points))  # (B, T, F) -> (B, frames*stack, F)
        feats = feats.reshape(batch, frames, self.stack * dim)  # -> (B, frames, stack*F)
        return feats, self.num_frames(lens)


def length_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True at the valid steps t < lens[b]; on lens' device."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def pad_inputs(inputs: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of shape (T_i, ...) -> zero-padded batch (B, max T_i, ...) float32 and lengths (B,) int64."""
    lens = torch.tensor([len(x) for x in inputs], dtype=torch.long)
    trailing = inputs[0].shape[1:] if inputs else ()
    batch = torch.zeros(len(inputs), int(lens.max()) if inputs else 0, *trailing)  # (B, T) or (B, T, F)
    for row, x in enumerate(inputs):
        batch[row, : len(x)] = x
    return batch, lens


def mask_time(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Zero x (B, T, ...) at every time step t >= lens[b]."""
    valid = length_mask(lens.to(x.device), x.shape[1])  # (B, T)
    return x * valid.view(*valid.shape, *([1] * (x.dim() - 2))).to(x.dtype)


class CmvnAccumulator:
    """Running sums for global mean/std over all valid frames."""

    def __init__(self, dim: int):
        self.total = torch.zeros(dim, dtype=torch.float64)
        self.total_sq = torch.zeros(dim, dtype=torch.float64)
        self.count = 0

    def add(self, feats: torch.Tensor, lens: torch.Tensor) -> None:
        valid = length_mask(lens.cpu(), feats.shape[1])  # (B, T)
        frames = feats[valid].double()  # (B, T, F) -> (frames, F)
        self.total += frames.sum(0)
        self.total_sq += (frames**2).sum(0)
        self.count += frames.shape[0]

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.total / self.count
        std = (self.total_sq / self.count - mean**2).clamp(min=1e-8).sqrt()
        return mean.float(), std.float()


class SpecAugment(nn.Module):
    """Frequency and time masking (Park et al. 2019), independent per utterance; a no-op in eval mode."""

    def __init__(self, config: SpecAugmentConfig):
        super().__init__()
        self.config = config
        self.enabled = True  # the trainer turns masking off before specaugment.start_epoch

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.enabled):
            return feats
        c = self.config
        x = feats.transpose(1, 2).unsqueeze(1)  # (B, T, F) -> (B, 1, F, T)
        for _ in range(c.freq_masks):
            x = AF.mask_along_axis_iid(x, c.freq_mask_width, 0.0, axis=2)
        width = min(c.time_mask_width, int(c.time_mask_max_ratio * int(lens.min())))
        if width > 0:
            for _ in range(c.time_masks):
                x = AF.mask_along_axis_iid(x, width, 0.0, axis=3)
        return x.squeeze(1).transpose(1, 2)  # (B, 1, F, T) -> (B, T, F)
