"""One-file model package: weights, config, tokenizer (and, inside the weights, feature CMVN statistics).
Saved with torch.save and loaded with weights_only=True: nothing but tensors and plain data.

Here: writing and reading bundles (`save_bundle`, `load_bundle`, `atomic_save`), storing their weights as int8
(`repack_bundle`), a recognizer bundle as a model (`load_model`), and joining aligners to it (`add_aligner`).
"""

import lzma
import os
from pathlib import Path

import torch

from .config import Config, from_dict
from .errors import BundleError, UserError
from .model import CTCModel, build_model, frame_shift
from .pretrained import MODELS, resolve
from .text import Tokenizer

FORMAT = "speechrnn-bundle"
VERSION = 1


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file at `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # a read-only folder, a full disk, a folder in the way (torch.save's
        # file errors are RuntimeErrors ending in "strerror: WHY")
        reason = getattr(err, "strerror", None) or " ".join(str(err).split()).rsplit("strerror: ", 1)[-1]
        raise UserError(f"{path}: cannot be written ({reason}); free space, fix the folder's permissions or choose "
                        "another path") from None


WEIGHTS = ("float32", "int8")
INT8_MIN_SIZE = 1024  # matrices with fewer entries stay float32


def quantize_int8(state_dict: dict) -> tuple[dict, dict]:
    """Weight-only int8: every float matrix (dim >= 2, >= INT8_MIN_SIZE entries) becomes int8 with one float32 scale
    per output row (symmetric, scale = max |w| / 127); vectors (biases, norms, CMVN) stay float32.
    Returns (state_dict with int8 tensors, {name: scales (rows,)})."""
    quantized, scales = {}, {}
    for name, value in state_dict.items():
        if value.is_floating_point() and value.dim() >= 2 and value.numel() >= INT8_MIN_SIZE:
            rows = value.float().reshape(value.shape[0], -1)  # (out, in...) -> (out, in)
            scale = (rows.abs().amax(dim=1) / 127).clamp(min=1e-12)  # (out,)
            quantized[name] = torch.round(value.float() / scale.view(-1, *[1] * (value.dim() - 1))).to(torch.int8)
            scales[name] = scale
        else:
            quantized[name] = value
    return quantized, scales


def dequantize_int8(state_dict: dict, scales: dict) -> dict:
    return {name: value.float() * scales[name].view(-1, *[1] * (value.dim() - 1)) if name in scales else value
            for name, value in state_dict.items()}


def save_bundle(path: str | Path, state_dict: dict, config: dict, tokenizer: dict, extra: dict | None = None,
                weights: str = "float32") -> None:
    """weights="int8" stores the matrices as int8 with per-row scales (about 4x smaller; load_bundle restores
    float32 tensors)."""
    bundle = {"format": FORMAT, "version": VERSION, "config": config, "tokenizer": tokenizer, "extra": extra or {},
              "weights": weights}
    if weights == "int8":
        bundle["state_dict"], bundle["int8_scales"] = quantize_int8(state_dict)
    else:
        bundle["state_dict"] = state_dict
    atomic_save(bundle, path)


def pack_text(text: str | None) -> torch.Tensor | None:
    """Text stored inside a bundle (a lexicon, an ARPA LM), xz-compressed as a uint8 tensor: an open-vocabulary
    lexicon and its LM shrink about tenfold. unpack_text reverses it (and passes plain strings through)."""
    if text is None:
        return None
    return torch.frombuffer(bytearray(lzma.compress(text.encode("utf-8"), preset=6)), dtype=torch.uint8)


def unpack_text(stored) -> str | None:
    if stored is None or isinstance(stored, str):
        return stored
    return lzma.decompress(stored.numpy().tobytes()).decode("utf-8")


def update_extra(path: str | Path, **entries) -> None:
    """Rewrite the bundle at `path` (atomically) with `entries` added to its extra; the rest is kept as stored."""
    bundle = load_bundle(path)
    save_bundle(path, bundle["state_dict"], bundle["config"], bundle["tokenizer"],
                {**bundle.get("extra", {}), **entries}, bundle["weights"])


def load_error(err: Exception) -> str:
    """What torch.load's exception says, in words that fit one line and are never cut mid-word: the unpickler's
    reason for a file that holds code (or random bytes), the first sentence otherwise."""
    text = str(err).replace("\x1b[1m", "").replace("\x1b[0m", "")
    if "WeightsUnpickler error:" in text:
        reason = " ".join(text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0].split())
        return f"it holds more than tensors and plain data: {reason.split('. ')[0].rstrip('.') or 'unreadable'}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    first = lines[0].split(". ")[0].rstrip(".")
    return first if not isinstance(err, KeyError) else f"{type(err).__name__} {first}"


def load_bundle(path: str | Path) -> dict:
    """A bundle file, or a shipped model by name (`speechrnn models`), read safely (no pickled code)."""
    path = resolve(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such model bundle, nor a shipped model's name ({', '.join(MODELS)})")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on foreign files (KeyError, IndexError, ...)
        raise BundleError(f"{path}: not a speechrnn model bundle ({load_error(err)})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"{path}: not a speechrnn model bundle (no '{FORMAT}' marker)")
    if bundle.get("version") != VERSION:
        raise BundleError(f"{path}: bundle version {bundle.get('version')} is not supported by this speechrnn "
                          f"(reads version {VERSION}); re-export it or upgrade speechrnn")
    missing = [key for key in ("config", "tokenizer", "state_dict") if key not in bundle]
    if missing:
        raise BundleError(f"{path}: incomplete bundle, lacks {', '.join(missing)}; re-export it from a checkpoint")
    bundle.setdefault("weights", "float32")
    if bundle["weights"] not in WEIGHTS:
        raise BundleError(f"{path}: weights stored as {bundle['weights']!r}, which this speechrnn cannot read "
                          f"(it reads {', '.join(WEIGHTS)}); upgrade speechrnn")
    if bundle["weights"] == "int8":
        bundle["state_dict"] = dequantize_int8(bundle["state_dict"], bundle.pop("int8_scales"))
    return bundle


def repack_bundle(source: str | Path, target: str | Path, weights: str) -> None:
    """Copy a bundle with its weights stored as `weights` (float32 | int8); everything else is kept."""
    bundle = load_bundle(source)
    save_bundle(target, bundle["state_dict"], bundle["config"], bundle["tokenizer"], bundle["extra"], weights)


# a bundle's aligners: extra[role]["config"] and the weights under state_dict prefix "role."; "aligner" gives word
# starts (and ends, alone), "aligner_end" word ends
ALIGNERS = ("aligner", "aligner_end")


def _weights_of(state_dict: dict, role: str | None = None) -> dict:
    """The weights of the aligner `role` in a bundle's state_dict (prefix removed), or those of the recognizer."""
    if role is not None:
        return {name[len(role) + 1:]: value for name, value in state_dict.items() if name.startswith(role + ".")}
    prefixes = tuple(role + "." for role in ALIGNERS)
    return {name: value for name, value in state_dict.items() if not name.startswith(prefixes)}


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CTCModel, Tokenizer, Config, dict]:
    """Bundle -> (model in eval mode on `device`, tokenizer, config, bundle extras). The bundle's aligners, where
    it has them, are extras[role]["model"] for role in ALIGNERS (also in eval mode on `device`)."""
    bundle = load_bundle(path)
    other_tasks = {"classify": "an utterance classifier, not a recognizer; use `speechrnn classify eval`",
                   "tagger": "a speech / non-speech frame tagger, not a recognizer; use `speechrnn tagger eval`",
                   "lm": "a character language model, not a recognizer; use `speechrnn lm score` or `lm generate`",
                   "synthesis": "a handwriting synthesis network (it writes, it does not read); use `speechrnn write`"}
    task = bundle.get("extra", {}).get("task")
    if task in other_tasks:
        raise BundleError(f"{path}: {other_tasks[task]}")
    config = from_dict(bundle["config"])
    tokenizer = Tokenizer.from_dict(bundle["tokenizer"])
    model = build_model(len(tokenizer), config)
    load_weights(model, _weights_of(bundle["state_dict"]), path)
    extra = dict(bundle.get("extra", {}))
    for role in ALIGNERS:
        if role in extra:
            aligner = build_model(len(tokenizer), from_dict(extra[role]["config"]))
            load_weights(aligner, _weights_of(bundle["state_dict"], role), path)
            extra[role] = {**extra[role], "model": aligner.to(device).eval()}
    return model.to(device).eval(), tokenizer, config, extra


def load_weights(model: torch.nn.Module, state_dict: dict, path) -> None:
    """model.load_state_dict, a bundle whose weights do not fit its own config being one line (BundleError)."""
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, ValueError, TypeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise BundleError(f"{path}: its weights do not fit the model its config describes ({'; '.join(lines[1:3])}"
                          f"{f'; and {len(lines) - 3} more' if len(lines) > 3 else ''}); re-export it from its "
                          "checkpoint") from None


def aligner_sources(aligner_path: str | Path, end_aligner_path: str | Path | None) -> list[tuple[str, str, dict]]:
    """(role, where, aligner bundle) for add_aligner: the bundles given, or the aligners inside `aligner_path`."""
    source = load_bundle(aligner_path)
    inside = [role for role in ALIGNERS if role in source.get("extra", {})]
    if inside and end_aligner_path is None:
        return [(role, f"{aligner_path} ({role})",
                 {"config": source["extra"][role]["config"], "tokenizer": source["tokenizer"],
                  "extra": {"dev_cer": source["extra"][role].get("dev_cer")},
                  "state_dict": {name[len(role) + 1:]: value for name, value in source["state_dict"].items()
                                 if name.startswith(role + ".")}}) for role in inside]
    return [(role, str(path), load_bundle(path)) for role, path in zip(ALIGNERS, (aligner_path, end_aligner_path))
            if path is not None]


def add_aligner(bundle_path: str | Path, aligner_path: str | Path, out_path: str | Path,
                end_aligner_path: str | Path | None = None) -> dict:
    """Write `bundle_path` with the recognizer bundle `aligner_path` inside as its aligner (word starts, and word
    ends unless `end_aligner_path` gives them) to `out_path` (atomically; it may be `bundle_path`), replacing the
    aligners it had. `aligner_path` may also be a bundle that has aligners inside (a recognizer of the same
    front-end): then its aligners are taken. All must share tokenizer, features and frame rate. Returns
    {role: description} as stored in extra (config, dev_cer)."""
    bundle = load_bundle(bundle_path)
    config = from_dict(bundle["config"])
    shift = frame_shift(config)
    weights = _weights_of(bundle["state_dict"])
    extra = {key: value for key, value in bundle["extra"].items() if key not in ALIGNERS}
    for role, path, aligner in aligner_sources(aligner_path, end_aligner_path):
        aligner_config = from_dict(aligner["config"])
        if aligner.get("extra", {}).get("task") or aligner_config.modality != "audio" or config.modality != "audio":
            raise BundleError(f"{path}: not a speech recognizer bundle, or {bundle_path} is not; add-aligner joins "
                              f"speech recognizers")
        if aligner["tokenizer"] != bundle["tokenizer"]:
            raise BundleError(f"{path}: its vocabulary differs from {bundle_path}'s; train the aligner on the same "
                              f"text settings (recipes/an4/aligner.sh starts it from the recognizer)")
        if aligner_config.features != config.features:
            raise BundleError(f"{path}: its features ({aligner_config.features}) differ from {bundle_path}'s")
        if aligner_config.model.rnn.bidirectional:
            raise BundleError(f"{path}: a bidirectional model, which puts each utterance's first character at frame "
                              f"0; an aligner must read one way (train it with model.rnn.bidirectional=false, as "
                              f"recipes/an4/aligner.sh does)")
        aligner_shift = frame_shift(aligner_config)
        if aligner_shift != shift:
            raise BundleError(f"{path}: {aligner_shift:g} s per output frame, {bundle_path} has {shift:g} s; an "
                              f"aligner needs the recognizer's frame rate (model.conv_channels)")
        weights.update({f"{role}.{name}": value for name, value in aligner["state_dict"].items()})
        extra[role] = {"config": aligner["config"], "dev_cer": aligner.get("extra", {}).get("dev_cer")}
    save_bundle(out_path, weights, bundle["config"], bundle["tokenizer"], extra, bundle["weights"])
    return {role: extra[role] for role in ALIGNERS if role in extra}
