"""What a checkpoint holds besides the model: the random generators' states, and the epoch log trimmed to it."""

import json
import random
from pathlib import Path

import numpy as np
import torch


def rng_state() -> dict:
    np_state = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def trim_log(log_path: Path, done: int) -> None:
    """Keep only the JSONL epoch records up to epoch `done` (the one a resumed checkpoint holds); a line that is no
    epoch record (half written when a run was killed, or edited by hand) goes too."""
    kept = [line for line in log_path.read_text(errors="replace").splitlines() if _epoch(line) <= done]
    log_path.write_text("".join(line + "\n" for line in kept))


def _epoch(line: str) -> float:
    """The epoch of a JSONL log record, inf for anything else."""
    try:
        record = json.loads(line)
    except ValueError:
        return float("inf")
    epoch = record.get("epoch") if isinstance(record, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else float("inf")


def best_key(checkpoint: dict) -> tuple | None:
    """The selection key a checkpoint was saved with (higher is better). Checkpoints of recognizers written before
    the key was general hold their best dev CER instead."""
    if "best_key" in checkpoint:
        return tuple(checkpoint["best_key"])
    return (-checkpoint["best_cer"],)
