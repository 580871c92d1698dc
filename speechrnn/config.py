"""The experiment config: YAML files and `key=value` overrides merged onto typed dataclasses by OmegaConf.

Choices are declared on the dataclass field and checked for any schema (this one, the classifier's, the tagger's):
    modality: str = choice("audio", "ink")  # the first is the default
or, in a module that must not import this one, `field(default=..., metadata={"choices": (...)})`; the choices may
be a function returning them (rnn.py's cell names come from a registry defined below the dataclass).
Ranges likewise: `lr: float = bounded(2e-3, "> 0")`, or `field(default=..., metadata={"range": "> 0"})`; a range is
one to two conditions joined by "and" (`">= 0 and < 1"`), checked on the value or on each item of a list.

A YAML file may start from another: `base: default.yaml` (relative to the file's folder, recursive) merges that
file first, so a variant says only the keys it changes.
"""

from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .augment import AugmentConfig
from .errors import ConfigError
from .features import FeatureConfig, SpecAugmentConfig
from .ink import InkFeatureConfig
from .model import ModelConfig
from .text import TextConfig

BASE_KEY = "base"  # a YAML file's key naming the file it starts from


def choice(*allowed: str) -> str:
    """A str field that must be one of `allowed`; the first is the default."""
    return field(default=allowed[0], metadata={"choices": allowed})


def bounded(default, allowed: str):
    """A number field (or list of numbers) whose value must satisfy `allowed`, e.g. "> 0" or ">= 0 and < 1"."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"range": allowed})
    return field(default=default, metadata={"range": allowed})


@dataclass
class DataConfig:
    train_manifest: str = "???"
    dev_manifest: str = "???"
    cmvn: Optional[str] = None  # file written by `speechrnn stats`; computed at the start of training when unset
    max_frames: int = bounded(8000, "> 0")  # padded feature frames per batch (10 ms each for audio, resampled
    # points for ink)
    max_batch_size: int = bounded(256, ">= 1")
    num_workers: int = bounded(1, ">= 0")  # DataLoader worker processes (0 = load in the training process)
    speed_perturb: list[float] = bounded([], "> 0")  # e.g. [0.9, 1.0, 1.1]; empty = off
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # audio: edges, noise, bandwidth, level, codec
    trim_edges: bool = False  # cut every input to its speech (augment.speech_bounds), in training and scoring alike:
    # silence at the edges then changes nothing (for whole-input classifiers; a recognizer's aligners want the edges)
    # before training every audio file's header is read once (data.check_audio): unreadable files are left out, and
    # a run whose train or dev set keeps less than this share of its utterances stops before training
    min_usable: float = bounded(0.9, ">= 0 and <= 1")
    duration_tolerance: float = bounded(0.1, ">= 0")  # seconds a file may differ from its manifest duration unreported


@dataclass
class OptimConfig:
    lr: float = bounded(2e-3, "> 0")
    weight_decay: float = bounded(1e-2, ">= 0")
    betas: tuple[float, float] = field(default=(0.9, 0.98), metadata={"range": ">= 0 and < 1"})
    warmup_steps: int = bounded(300, ">= 0")
    final_lr_ratio: float = bounded(0.02, ">= 0 and <= 1")  # cosine decay from lr to lr * final_lr_ratio at the
    # last planned step
    grad_clip: float = bounded(5.0, "> 0")


@dataclass
class TrainConfig:
    exp_dir: str = "exp"
    max_epochs: int = bounded(40, ">= 1")
    patience: int = bounded(10, ">= 0")  # stop after this many epochs without a better dev CER (0 = never)
    seed: int = bounded(1234, ">= 0 and < 4294967296")  # (numpy's seeds are 32-bit)
    device: str = "auto"  # auto (cuda when present) | cpu | cuda | cuda:N
    amp: bool = True  # mixed precision on CUDA (bf16 where supported, else fp16 with loss scaling)
    compile: bool = False  # torch.compile the encoder's conv subsampling (`speechrnn train` only; checkpoints stay
    # plain). Off: on CPU training steps measured no faster (0.97-1.11x), inference ~10% slower, after ~25 s of
    # compiling (benchmarks/bench_compile.py); CUDA is not measured yet
    threads: int = bounded(0, ">= 0")  # torch CPU threads (0 = torch's default)
    init_from: Optional[str] = None  # a recognizer bundle whose weights start a new run (tasks.ctc.init_weights_from)
    tensorboard: bool = True  # also log to exp_dir/tensorboard when the tensorboard package is installed
    dist_timeout: float = bounded(600.0, "> 0")  # seconds a torchrun rank waits for the others (rank 0's dev evaluation and
    # checkpoint writing must fit in it) before it stops with an error


@dataclass
class Config:
    modality: str = choice("audio", "ink")  # audio (manifests with audio_filepath) | ink (pen strokes: ink_filepath
    # or inline ink)
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


def read_layers(path: Path, chain: tuple[Path, ...] = ()) -> list[tuple[Path, DictConfig]]:
    """The YAML file at `path` as (path, keys) layers: its `base:` file's layers (recursively) first, then its own
    keys. `base` is a path relative to the file's folder; a file that is its own base, at any depth, is refused."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" + (f" (the base of {chain[-1]})" if chain else ""))
    if path.resolve() in {p.resolve() for p in chain}:
        raise ConfigError(f"config: base files form a cycle: {' -> '.join(map(str, (*chain, path)))}")
    try:
        layer = OmegaConf.load(path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except OSError:  # OmegaConf's answer to a file holding a single number or string
        layer = None
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{path}: the file must be a mapping of keys (e.g. `train:` then `max_epochs: 10`), not "
                          f"{'a list' if OmegaConf.is_list(layer) else 'a single value'}")
    base = layer.pop(BASE_KEY, None)
    if base is None:
        return [(path, layer)]
    if not isinstance(base, str):
        raise ConfigError(f"{path}: {BASE_KEY}={base!r} must be the path of one YAML file, relative to {path.parent}")
    return read_layers(path.parent / base, (*chain, path)) + [(path, layer)]


