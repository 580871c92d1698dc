"""A trained frame tagger as a voice-activity detector, no trainer needed: `load_tagger` and `TaggerVAD`, which the
microphone demo and the long-recording splitter use (through vad.load_vad)."""

from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from ...bundle import load_bundle, load_weights
from ...config import from_dict
from ...errors import BundleError
from .model import TASK, FrameTagger, TaggerConfig, build_tagger, frame_shift


def load_tagger(path: str | Path, device: torch.device | str = "cpu") -> tuple[FrameTagger, TaggerConfig, dict]:
    """Bundle -> (tagger in eval mode on `device`, config, bundle extras)."""
    bundle = load_bundle(path)
    extra = bundle.get("extra", {})
    if extra.get("task") != TASK:
        raise BundleError(f"{path}: not a frame-tagger bundle (task {extra.get('task', 'ctc')!r})")
    config = from_dict(bundle["config"], schema=TaggerConfig)
    model = build_tagger(config)
    load_weights(model, bundle["state_dict"], path)
    return model.to(device).eval(), config, extra


# --- voice-activity detection ---------------------------------------------------------------------

class TaggerVAD:
    """A trained tagger as a voice-activity detector: `frame_shift` (seconds per output frame; frame i is centred
    at i * frame_shift) and `speech_probability(samples, rate)` -> (n_frames,) float32 in [0, 1].

    Audio longer than `chunk_seconds` runs in chunks with `context_seconds` of audio on either side whose frames are
    dropped, so memory stays bounded; each chunk starts on the frame grid, so the frames line up exactly."""

    def __init__(self, model: FrameTagger, config: TaggerConfig, device: torch.device | str = "cpu",
                 chunk_seconds: float = 30.0, context_seconds: float = 1.0):
        self.model, self.config, self.device = model, config, torch.device(device)
        self.sample_rate = config.features.sample_rate
        self.frame_shift = frame_shift(config)
        self.hop = round(self.frame_shift * self.sample_rate)  # samples per output frame
        self.chunk = max(1, round(chunk_seconds / self.frame_shift))  # frames
        self.context = round(context_seconds / self.frame_shift)  # frames

    @classmethod
    def load(cls, bundle: str | Path, device: str = "cpu", **options) -> "TaggerVAD":
        model, config, _ = load_tagger(bundle, device)
        return cls(model, config, device, **options)

    @torch.inference_mode()
    def speech_probability(self, samples: np.ndarray, rate: int) -> np.ndarray:
        wav = torch.as_tensor(np.asarray(samples, dtype=np.float32))
        if wav.dim() != 1:
            raise ValueError(f"speech_probability takes mono samples (N,), not an array of shape {tuple(wav.shape)}")
        if len(wav) == 0:
            return np.zeros(0, dtype=np.float32)
        if rate != self.sample_rate:
            wav = AF.resample(wav, rate, self.sample_rate)
        total = int(self.model.output_lengths(torch.tensor([len(wav)]))[0])
        probs = []
        for first in range(0, total, self.chunk):
            last = min(first + self.chunk, total)  # frames [first, last) of this chunk
            begin = max(0, first - self.context)  # audio from frame `begin` on: sample begin * hop
            piece = wav[begin * self.hop: (last + self.context) * self.hop].to(self.device)
            logits, _ = self.model(piece[None], torch.tensor([len(piece)], device=self.device))
            probs.append(logits[0, first - begin: last - begin].softmax(-1)[:, 1].cpu())
        return torch.cat(probs).numpy().astype(np.float32)

