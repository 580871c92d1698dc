"""Decoding CTC log-probs to text."""

import torch


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks (id 0). log_probs (B, T, V) -> token ids per item."""
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    results = []
    for row, length in zip(best, lens.tolist()):
        path = torch.unique_consecutive(row[:length])
        results.append([int(t) for t in path if t != 0])
    return results
