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


def save_bundle(path: str | Path, state_dict: dict, config: dict, tokenizer: dict, extra: dict | None = None) -> None:
    atomic_save({"format": FORMAT, "version": VERSION, "config": config, "tokenizer": tokenizer,
                 "state_dict": state_dict, "extra": extra or {}}, path)


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
    return bundle
