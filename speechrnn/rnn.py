"""The recurrent layers, one registry from name to class, and the stacked (bi)directional encoder that runs
variable-length padded batches exactly as if each utterance were processed alone.

Why not pack_padded_sequence: on CPU packed input cannot use torch's mkldnn LSTM kernel, and a training step
of the AN4-sized BiLSTM is about 1.8x slower with it (benchmarks/bench_varlen_rnn.py).
Instead each direction is a unidirectional layer over the padded batch. The forward direction never
sees the padding before a valid step. The backward direction runs on each sequence reversed *within its
own length*, so its padding also comes last; the output is reversed back the same way.
"""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class RNNConfig:
    cell: str = "lstm"  # one of RNN_CELLS
    hidden_size: int = 256
    num_layers: int = 3
    bidirectional: bool = True
    dropout: float = 0.1  # between layers


def _torch_rnn(kind):
    def make(input_size: int, hidden_size: int) -> nn.Module:
        return kind(input_size, hidden_size, batch_first=True)

    return make


# name -> factory(input_size, hidden_size) returning a unidirectional, batch-first layer with the nn.LSTM
# call interface: layer(x (B, T, I)) -> (y (B, T, H), state).
RNN_CELLS = {
    "lstm": _torch_rnn(nn.LSTM),
    "gru": _torch_rnn(nn.GRU),
    "elman": _torch_rnn(nn.RNN),
}


def make_cell(name: str, input_size: int, hidden_size: int) -> nn.Module:
    if name not in RNN_CELLS:
        raise ValueError(f"unknown rnn cell {name!r}; valid cells: {', '.join(sorted(RNN_CELLS))}")
    return RNN_CELLS[name](input_size, hidden_size)


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, F) within its own length; padding stays in place."""
    steps = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # (B, T)
    source = torch.where(steps < lens[:, None], lens[:, None] - 1 - steps, steps)  # (B, T)
    return x.gather(1, source.unsqueeze(-1).expand_as(x))


class StackedRNN(nn.Module):
    """num_layers x (bi)directional recurrent layers with dropout between them. (B, T, I) -> (B, T, D*H)."""

    def __init__(self, input_size: int, config: RNNConfig):
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        self.output_size = directions * config.hidden_size
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        size = input_size
        for _ in range(config.num_layers):
            self.forward_layers.append(make_cell(config.cell, size, config.hidden_size))
            if config.bidirectional:
                self.backward_layers.append(make_cell(config.cell, size, config.hidden_size))
            size = self.output_size
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        for index, forward_layer in enumerate(self.forward_layers):
            if index > 0:
                x = self.dropout(x)
            outputs = [forward_layer(x)[0]]  # (B, T, H)
            if self.config.bidirectional:
                backward = self.backward_layers[index](reverse_padded(x, lens))[0]
                outputs.append(reverse_padded(backward, lens))  # (B, T, H)
            x = torch.cat(outputs, dim=-1)  # (B, T, D*H)
        return x
