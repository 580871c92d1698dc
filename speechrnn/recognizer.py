"""Load a bundle into a ready model, and transcribe audio or ink files with it."""

from dataclasses import dataclass
from pathlib import Path

import torch

from .audio import load_audio
from .bundle import load_bundle
from .config import Config, from_dict
from .data import collate
from .decode import greedy_decode
from .ink import Ink, check_ink, featurize, read_ink
from .model import CTCModel, build_model
from .text import Tokenizer


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CTCModel, Tokenizer, Config, dict]:
    """Bundle -> (model in eval mode on `device`, tokenizer, config, bundle extras)."""
    bundle = load_bundle(path)
    config = from_dict(bundle["config"])
    tokenizer = Tokenizer.from_dict(bundle["tokenizer"])
    model = build_model(len(tokenizer), config)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), tokenizer, config, bundle.get("extra", {})


@dataclass
class Transcript:
    path: str
    text: str


class Recognizer:
    def __init__(self, model: CTCModel, tokenizer: Tokenizer, config: Config, device: torch.device):
        self.model, self.tokenizer, self.config, self.device = model, tokenizer, config, device

    @classmethod
    def load(cls, bundle: str | Path, device: str = "cpu") -> "Recognizer":
        model, tokenizer, config, _ = load_model(bundle, device)
        return cls(model, tokenizer, config, torch.device(device))

    @torch.no_grad()
    def transcribe_inputs(self, inputs: list[torch.Tensor]) -> list[str]:
        """Model inputs (waveforms (N,) for audio, `ink.featurize` features (T, F) for ink) -> texts."""
        batch = collate([{"id": str(i), "inputs": x, "tokens": torch.zeros(0, dtype=torch.long), "text": ""}
                         for i, x in enumerate(inputs)])
        log_probs, lens = self.model(batch["inputs"].to(self.device), batch["input_lens"].to(self.device))
        return [self.tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)]

    def transcribe_inks(self, inks: list[Ink]) -> list[str]:
        return self.transcribe_inputs([torch.from_numpy(featurize(ink, self.config.ink)).float() for ink in inks])

    def load_input(self, path: str | Path) -> torch.Tensor:
        """An audio file as the model's waveform, or an ink file (.json, .inkml, .xml) as its stroke features."""
        if self.config.modality == "ink":
            ink = check_ink(read_ink(path), str(path))
            return torch.from_numpy(featurize(ink, self.config.ink)).float()
        return load_audio(path, self.config.features.sample_rate)

    def transcribe(self, paths: list[str | Path]) -> list[Transcript]:
        inputs = [self.load_input(p) for p in paths]
        return [Transcript(str(p), text) for p, text in zip(paths, self.transcribe_inputs(inputs))]
