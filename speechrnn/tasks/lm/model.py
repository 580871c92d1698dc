"""The character LM: embedding -> num_layers unidirectional recurrent layers (any cell of rnn.RNN_CELLS, carrying
their state) -> dropout -> linear over the alphabet.

A line of text is read as "\\n" + line and predicts line + "\\n": index 0 of the alphabet, "\\n", is both the start
and the end of a line, so the model knows where words begin and end (a recogniser of isolated words scores a word as
a whole line). Characters outside the alphabet map to UNKNOWN. The config schema (LMConfig) is here too.
"""

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ...config import OptimConfig, TrainConfig, bounded
from ...errors import UserError
from ...rnn import RNNConfig, make_cell

TASK = "lm"  # bundle["extra"]["task"] of a language-model bundle
LINE = "\n"  # alphabet[0]: start and end of a line
UNKNOWN = "\ufffd"  # alphabet[1]: any character the training text did not have


@dataclass
class LMDataConfig:
    train_text: str = "???"  # one line of text per line (UTF-8)
    dev_text: str = "???"
    max_chars: int = bounded(300, ">= 8")  # longer lines are cut into pieces of this many characters
    min_count: int = bounded(2, ">= 1")  # characters seen fewer times in train_text map to UNKNOWN
    max_frames: int = bounded(16000, "> 0")  # characters per batch (padded)
    max_batch_size: int = bounded(128, ">= 1")
    num_workers: int = bounded(0, ">= 0")


@dataclass
class LMModelConfig:
    embedding_dim: int = bounded(64, "> 0")
    rnn: RNNConfig = field(default_factory=lambda: RNNConfig(hidden_size=512, num_layers=1, bidirectional=False,
                                                             dropout=0.1))
    dropout: float = bounded(0.1, ">= 0 and < 1")  # before the output layer


@dataclass
class LMConfig:
    data: LMDataConfig = field(default_factory=LMDataConfig)
    model: LMModelConfig = field(default_factory=LMModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


State = list  # one entry per layer: a tensor (1, B, H), or for an LSTM a tuple of two


class CharLM(nn.Module):
    """(B, T) character ids -> (B, T, V) next-character logits and the state after the last step."""

    def __init__(self, vocab_size: int, config: LMModelConfig):
        super().__init__()
        rnn = config.rnn
        if rnn.bidirectional:
            raise UserError("lm: model.rnn.bidirectional must be false (a language model reads left to right)")
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim)
        sizes = [config.embedding_dim] + [rnn.hidden_size] * rnn.num_layers
        self.layers = nn.ModuleList(make_cell(rnn.cell, sizes[i], rnn.hidden_size, rnn) for i in range(rnn.num_layers))
        self.between = nn.Dropout(rnn.dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(rnn.hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state: Optional[State] = None) -> tuple[torch.Tensor, State]:
        x = self.embedding(ids)  # (B, T) -> (B, T, E)
        new_state = []
        for index, layer in enumerate(self.layers):
            if index:
                x = self.between(x)
            x, layer_state = layer(x, None if state is None else state[index])  # (B, T, H)
            new_state.append(layer_state)
        return self.output(self.dropout(x)), new_state  # (B, T, V)


class Alphabet:
    """Characters <-> ids: "\\n" (0), UNKNOWN (1), then the characters of the training text."""

    def __init__(self, chars: list[str]):
        if chars[:2] != [LINE, UNKNOWN]:
            raise UserError("lm: an alphabet starts with the line mark and the unknown character")
        self.chars = chars
        self.index = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_counts(cls, counts: dict, min_count: int) -> "Alphabet":
        kept = sorted(c for c, n in counts.items() if n >= min_count and c not in (LINE, UNKNOWN))
        return cls([LINE, UNKNOWN] + kept)

    def encode(self, text: str) -> list[int]:
        return [self.index.get(c, 1) for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids)

    def __len__(self) -> int:
        return len(self.chars)

    def missing(self, chars) -> list[str]:
        return sorted(set(c for c in chars if c not in self.index))
