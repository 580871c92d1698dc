"""Load a bundle into a ready model, and transcribe audio with it."""

from dataclasses import dataclass
from pathlib import Path

import torch

from .audio import load_audio
from .bundle import load_bundle
from .config import Config, from_dict
from .data import collate
from .decode import greedy_decode
from .model import CTCModel, build_speech_model
from .text import Tokenizer


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CTCModel, Tokenizer, Config, dict]:
    """Bundle -> (model in eval mode on `device`, tokenizer, config, bundle extras)."""
    bundle = load_bundle(path)
    config = from_dict(bundle["config"])
    tokenizer = Tokenizer.from_dict(bundle["tokenizer"])
    model = build_speech_model(len(tokenizer), config.model, config.features, None)
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
    def transcribe_waveforms(self, wavs: list[torch.Tensor]) -> list[str]:
        batch = collate([{"id": str(i), "wav": w, "tokens": torch.zeros(0, dtype=torch.long), "text": ""}
                         for i, w in enumerate(wavs)])
        log_probs, lens = self.model(batch["wavs"].to(self.device), batch["wav_lens"].to(self.device))
        return [self.tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)]

    def transcribe(self, paths: list[str | Path]) -> list[Transcript]:
        wavs = [load_audio(p, self.config.features.sample_rate) for p in paths]
        return [Transcript(str(p), text) for p, text in zip(paths, self.transcribe_waveforms(wavs))]
