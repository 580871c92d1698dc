"""Training the synthesis network through training.loop.fit: per predicted point the negative log-likelihood of its
offset (the output mixture) and of the pen lifting, plus the finish decision's cross-entropy. The epoch with the
lowest dev negative log-likelihood per point (offset + pen, the measure RESULTS compares) becomes the bundle.

    speechrnn write train CONF [key=value ...] [--resume | --overwrite]
"""

from collections import Counter
from pathlib import Path

import torch

from ...config import load_config
from ...data import iter_manifest
from ...training import Task, fit
from ...training.loop import FitResult
from ..lm.model import Alphabet
from .data import InkOffsetsDataset, summed_loss
from .model import TASK, HandwritingSynthesis, SynthConfig


class SynthesisTask(Task):
    name = TASK

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        data = self.config.data
        if checkpoint:
            self.alphabet = Alphabet(checkpoint["alphabet"])
        else:
            texts = (str(e["text"]) for e in iter_manifest(data.train_manifest, fields=("text",)))
            self.alphabet = Alphabet.from_counts(Counter(c for text in texts for c in text), data.min_count)
        self.model = HandwritingSynthesis(len(self.alphabet), self.config.model).to(device)
        self.train_set = InkOffsetsDataset(data.train_manifest, self.alphabet, data.spacing, data.max_points, "train")
        self.dev_set = InkOffsetsDataset(data.dev_manifest, self.alphabet, data.spacing, data.max_points, "dev")

    def describe(self) -> str:
        model = self.config.model
        kind = "text-conditioned (attention window)" if model.attention else "unconditional (no text)"
        return (f"model: handwriting synthesis, {kind}, {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M "
                f"parameters, {model.num_layers} x LSTM {model.hidden_size}, {model.mixtures} output Gaussians, "
                f"{len(self.alphabet)} symbols; train {len(self.train_set)} inks "
                f"({sum(self.train_set.frame_lengths) / 1e6:.2f} M points), dev {len(self.dev_set)}")

    def compute_loss(self, net, batch: dict, device: torch.device, amp_dtype) -> tuple:
        sums = summed_loss(net, batch, device, amp_dtype)
        points = sums["points"].clamp(min=1)
        loss = (sums["offset"] + sums["pen"] + sums["finish"]) / points
        return loss, {"loss": float(loss.detach() * points), "count": float(points)}

    @torch.no_grad()
    def evaluate(self, loader, device: torch.device) -> dict:
        self.model.eval()
        totals = Counter()
        for batch in loader:
            totals.update({k: float(v) for k, v in summed_loss(self.model, batch, device).items()})
        self.model.train()
        points = max(totals["points"], 1)
        return {"loss": (totals["offset"] + totals["pen"] + totals["finish"]) / points,
                "nll": (totals["offset"] + totals["pen"]) / points, "finish": totals["finish"] / points}

    def selection_key(self, dev: dict) -> tuple:
        return (-dev["nll"],)

    def log_fields(self, sums: dict, dev: dict) -> dict:
        return {"train_loss": sums.get("loss", 0.0) / max(sums.get("count", 0), 1), "dev_loss": dev["loss"],
                "dev_nll": dev["nll"], "dev_finish": dev["finish"]}

    def epoch_line(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.3f}, dev {record['dev_nll']:.3f} nats/point "
                f"(+ finish {record['dev_finish']:.4f})")

    def best_line(self, key: tuple) -> str:
        return f"dev {-key[0]:.3f} nats/point"

    def checkpoint_extras(self) -> dict:
        return {"alphabet": self.alphabet.chars}

    def bundle_vocabulary(self, best: dict) -> dict:
        return {"alphabet": best["alphabet"]}

    def bundle_scores(self, key: tuple) -> dict:
        return {"dev_nll": -key[0]}


def load_synth_config(path: str | Path | None = None, overrides: list[str] = ()) -> SynthConfig:
    return load_config(path, overrides, schema=SynthConfig)


def train(config: SynthConfig, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train a synthesis network (training.loop.fit): exp_dir gets last.pt, best.pt, train_log.jsonl and model.pt."""
    return fit(SynthesisTask(config), config, resume, overwrite)
