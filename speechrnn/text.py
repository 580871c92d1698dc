"""Character tokenizer with CTC blank = 0, and the text normalisation that goes with it."""

import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

BLANK = "<blank>"


@dataclass
class TextConfig:
    case: str = field(default="upper", metadata={"choices": ("upper", "lower", "keep")})
    strip_punctuation: bool = True  # drop punctuation except the characters in keep_punctuation
    keep_punctuation: str = "'"


class Tokenizer:
    """Maps normalised text to character ids. Id 0 is the CTC blank; space is a token like any other."""

    def __init__(self, chars: list[str], config: TextConfig):
        self.config = config
        self.symbols = [BLANK] + list(chars)
        self.index = {c: i for i, c in enumerate(self.symbols)}
        self.unknown = Counter()  # characters met by encode() that the vocabulary lacks

    @classmethod
    def build(cls, texts: Iterable[str], config: TextConfig) -> "Tokenizer":
        chars = set()
        for text in texts:
            chars.update(normalize(text, config))
        return cls(sorted(chars), config)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        """Normalised text -> ids. Characters outside the vocabulary are counted in `self.unknown` and left out."""
        ids = []
        for char in normalize(text, self.config):
            if char in self.index:
                ids.append(self.index[char])
            else:
                self.unknown[char] += 1
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text with blanks dropped and spaces normalised (no leading, trailing or doubled spaces)."""
        return " ".join("".join(self.symbols[i] for i in ids if i != 0).split())

    def report_unknown(self, where: str) -> None:
        if self.unknown:
            listed = ", ".join(f"{c!r} x{n}" for c, n in self.unknown.most_common())
            print(f"warning: {where}: characters never seen in training were left out: {listed}", file=sys.stderr)
        self.unknown.clear()

    def to_dict(self) -> dict:
        return {"symbols": self.symbols, "config": vars(self.config)}

    @classmethod
    def from_dict(cls, state: dict) -> "Tokenizer":
        return cls(state["symbols"][1:], TextConfig(**state["config"]))


def normalize(text: str, config: TextConfig) -> str:
    text = unicodedata.normalize("NFKC", text)
    if config.case == "upper":
        text = text.upper()
    elif config.case == "lower":
        text = text.lower()
    if config.strip_punctuation:
        text = "".join(
            c if (c in config.keep_punctuation or not unicodedata.category(c).startswith(("P", "S"))) else " "
            for c in text
        )
    return re.sub(r"\s+", " ", text).strip()
