"""One-file model package: weights, config, tokenizer (and, inside the weights, feature CMVN statistics).
Saved with torch.save and loaded with weights_only=True: nothing but tensors and plain data."""

import os
from pathlib import Path

import torch

from .errors import BundleError

FORMAT = "speechrnn-bundle"
VERSION = 1


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


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


def load_bundle(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"{path}: no such model bundle")
    try:
        bundle = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on foreign files (KeyError, IndexError, ...)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise BundleError(f"{path}: not a speechrnn model bundle ({first[:120]})") from None
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
