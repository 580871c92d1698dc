"""Text for the character LM: reading a text file (one line of text per line) and the dataset and loss that training
and scoring share."""

from pathlib import Path

import torch
from torch import nn

from ...errors import UserError
from ...features import length_mask
from .model import Alphabet, CharLM


def read_lines(path: str | Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file, spaces folded; one line naming the problem when it cannot be used."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: text file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {err.object[err.start]:#04x}); convert it, e.g. "
                        f"iconv -f latin1 -t utf-8") from None
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        raise UserError(f"{path}: no text (every line is empty)")
    return lines


class TextDataset:
    """Lines (cut to max_chars) as (inputs, targets): "\\n" + line -> line + "\\n", ids of `alphabet`; collate pads
    them (inputs as float, turned back into ids by compute_loss)."""

    def __init__(self, lines: list[str], alphabet: Alphabet, max_chars: int):
        self.pieces = [line[i:i + max_chars] for line in lines for i in range(0, len(line), max_chars)]
        self.alphabet = alphabet
        self.frame_lengths = [len(piece) + 1 for piece in self.pieces]
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pieces)

    def __getitem__(self, index: int) -> dict:
        ids = torch.tensor([0] + self.alphabet.encode(self.pieces[index]) + [0], dtype=torch.long)
        return {"id": str(index), "text": self.pieces[index], "inputs": ids[:-1], "tokens": ids[1:]}


def summed_loss(model: CharLM, batch: dict, device: torch.device, amp_dtype=None) -> tuple[torch.Tensor, int]:
    """(summed cross-entropy in nats over the valid targets, their count)."""
    inputs = batch["inputs"].to(device).long()  # (B, T)
    targets, lens = batch["tokens"].to(device), batch["token_lens"].to(device)  # (B, T), (B,)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        logits, _ = model(inputs)  # (B, T, V)
    losses = nn.functional.cross_entropy(logits.float().transpose(1, 2), targets, reduction="none")  # (B, T)
    valid = length_mask(lens, targets.shape[1])
    return (losses * valid).sum(), int(valid.sum())
