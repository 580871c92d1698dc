"""The sequence classifier (many-to-one): one label per utterance (e.g. a spoken digit), on the speech encoder.

    waveform -> Features (CMVN) [-> per-utterance mean removal] [-> SpecAugment] -> Encoder (conv + RNN)
             -> pooling over the valid frames only (masked mean, or additive attention) -> dropout -> linear

Pooling never looks at padding, so a padded batch gives what each utterance alone would. Its config schema is
here too (ClassifyConfig); training is tasks/classify/task.py, inference tasks/classify/inference.py.
"""

from dataclasses import dataclass, field, replace
from typing import Optional

import torch
from torch import nn

from ...bundle import load_model
from ...config import DataConfig, OptimConfig, TrainConfig, bounded, choice
from ...errors import ConfigError
from ...features import FeatureConfig, Features, SpecAugment, SpecAugmentConfig, length_mask
from ...model import Encoder, ModelConfig

TASK = "classify"  # bundle["extra"]["task"] of a classifier bundle
POOLINGS = ("mean", "attention")


@dataclass
class ClassifyDataConfig(DataConfig):
    test_manifest: Optional[str] = None  # scored after training when set
    classes: list[str] = field(default_factory=list)  # label order; empty = the sorted labels of the train manifest
    label_field: str = "label"
    # white noise added to each training waveform at an SNR drawn uniformly from [low, high] dB; empty = off
    noise_snr: list[float] = field(default_factory=list)


@dataclass
class ClassifierModelConfig(ModelConfig):
    pooling: str = choice(*POOLINGS)  # mean (masked average of the encoder frames) | attention (additive, masked
    # softmax)
    attention_dim: int = bounded(128, "> 0")  # attention pooling's hidden size
    utterance_cmn: bool = True  # subtract each utterance's own feature mean (over its valid frames) after CMVN
    # A CTC recognizer bundle (e.g. AN4's model.pt) whose front-end (features + CMVN) and encoder start this classifier
    # (transfer learning); its features.* and model.{conv_channels,rnn} replace this config's (rnn.dropout stays).
    # (train.init_from, by contrast, starts a model from a bundle of its own kind.)
    encoder_from: Optional[str] = None


@dataclass
class ClassifyOptimConfig(OptimConfig):
    label_smoothing: float = bounded(0.0, ">= 0 and < 1")


@dataclass
class AdaptConfig:
    """Unsupervised adaptation to a new speaker (`adapt`); the bundle carries these as its defaults."""
    rounds: int = bounded(4, ">= 1")
    epochs: int = bounded(4, ">= 1")
    lr: float = bounded(1.0e-3, "> 0")
    repeat: int = bounded(3, ">= 1")
    # a round that lowers the accuracy on the training speakers' dev recordings (data.dev_manifest) by more than this
    # (a share, 0.02 = 2 points) is refused: the model it taught has locked in a confusion, and the previous one is kept
    max_dev_drop: float = bounded(0.02, ">= 0")


@dataclass
class ClassifyConfig:
    data: ClassifyDataConfig = field(default_factory=ClassifyDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    use_specaugment: bool = True
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    optim: ClassifyOptimConfig = field(default_factory=ClassifyOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


class MeanPooling(nn.Module):
    """Average of each sequence's valid frames. (B, T, D), (B,) -> (B, D) and the weights (B, T) (1/len, 0 on pad)."""

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = length_mask(lens, x.shape[1])
        weights = mask.float() / lens.clamp(min=1)[:, None].float()  # (B, T)
        x = x.masked_fill(~mask[..., None], 0.0)
        return torch.einsum("bt,btd->bd", weights.to(x.dtype), x), weights


class AttentionPooling(nn.Module):
    """Additive attention: score_t = v . tanh(W h_t + b), softmax over the valid frames only (padding gets weight
    exactly 0), output sum_t w_t h_t. (B, T, D), (B,) -> (B, D) and the weights (B, T)."""

    def __init__(self, dim: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = length_mask(lens, x.shape[1])
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1).float()  # (B, T, D) -> (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # (B, T), every length >= 1
        x = x.masked_fill(~mask[..., None], 0.0)
        return torch.einsum("bt,btd->bd", weights.to(x.dtype), x), weights


def build_pooling(config: ClassifierModelConfig, dim: int) -> nn.Module:
    if config.pooling == "mean":
        return MeanPooling()
    if config.pooling == "attention":
        return AttentionPooling(dim, config.attention_dim)
    raise ValueError(f"model.pooling={config.pooling!r} is not one of: {', '.join(POOLINGS)}")


def utterance_cmn(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Subtract each utterance's mean over its valid frames; padding stays 0. (B, T, F) -> (B, T, F)."""
    mask = length_mask(lens, feats.shape[1])[..., None]  # (B, T, 1)
    mean = (feats * mask).sum(1, keepdim=True) / lens.clamp(min=1)[:, None, None]  # (B, 1, F)
    return (feats - mean) * mask


class SequenceClassifier(nn.Module):
    """front-end -> Encoder -> masked pooling -> dropout -> linear. forward() gives logits (B, num_classes)."""

    def __init__(self, num_classes: int, config: ClassifierModelConfig, frontend: nn.Module,
                 specaugment: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.frontend = frontend
        self.specaugment = specaugment
        self.encoder = Encoder(frontend.dim, config)
        self.pooling = build_pooling(config, self.encoder.output_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_dim, num_classes)

    def embed(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N) waveforms -> pooled encoding (B, D), pooling weights (B, T') and encoder lengths (B,)."""
        feats, lens = self.frontend(inputs, input_lens)  # (B, N) -> (B, T, F)
        if self.config.utterance_cmn:
            feats = utterance_cmn(feats, lens)
        if self.specaugment is not None:
            feats = self.specaugment(feats, lens)
        hidden, lens = self.encoder(feats, lens)  # (B, T, F) -> (B, T', H)
        pooled, weights = self.pooling(hidden, lens)  # (B, T', H) -> (B, H)
        return pooled, weights, lens

    def forward(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> torch.Tensor:
        pooled, _, _ = self.embed(inputs, input_lens)
        return self.head(self.dropout(pooled)).float()  # (B, num_classes)


def load_pretrained_encoder(config: ClassifyConfig) -> dict:
    """Read the recognizer bundle model.encoder_from: copy its feature and encoder settings into `config` and return its
    front-end + encoder weights (frontend.*, encoder.*; the CTC head is dropped)."""
    model, _, speech_config, _ = load_model(config.model.encoder_from)
    if speech_config.modality != "audio":
        raise ConfigError(f"model.encoder_from={config.model.encoder_from}: a {speech_config.modality} model; "
                          "a speech classifier needs an audio recognizer")
    config.features = speech_config.features
    config.model.conv_channels = speech_config.model.conv_channels
    config.model.rnn = replace(speech_config.model.rnn, dropout=config.model.rnn.dropout)
    return {name: value for name, value in model.state_dict().items() if name.startswith(("frontend.", "encoder."))}


def build_classifier(num_classes: int, config: ClassifyConfig, training: bool = False) -> SequenceClassifier:
    specaugment = SpecAugment(config.specaugment) if training and config.use_specaugment else None
    return SequenceClassifier(num_classes, config.model, Features(config.features), specaugment)




def upgrade_config(config: dict) -> dict:
    """A classifier bundle's stored config in today's schema: bundles written before `model.encoder_from` had the
    name `model.init_from` for it."""
    model = dict(config.get("model", {}))
    if "init_from" in model:
        model["encoder_from"] = model.pop("init_from")
    return {**config, "model": model}
