"""Encoder (optional conv subsampling + stacked RNN) and the CTC head, assembled into one CTC model.

The model takes what the data loader gives (waveforms for speech, stroke features for ink), so the
acoustic front-end runs on the model's device and travels inside the bundle with its CMVN statistics.
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from .features import (FeatureConfig, Features, SpecAugment, SpecAugmentConfig, StrokeFrames, length_mask,
                       mask_time)
from .rnn import RNNConfig, StackedRNN


@dataclass
class ModelConfig:
    conv_channels: int = field(default=32, metadata={"range": ">= 0"})  # 0 disables the conv front-end (no subsampling)
    rnn: RNNConfig = field(default_factory=RNNConfig)
    dropout: float = field(default=0.1, metadata={"range": ">= 0 and < 1"})  # before the CTC head
    # CTC with a label prior (Zeyer et al. 2021, "Why does CTC result in peaky behavior?"): training and forced
    # alignment score log p(k | x) - prior_scale * log p(k), p(k) the running mean posterior. Plain CTC (0) gives
    # peaky one-frame spikes; with a prior characters cover their sound, so alignments mark where words end too.
    # Decoding still uses the plain posteriors.
    prior_scale: float = field(default=0.0, metadata={"range": ">= 0"})
    # targets start and end with the word separator (space) in training and alignment, so silence before the first
    # word and after the last is aligned to it, as pauses between words are, and not to the first / last character
    edge_silence: bool = False


class ConvSubsampling(nn.Module):
    """DeepSpeech2-style 2-D convolutions over (time, frequency): two 3x3 stride-2 blocks -> 4x fewer frames.
    Frames past each utterance's length are zeroed after every block, so padding never leaks into valid
    frames and a batch gives what each utterance alone would."""

    FACTOR = 4  # input frames per output frame: two stride-2 blocks

    def __init__(self, input_dim: int, channels: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1),
        ])
        self.activation = nn.GELU()
        freq = input_dim
        for _ in self.blocks:
            freq = (freq - 1) // 2 + 1
        self.output_dim = channels * freq
        self.norm = nn.LayerNorm(self.output_dim)  # per frame, so padding cannot leak in

    @staticmethod
    def output_lengths(lens: torch.Tensor) -> torch.Tensor:
        for _ in range(2):
            lens = (lens - 1) // 2 + 1  # kernel 3, stride 2, padding 1
        return lens

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.unsqueeze(1)  # (B, T, F) -> (B, 1, T, F)
        for block in self.blocks:
            x = self.activation(block(x))  # (B, C, T, F) -> (B, C, T', F')
            lens = (lens - 1) // 2 + 1
            x = mask_time(x.transpose(1, 2), lens).transpose(1, 2)  # mask along T at (B, T', C, F')
        batch, channels, frames, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq)  # (B, C, T', F') -> (B, T', C*F')
        return self.norm(x), lens


def subsampling(config: ModelConfig) -> int:
    """Front-end frames per output frame of the encoder `config` describes: 4 with the conv front-end, else 1."""
    return ConvSubsampling.FACTOR if config.conv_channels > 0 else 1


class Encoder(nn.Module):
    def __init__(self, input_dim: int, config: ModelConfig):
        super().__init__()
        self.conv = ConvSubsampling(input_dim, config.conv_channels) if config.conv_channels > 0 else None
        self.subsampling = subsampling(config)  # front-end frames per output frame
        rnn_input = self.conv.output_dim if self.conv else input_dim
        self.rnn = StackedRNN(rnn_input, config.rnn)
        self.output_dim = self.rnn.output_size

    def output_lengths(self, lens: torch.Tensor) -> torch.Tensor:
        return ConvSubsampling.output_lengths(lens) if self.conv else lens

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.conv:
            x, lens = self.conv(x, lens)
        return self.rnn(x, lens), lens


class CTCModel(nn.Module):
    """front-end -> encoder -> linear CTC head. forward() returns log-probs (B, T, V) and their lengths."""

    def __init__(self, vocab_size: int, config: ModelConfig, frontend: nn.Module, specaugment: nn.Module | None = None):
        super().__init__()
        self.frontend = frontend
        self.specaugment = specaugment
        self.encoder = Encoder(frontend.dim, config)
        self.subsampling = self.encoder.subsampling  # front-end frames per output frame
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_dim, vocab_size)
        self.prior_scale, self.edge_silence = config.prior_scale, config.edge_silence
        if self.prior_scale:
            self.register_buffer("log_prior", torch.full((vocab_size,), -math.log(vocab_size)))  # (V,) uniform

    @property
    def frame_shift(self) -> float:
        """The time grid: seconds (audio) or resampled points (ink) per output frame; output frame i covers input
        [i * frame_shift, (i + 1) * frame_shift)."""
        return self.frontend.frame_shift(self.subsampling)

    def alignment_scores(self, log_probs: torch.Tensor) -> torch.Tensor:
        """What training and forced alignment score: log_probs (B, T, V) minus prior_scale * log prior."""
        return log_probs - self.prior_scale * self.log_prior if self.prior_scale else log_probs

    @torch.no_grad()
    def update_prior(self, log_probs: torch.Tensor, lens: torch.Tensor, momentum: float = 0.99) -> None:
        """Move the prior towards the mean posterior of this batch's valid frames (log_probs (B, T, V))."""
        valid = length_mask(lens, log_probs.shape[1])  # (B, T)
        mean = log_probs.float().exp()[valid].mean(dim=0)  # (B, T, V) -> (N, V) -> (V,)
        prior = momentum * self.log_prior.exp() + (1 - momentum) * mean
        self.log_prior.copy_(prior.clamp(min=1e-12).log())

    def output_lengths(self, input_lens: torch.Tensor) -> torch.Tensor:
        return self.encoder.output_lengths(self.frontend.num_frames(input_lens))

    def logits(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Unnormalised scores (B, T', V) in float32 and their lengths."""
        feats, lens = self.frontend(inputs, input_lens)  # (B, N) -> (B, T, F)
        if self.specaugment is not None:
            feats = self.specaugment(feats, lens)
        hidden, lens = self.encoder(feats, lens)  # (B, T, F) -> (B, T', H)
        return self.head(self.dropout(hidden)).float(), lens  # (B, T', V)

    def forward(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, lens = self.logits(inputs, input_lens)
        return logits.log_softmax(dim=-1), lens


def build_speech_model(vocab_size: int, model: ModelConfig, features: FeatureConfig,
                       specaugment: SpecAugmentConfig | None) -> CTCModel:
    return CTCModel(vocab_size, model, Features(features), SpecAugment(specaugment) if specaugment else None)


def build_frontend(config) -> Features | StrokeFrames:
    """The front-end a `config.Config` describes: audio features, or pen-stroke frames for modality "ink"."""
    if config.modality == "ink":
        return StrokeFrames(config.ink.num_features, config.ink.stack)
    return Features(config.features)


def build_model(vocab_size: int, config, training: bool = False) -> CTCModel:
    """The CTC model a `config.Config` describes: audio front-end (+ SpecAugment when `training` and
    config.use_specaugment) or pen-stroke frames for config.modality == "ink"."""
    specaugment = config.specaugment if training and config.use_specaugment and config.modality != "ink" else None
    return CTCModel(vocab_size, config.model, build_frontend(config), SpecAugment(specaugment) if specaugment else None)


def frame_shift(config) -> float:
    """CTCModel.frame_shift of the model a `config.Config` describes, without building it: seconds (audio) or
    resampled points (ink) per output frame."""
    return build_frontend(config).frame_shift(subsampling(config.model))
