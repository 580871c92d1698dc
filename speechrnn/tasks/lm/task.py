"""Training the character LM through training.loop.fit: next-character cross-entropy over each line's characters and
its end (padding never counts). The epoch with the lowest dev bits per character becomes the bundle.

    speechrnn lm train CONF [key=value ...] [--resume | --overwrite]
"""

import math
from collections import Counter
from pathlib import Path

import torch

from ...config import load_config
from ...training import Task, fit
from ...training.loop import FitResult
from .data import TextDataset, read_lines, summed_loss
from .model import TASK, Alphabet, CharLM, LMConfig


class LMTask(Task):
    name = TASK

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        data = self.config.data
        train_lines = read_lines(data.train_text)
        if checkpoint:
            self.alphabet = Alphabet(checkpoint["alphabet"])
        else:
            self.alphabet = Alphabet.from_counts(Counter(c for line in train_lines for c in line), data.min_count)
        self.model = CharLM(len(self.alphabet), self.config.model).to(device)
        self.train_set = TextDataset(train_lines, self.alphabet, data.max_chars)
        self.dev_set = TextDataset(read_lines(data.dev_text), self.alphabet, data.max_chars)

    def describe(self) -> str:
        rnn = self.config.model.rnn
        chars = sum(self.train_set.frame_lengths)
        return (f"model: character LM, {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters, "
                f"{rnn.num_layers} x {rnn.cell} {rnn.hidden_size}, {len(self.alphabet)} symbols; train "
                f"{len(self.train_set)} lines ({chars / 1e6:.1f} M characters), dev {len(self.dev_set)} lines")

    def compute_loss(self, net, batch: dict, device: torch.device, amp_dtype) -> tuple:
        total, count = summed_loss(net, batch, device, amp_dtype)
        return total / max(count, 1), {"loss": float(total.detach()), "count": count}

    @torch.no_grad()
    def evaluate(self, loader, device: torch.device) -> dict:
        self.model.eval()
        total, count = 0.0, 0
        for batch in loader:
            loss, n = summed_loss(self.model, batch, device)
            total, count = total + float(loss), count + n
        self.model.train()
        return {"loss": total / max(count, 1), "bpc": total / max(count, 1) / math.log(2)}

    def selection_key(self, dev: dict) -> tuple:
        return (-dev["bpc"],)

    def log_fields(self, sums: dict, dev: dict) -> dict:
        return {"train_loss": sums.get("loss", 0.0) / max(sums.get("count", 0), 1), "dev_loss": dev["loss"],
                "dev_bpc": dev["bpc"]}

    def epoch_line(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.3f} ({record['train_loss'] / math.log(2):.3f} bits/char), dev "
                f"{record['dev_bpc']:.3f} bits/char")

    def best_line(self, key: tuple) -> str:
        return f"dev {-key[0]:.3f} bits/char"

    def checkpoint_extras(self) -> dict:
        return {"alphabet": self.alphabet.chars}

    def bundle_vocabulary(self, best: dict) -> dict:
        return {"alphabet": best["alphabet"]}

    def bundle_scores(self, key: tuple) -> dict:
        return {"dev_bpc": -key[0]}


def load_lm_config(path: str | Path | None = None, overrides: list[str] = ()) -> LMConfig:
    return load_config(path, overrides, schema=LMConfig)


def train(config: LMConfig, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train a character LM (training.loop.fit): exp_dir gets last.pt, best.pt, train_log.jsonl and model.pt."""
    return fit(LMTask(config), config, resume, overwrite)

