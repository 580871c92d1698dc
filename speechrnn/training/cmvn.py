"""Global CMVN statistics of a front-end's features over the training set (`speechrnn stats`, or at the start
of a run without data.cmvn)."""

import torch
from tqdm import tqdm

from ..bundle import load_error
from ..data import make_loader
from ..errors import UserError
from ..features import Cmvn, CmvnAccumulator


def compute_cmvn(frontend: Cmvn, loader, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Global mean and std of the front-end's features (before CMVN) over every valid frame of `loader`."""
    accumulator = CmvnAccumulator(frontend.cmvn_mean.numel())
    with torch.no_grad():
        for batch in tqdm(loader, desc="cmvn stats", unit="batch", disable=None, leave=False):
            if not batch["ids"]:
                continue
            feats, lens = frontend.raw(batch["inputs"].to(device), batch["input_lens"].to(device))
            accumulator.add(feats.cpu(), lens.cpu())
    return accumulator.result()


def read_cmvn(path: str, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (mean, std) of a data.cmvn file (`speechrnn stats`), checked to fit a front-end of `dim` features."""
    advice = "write it with `speechrnn stats CONFIG -o FILE`, or unset data.cmvn to compute it at the start"
    try:
        stats = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"data.cmvn={path}: no such file; {advice}") from None
    except Exception as err:  # torch raises many types on damaged or foreign files
        raise UserError(f"data.cmvn={path}: not a CMVN statistics file ({load_error(err)}); {advice}") from None
    if not isinstance(stats, dict) or not all(isinstance(stats.get(k), torch.Tensor) for k in ("mean", "std")):
        raise UserError(f"data.cmvn={path}: not a CMVN statistics file (it lacks the mean and std tensors); {advice}")
    mean, std = stats["mean"].float().reshape(-1), stats["std"].float().reshape(-1)
    if mean.numel() != dim or std.numel() != dim:
        raise UserError(f"data.cmvn={path}: statistics of {mean.numel()} features, but this model's front-end makes "
                        f"{dim} (features.*); {advice}")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std >= 0).all()):
        raise UserError(f"data.cmvn={path}: holds NaN, infinite or negative values; {advice}")
    return mean, std


def init_cmvn(frontend: Cmvn, config, train_set, device: torch.device) -> None:
    """The front-end's CMVN from config.data.cmvn (`speechrnn stats`), else from the training inputs as they are
    (without augmentation)."""
    if config.data.cmvn:
        frontend.set_cmvn(*read_cmvn(config.data.cmvn, frontend.cmvn_mean.numel()))
    else:
        plain = make_loader(train_set.without_augmentation(), config, False, 0)
        frontend.set_cmvn(*compute_cmvn(frontend, plain, device))
