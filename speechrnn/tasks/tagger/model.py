"""The frame tagger (many-to-many, Tx = Ty): speech / non-speech for every encoder frame, a voice-activity detector.

    waveform -> Features (CMVN) -> Encoder (conv, 4x fewer frames: 40 ms at a 10 ms hop; + RNN) -> dropout
             -> linear -> 2 logits (non-speech, speech) per encoder frame

One label per output frame of the encoder, so a tag covers 40 ms (frame i is centred at i * frame_shift seconds).
Its config schema is here too (TaggerConfig); labels are tasks/tagger/labels.py, training tasks/tagger/task.py,
inference (TaggerVAD) tasks/tagger/inference.py.
"""

from dataclasses import dataclass, field

import torch
from torch import nn

from ...config import DataConfig, OptimConfig, TrainConfig
from ...features import FeatureConfig, Features, SpecAugment, SpecAugmentConfig, length_mask
from ...model import CTCModel, ModelConfig, subsampling

TASK = "tagger"  # bundle["extra"]["task"] of a frame-tagger bundle
CLASSES = ["non-speech", "speech"]


@dataclass
class TaggerDataConfig(DataConfig):
    train_labels: str = "???"  # labels .npz (`tagger labels`) for the train manifest
    dev_labels: str = "???"


@dataclass
class TaggerConfig:
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaugment: SpecAugmentConfig = field(default_factory=lambda: SpecAugmentConfig(time_masks=0))
    use_specaugment: bool = False  # frequency masks only (a time mask would hide frames whose labels stay)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


class FrameTagger(CTCModel):
    """front-end -> Encoder -> dropout -> linear, the CTC model's layers with a 2-class head. forward() gives logits
    (B, T', 2) and their lengths (B,): one speech / non-speech decision per encoder frame."""

    def __init__(self, config: ModelConfig, frontend: nn.Module, specaugment: nn.Module | None = None):
        super().__init__(len(CLASSES), config, frontend, specaugment)

    forward = CTCModel.logits


def build_tagger(config: TaggerConfig, training: bool = False) -> FrameTagger:
    specaugment = SpecAugment(config.specaugment) if training and config.use_specaugment else None
    return FrameTagger(config.model, Features(config.features), specaugment)


def frame_shift(config: TaggerConfig) -> float:
    """Seconds per output frame of the tagger `config` describes (CTCModel.frame_shift, without building it)."""
    return Features(config.features).frame_shift(subsampling(config.model))


def frame_loss(logits: torch.Tensor, labels: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the valid frames, and their number. (B, T, 2), (B, T), (B,)"""
    mask = length_mask(lens, logits.shape[1])  # (B, T)
    return nn.functional.cross_entropy(logits[mask], labels[mask], reduction="sum"), int(mask.sum())


