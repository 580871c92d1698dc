"""Print the hidden size at which CELL's model has about as many parameters as the config's own (LSTM) model.

Usage: python local/match_hidden.py CONFIG CELL   (prints: hidden_size parameters reference_parameters)
"""

import sys

from speechrnn.config import load_config
from speechrnn.model import build_model

VOCAB = 29  # AN4's characters + blank: only the head depends on it


def parameters(config_path: str, cell: str, hidden: int | None = None) -> int:
    overrides = [f"model.rnn.cell={cell}"] + ([f"model.rnn.hidden_size={hidden}"] if hidden else [])
    return sum(p.numel() for p in build_model(VOCAB, load_config(config_path, overrides)).parameters())


def main(config_path: str, cell: str) -> None:
    reference = parameters(config_path, load_config(config_path).model.rnn.cell)
    low, high = 8, 8192  # the largest hidden size whose model is not bigger than the reference
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if parameters(config_path, cell, middle) <= reference else (low, middle - 1)
    print(low, parameters(config_path, cell, low), reference)


if __name__ == "__main__":
    main(*sys.argv[1:3])
