"""Global CMVN statistics of a front-end's features over the training set (`speechrnn stats`, or at the start
of a run without data.cmvn)."""

import torch
from tqdm import tqdm

from ..data import make_loader
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


def init_cmvn(frontend: Cmvn, config, train_set, device: torch.device) -> None:
    """The front-end's CMVN from config.data.cmvn (`speechrnn stats`), else from the training inputs as they are
    (without augmentation)."""
    if config.data.cmvn:
        stats = torch.load(config.data.cmvn, map_location="cpu", weights_only=True)
        frontend.set_cmvn(stats["mean"], stats["std"])
    else:
        plain = make_loader(train_set.without_augmentation(), config, False, 0)
        frontend.set_cmvn(*compute_cmvn(frontend, plain, device))
