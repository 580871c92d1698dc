"""The run folder (train.exp_dir) of fit(): claimed before training so that an earlier run is never clobbered
without --resume or --overwrite, checked to be writable, and its last.pt read (or refused) in one line."""

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ..bundle import load_error
from ..config import to_dict
from ..errors import UserError

RUN_FILES = ("last.pt", "best.pt", "model.pt", "train_log.jsonl")  # what a started or finished run leaves
CHECKPOINT_KEYS = ("model", "optimizer", "scheduler", "sampler", "rng", "epoch", "best_epoch", "stale",
                   "train_seconds")


def earlier_run(exp_dir: Path) -> list[str]:
    """The files of a started or finished run in `exp_dir` (an empty train_log.jsonl does not count)."""
    found = []
    for name in RUN_FILES:
        path = exp_dir / name
        if path.is_file() and (name != "train_log.jsonl" or path.stat().st_size > 0):
            found.append(name)
    return found


def claim(exp_dir: Path, resume: bool, overwrite: bool, main: bool) -> None:
    """Create `exp_dir` and check it can be written. Without `resume` a folder holding an earlier run is refused
    unless `overwrite`, which removes that run's files (and its tensorboard/ folder) on the main process. With
    `resume` and no last.pt the run starts afresh, unless a finished run's model.pt is there: what else a run may
    leave without last.pt (its first epoch's log line and best.pt, when killed while writing its first checkpoints)
    is rewritten as the uninterrupted run would."""
    if resume and overwrite:
        raise UserError("--resume continues the run in train.exp_dir, --overwrite replaces it: give one of them")
    try:
        exp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=exp_dir):
            pass
    except OSError as err:
        raise UserError(f"{exp_dir}: the experiment folder (train.exp_dir) cannot be written ({err.strerror}); "
                        "fix its permissions or choose another train.exp_dir") from None
    if resume and (exp_dir / "last.pt").is_file():
        return
    found = earlier_run(exp_dir)
    if not found or (resume and "model.pt" not in found):
        return
    if not overwrite:
        what = "--resume found no last.pt there, and starting afresh" if resume else "training"
        raise UserError(f"{exp_dir}: holds an earlier run ({', '.join(found)}); {what} would overwrite it: add "
                        "--resume to continue it, --overwrite to replace it, or choose another train.exp_dir")
    if main:
        tensorboard = exp_dir / "tensorboard"
        removed = found + (["tensorboard/"] if tensorboard.is_dir() else [])
        with writing(exp_dir):
            for name in found:
                (exp_dir / name).unlink()
            if tensorboard.is_dir():
                shutil.rmtree(tensorboard)
        print(f"note: --overwrite: removed the earlier run's {', '.join(removed)} from {exp_dir}", file=sys.stderr)


@contextlib.contextmanager
def writing(path: Path):
    """An OSError while writing `path` (read-only folder, full disk) as one line that names it."""
    try:
        yield
    except OSError as err:
        raise UserError(f"{err.filename or path}: cannot be written ({err.strerror or err}); free space or fix the "
                        "permissions of train.exp_dir, then rerun with --resume") from None


def load_checkpoint(last: Path) -> dict:
    """exp_dir/last.pt, checked to be a training checkpoint; a corrupt or foreign file is one line."""
    try:
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types on damaged files (RuntimeError, EOFError, UnpicklingError)
        raise UserError(f"{last}: cannot be read as a checkpoint ({load_error(err)}); remove it to resume from an "
                        "earlier copy, or start afresh with --overwrite") from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise UserError(f"{last}: not a training checkpoint (it lacks {', '.join(missing)}); remove it, or start "
                        "afresh with --overwrite")
    return checkpoint


def config_differences(checkpoint: dict, config, sections: tuple[str, ...] = ("modality", "features", "model")) -> list[str]:
    """"key=stored (now new)" for each key of `sections` whose value differs between the checkpoint's config and
    `config`."""
    def flat(node, prefix=""):
        if isinstance(node, dict):
            return {k: v for key, value in node.items() for k, v in flat(value, f"{prefix}{key}.").items()}
        return {prefix[:-1]: node}

    stored, current = flat(checkpoint.get("config") or {}), flat(to_dict(config))
    return [f"{key}={stored.get(key)!r} (now {value!r})" for key, value in current.items()
            if key.split(".")[0] in sections and key in stored and stored[key] != value]


def mismatch(last: Path, checkpoint: dict, config, err: Exception) -> UserError:
    """The one line for a checkpoint whose tensors do not fit this run's model or optimizer."""
    differences = config_differences(checkpoint, config)
    lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
    detail = (f"it was trained with {', '.join(differences[:4])}" if differences
              else "; ".join(lines[:2]) + (f"; and {len(lines) - 2} more" if len(lines) > 2 else ""))
    return UserError(f"{last}: does not fit this run's model ({detail}); resume with the config it was trained with, "
                     "or start afresh with --overwrite")
