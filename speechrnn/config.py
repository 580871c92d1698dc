"""The experiment config: YAML files and `key=value` overrides merged onto typed dataclasses by OmegaConf."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .features import FeatureConfig, SpecAugmentConfig
from .ink import InkFeatureConfig
from .model import ModelConfig
from .rnn import RNN_CELLS
from .text import TextConfig


@dataclass
class DataConfig:
    train_manifest: str = "???"
    dev_manifest: str = "???"
    cmvn: Optional[str] = None  # file written by `speechrnn stats`; computed at the start of training when unset
    max_frames: int = 8000  # padded feature frames per batch (10 ms each for audio, resampled points for ink)
    max_batch_size: int = 256
    num_workers: int = 1  # DataLoader worker processes (0 = load in the training process)
    speed_perturb: list[float] = field(default_factory=list)  # e.g. [0.9, 1.0, 1.1]; empty = off


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 300
    final_lr_ratio: float = 0.02  # cosine decay from lr to lr * final_lr_ratio at the last planned step
    grad_clip: float = 5.0


@dataclass
class TrainConfig:
    exp_dir: str = "exp"
    max_epochs: int = 40
    patience: int = 10  # stop after this many epochs without a better dev CER (0 = never)
    seed: int = 1234
    device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling)
    compile: bool = False  # torch.compile the encoder's conv subsampling (`speechrnn train` only; checkpoints stay
    # plain). Off: on CPU training steps measured no faster (0.97-1.11x), inference ~10% slower, after ~25 s of
    # compiling (benchmarks/bench_compile.py); CUDA is not measured yet
    threads: int = 0  # torch CPU threads (0 = torch's default)
    init_from: Optional[str] = None  # a recognizer bundle whose weights start a new run (train.init_weights_from)
    tensorboard: bool = True  # also log to exp_dir/tensorboard when the tensorboard package is installed
    dist_timeout: float = 600.0  # seconds a torchrun rank waits for the others (rank 0's dev evaluation and
    # checkpoint writing must fit in it) before it stops with an error


@dataclass
class Config:
    modality: str = "audio"  # audio (manifests with audio_filepath) | ink (pen strokes: ink_filepath or inline ink)
    data: DataConfig = field(default_factory=DataConfig)
    text: TextConfig = field(default_factory=TextConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)  # audio front-end
    ink: InkFeatureConfig = field(default_factory=InkFeatureConfig)  # pen-stroke features and front-end
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    use_specaugment: bool = True
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def valid_keys(node, prefix: str = "") -> list[str]:
    keys = []
    for key in node.keys():
        name = f"{prefix}{key}"
        value = node._get_node(key)
        keys.extend(valid_keys(value, name + ".") if OmegaConf.is_dict(value) else [name])
    return keys


def load_config(path: str | Path | None = None, overrides: list[str] = (), schema=Config) -> Config:
    """Schema defaults <- YAML file <- `key=value` overrides. Unknown keys fail with the list of valid ones."""
    base = OmegaConf.structured(schema)
    layers = []
    try:
        if path is not None:
            if not Path(path).is_file():
                raise ConfigError(f"{path}: config file not found")
            layers.append(OmegaConf.load(path))
        layers.append(OmegaConf.from_dotlist(list(overrides)))
        merged = OmegaConf.merge(base, *layers)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"config: required key(s) not set: {', '.join(missing)} (add them to the YAML or as key=value)")
        config = OmegaConf.to_object(merged)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        raise ConfigError(
            f"config{' ' + str(path) if path else ''}: {str(err).splitlines()[0]}"
            + (f" (key {key})" if key else "")
            + f"; valid keys: {', '.join(valid_keys(base))}"
        ) from None
    if isinstance(config, Config):
        check_choices(config)
    return config


CHOICES = {
    "modality": ["audio", "ink"],
    "model.rnn.cell": sorted(RNN_CELLS),
    "features.kind": ["fbank", "mfcc"],
    "text.case": ["upper", "lower", "keep"],
}


def check_choices(config: Config) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(OmegaConf.structured(config), key)
        if value not in allowed:
            raise ConfigError(f"config: {key}={value!r} is not one of: {', '.join(allowed)}")


def to_dict(config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(config))


def from_dict(data: dict, schema=Config):
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))
