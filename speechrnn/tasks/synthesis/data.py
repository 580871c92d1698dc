"""Ink for the synthesis network: each manifest entry as its pen offsets (dx, dy in units of the resampling step,
pen_up) with its text as character ids, and the loss that training and scoring share."""

import sys

import numpy as np
import torch
from tqdm import tqdm

from ...data import iter_manifest
from ...features import length_mask
from ...ink.features import ink_features
from ...ink.readers import Ink, InkError, check_ink, load_ink
from .model import HandwritingSynthesis, point_nll

INK_FIELDS = ("text",)


def ink_offsets(ink: Ink, spacing: float) -> np.ndarray:
    """(N, 3) float32: each point's offset from the one before (in steps of `spacing` writing heights; the first
    point's is 0) and 1 where the pen lifts after it. The ink is normalised as the recognizer's features are (y up,
    height 1 about its centre line) and resampled every `spacing` heights."""
    features = ink_features(ink, spacing=spacing, flip_y=bool(ink.y_down))[:, :3].copy()  # dx, dy, pen_up
    features[:, :2] /= spacing
    return features


def offsets_to_ink(offsets: np.ndarray, spacing: float, text: str | None = None) -> Ink:
    """(N, 3) offsets (as ink_offsets gives them) -> an Ink in writing heights, y up, one stroke per pen lift."""
    points = np.cumsum(offsets[:, :2].astype(np.float64), axis=0) * spacing  # (N, 2)
    ends = np.flatnonzero(offsets[:, 2] > 0.5) + 1
    strokes = [s for s in np.split(points, ends) if len(s)]
    return Ink(strokes or [points[:1]], text, y_down=False)


class InkOffsetsDataset:
    """A manifest's inks as offsets and text ids (an Alphabet of tasks.lm); inks that cannot be read, are longer
    than `max_points` once resampled or have fewer than 2 points are reported (one line each, unreadable ones) and
    left out."""

    def __init__(self, manifest, alphabet, spacing: float, max_points: int, where: str):
        self.ids, self.texts, self.writers, self.offsets = [], [], [], []
        skipped = too_long = 0
        for entry in tqdm(iter_manifest(manifest, fields=INK_FIELDS), desc=f"offsets {where}", unit="ink",
                          disable=None, leave=False):
            try:
                offsets = ink_offsets(check_ink(load_ink(entry), f"{where}: entry {entry.get('id', '?')}"), spacing)
            except InkError as err:
                print(f"error: {err} (entry {entry.get('id', '?')} skipped)", file=sys.stderr)
                skipped += 1
                continue
            if not 2 <= len(offsets) <= max_points or not str(entry["text"]).strip():
                too_long += 1
                continue
            self.ids.append(str(entry["id"]))
            self.texts.append(str(entry["text"]))
            self.writers.append(str(entry.get("writer", "")))
            self.offsets.append(torch.from_numpy(offsets))
        if skipped or too_long:
            print(f"warning: {where}: {skipped} unreadable and {too_long} over data.max_points (or without text) "
                  f"left out", file=sys.stderr)
        self.alphabet = alphabet
        self.frame_lengths = [len(o) for o in self.offsets]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"id": self.ids[index], "text": self.texts[index], "inputs": self.offsets[index],
                "tokens": torch.tensor(self.alphabet.encode(self.texts[index]), dtype=torch.long)}


def summed_loss(model: HandwritingSynthesis, batch: dict, device: torch.device, amp_dtype=None) -> dict:
    """Teacher-forced losses of a collated batch, summed over its predicted points (each ink's points after the
    first): "points" (their count), "offset" and "pen" (nats), "finish" (the end decision's cross-entropy)."""
    offsets, lens = batch["inputs"].to(device), batch["input_lens"].to(device)  # (B, T, 3), (B,)
    text, text_lens = batch["tokens"].to(device), batch["token_lens"].to(device)  # (B, U), (B,)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        params, _ = model(offsets[:, :-1], text, text_lens)  # (B, T - 1, 2 + 6M)
    targets = offsets[:, 1:]  # (B, T - 1, 3)
    offset_nll, pen_nll, finish = point_nll(params.float(), targets)
    valid = length_mask(lens - 1, targets.shape[1]).float()  # (B, T - 1)
    last = nn_one_hot(lens - 2, targets.shape[1])  # (B, T - 1): 1 at each ink's last point
    finish_nll = torch.nn.functional.binary_cross_entropy_with_logits(finish, last, reduction="none")
    return {"points": valid.sum(), "offset": (offset_nll * valid).sum(), "pen": (pen_nll * valid).sum(),
            "finish": (finish_nll * valid).sum()}


def nn_one_hot(index: torch.Tensor, width: int) -> torch.Tensor:
    """(B,) positions -> (B, width) float rows with a 1 at each position."""
    return torch.nn.functional.one_hot(index.clamp(min=0), width).float()
