"""AdamW with linear warm-up and cosine decay to optim.final_lr_ratio of the peak, planned in optimizer steps."""

import math

import torch


def lr_lambda(warmup: int, total: int, final_ratio: float):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def build_optimizer(model: torch.nn.Module, optim) -> torch.optim.Optimizer:
    """`optim`: the config's optim section (lr, betas, weight_decay)."""
    return torch.optim.AdamW(model.parameters(), lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, optim, total_steps: int, warmup_steps: int | None = None):
    warmup = optim.warmup_steps if warmup_steps is None else warmup_steps
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(warmup, total_steps, optim.final_lr_ratio))