def load_config(path: str | Path | None = None, overrides: list[str] = (), schema=Config):
    """Schema defaults <- YAML file (after its `base:` files) <- `key=value` overrides, as an instance of `schema`
    (any dataclass). Unknown keys fail with the list of valid ones; fields with declared choices are checked."""
    schema_node = OmegaConf.structured(schema)
    layers = read_layers(Path(path)) if path is not None else []
    source, before, layer = str(path or ""), None, None
    try:
        merged = schema_node
        for source, layer in layers:
            before = merged
            merged = OmegaConf.merge(merged, layer)
        source, before = "override " + " ".join(overrides), None
        layer = OmegaConf.from_dotlist(list(overrides))
        before = merged
        merged = OmegaConf.merge(merged, layer)
        missing = sorted(OmegaConf.missing_keys(merged))
        if missing:
            raise ConfigError(f"config: required key(s) not set: {', '.join(missing)} "
                              "(add them to the YAML or as key=value)")
        config = OmegaConf.to_object(merged)
    except (OmegaConfBaseException, TypeError) as err:  # TypeError: a list or scalar where a mapping belongs
        key = getattr(err, "full_key", None) or (failing_key(before, layer) if before is not None else "")
        unknown = isinstance(err, (ConfigAttributeError, ConfigKeyError))
        raise ConfigError(
            f"config{' ' + str(source) if source else ''}: {str(err).splitlines()[0]}"
            + (f" (key {key})" if key else "")
            + (f"; valid keys: {', '.join(valid_keys(schema_node))}" if unknown else "")
        ) from None
    check_fields(config)
    return config


def failing_key(base, layer, prefix: str = "") -> str:
    """The dotted key of the first value of `layer` that alone fails to merge onto `base` ("" when none does)."""
    for key in layer.keys():
        value = layer[key]
        try:
            OmegaConf.merge(base, {key: value})
        except (OmegaConfBaseException, TypeError):
            inner = base.get(key) if OmegaConf.is_dict(base) else None
            deeper = failing_key(inner, value, f"{prefix}{key}.") if OmegaConf.is_dict(value) and \
                OmegaConf.is_dict(inner) else ""
            return deeper or f"{prefix}{key}"
    return ""


def allowed_values(config_field) -> list[str] | None:
    """The values a dataclass field declares in its metadata's "choices" (a sequence, or a function returning one
    for a registry defined below the dataclass); None when it declares none."""
    allowed = config_field.metadata.get("choices")
    return list(allowed() if callable(allowed) else allowed) if allowed is not None else None


def declared(config, read, prefix: str = "") -> dict:
    """{dotted key: read(field)} for every field of the dataclass tree `config` (an instance, or a class whose
    defaults are used) where `read` gives something other than None."""
    config = config() if isinstance(config, type) else config
    found = {}
    for config_field in fields(config):
        value = getattr(config, config_field.name)
        if is_dataclass(value):
            found.update(declared(value, read, f"{prefix}{config_field.name}."))
        elif (declaration := read(config_field)) is not None:
            found[prefix + config_field.name] = declaration
    return found


def declared_choices(config, prefix: str = "") -> dict[str, list[str]]:
    """Every field with declared choices in the dataclass tree `config`, by dotted key."""
    return declared(config, allowed_values, prefix)


COMPARISONS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}


def in_range(value, allowed: str) -> bool:
    """Whether the number `value` satisfies the range `allowed` ("> 0", ">= 0 and < 1")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:  # NaN fails every range
        return False
    for condition in allowed.split(" and "):
        operator, bound = condition.split()
        if not COMPARISONS[operator](float(value), float(bound)):
            return False
    return True


def check_fields(config) -> None:
    """Fail with one line on the first field of the dataclass tree `config` whose value (or an item of a list value)
    is not one of its choices or outside its range."""
    for key, allowed in declared_choices(config).items():
        value = _select(config, key)
        bad = [v for v in value if v not in allowed] if isinstance(value, (list, tuple)) else [value]
        if bad and bad[0] not in allowed:
            raise ConfigError(f"config: {key}={value!r} is not one of: {', '.join(allowed)}"
                              + (" (each value)" if isinstance(value, (list, tuple)) else ""))
    for key, allowed in declared(config, lambda f: f.metadata.get("range")).items():
        value = _select(config, key)
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if v is not None and not in_range(v, allowed)]
        if bad:
            raise ConfigError(f"config: {key}={value!r} is out of range: it must be {allowed}"
                              + (" (each value)" if isinstance(value, (list, tuple)) else "") + "; fix the YAML or "
                              f"override it with {key}=...")


def _select(config, key: str):
    for name in key.split("."):
        config = getattr(config, name)
    return config


CHOICES = declared_choices(Config)  # Config's declared choices by dotted key, e.g. CHOICES["model.rnn.cell"]


def to_dict(config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(config))


def from_dict(data: dict, schema=Config):
    """A config of `schema` from a plain dict (a bundle's), choices checked."""
    config = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), data))
    check_fields(config)
    return config
