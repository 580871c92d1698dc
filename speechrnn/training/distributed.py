"""torch.distributed for fit(): under torchrun (WORLD_SIZE > 1) each process trains a DistributedDataParallel
replica on its share of every epoch's batches (NCCL on CUDA, one GPU per process; gloo on CPU); rank 0 alone
evaluates, prints, logs and writes checkpoints, which hold the plain model and resume on any number of processes."""

import hashlib
import json
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from ..config import to_dict
from ..errors import UserError


def world() -> tuple[int, int]:
    """(rank, world size) of this process: the initialised process group's, else torchrun's environment's."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def run_distributed(run: Callable[[torch.device], object], device: torch.device, timeout: float):
    """run(device) in a process group (started here unless the caller has one); a rank that dies or does not answer
    within `timeout` seconds makes the others stop with a UserError that says so."""
    rank, world_size = world()
    if device.type == "cuda":  # one GPU per process
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started_group = not dist.is_initialized()
    try:
        if started_group:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timedelta(seconds=timeout),
                                    device_id=device if device.type == "cuda" else None)
        return run(device)
    except RuntimeError as err:  # gloo reports a lost peer as a plain RuntimeError, NCCL and the store as DistError
        if not (isinstance(err, dist.DistError) or "gloo" in str(err)):
            raise
        detail = re.sub(r"^\[\S*\] ", "", (str(err).strip().splitlines() or [type(err).__name__])[0]).split(". ")[0]
        raise UserError(f"rank {rank} of {world_size}: lost contact with the other training processes ({detail}): "
                        f"another rank died (see its own error) or did not answer within train.dist_timeout="
                        f"{timeout:g} s (raise it if a rank is only slow, e.g. rank 0 evaluating a large dev set)"
                        ) from None
    finally:
        if started_group and dist.is_initialized():
            dist.destroy_process_group()


def fingerprint(*values) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def check_same_on_every_rank(config, train_set, resumed_after: int) -> None:
    """Stop every rank with the reason when a rank's config, training data or checkpoint differs from rank 0's."""
    mine = {"config": fingerprint(to_dict(config)), "samples": len(train_set), "resumed": resumed_after,
            "data": train_set.fingerprint()}
    ranks = [None] * dist.get_world_size()
    dist.all_gather_object(ranks, mine)
    first = ranks[0]
    for rank, theirs in enumerate(ranks):
        if theirs["config"] != first["config"]:
            raise UserError(f"rank {rank} has another config than rank 0: start every process with the same config "
                            "file and key=value overrides")
        if theirs["data"] != first["data"]:
            raise UserError(f"{config.data.train_manifest}: rank {rank} reads other training data than rank 0 "
                            f"({theirs['samples']} usable samples against {first['samples']}, or other texts or "
                            "lengths); every process must read the same manifest and audio (identical copies on "
                            "every machine)")
        if theirs["resumed"] != first["resumed"]:
            raise UserError(f"{Path(config.train.exp_dir) / 'last.pt'}: rank {rank} resumes after epoch "
                            f"{theirs['resumed']} but rank 0 after epoch {first['resumed']} (0: from scratch); "
                            "train.exp_dir must be one folder that every machine shares")


def from_rank0(*values) -> list:
    """`values` as rank 0 has them. Every rank calls this: the others wait in it while rank 0 evaluates and writes."""
    shared = list(values)
    dist.broadcast_object_list(shared, src=0)
    return shared


def skip_everywhere(empty: bool, device: torch.device) -> bool:
    """True on every rank when any rank's batch is empty (none of its files loaded): all skip it, or the others
    would wait for that rank's gradients."""
    flag = torch.tensor([1 if empty else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def sum_over_ranks(sums: dict, device: torch.device) -> dict:
    """Each value summed over the ranks (float64), in its own type."""
    keys = sorted(sums)
    total = torch.tensor([float(sums[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return {k: type(sums[k])(v) for k, v in zip(keys, total.tolist())}
