"""Ready-to-use model bundles shipped inside the package, by name, so a fresh install can be tried without training.

Each is trained by the project's own recipe (the command is in the recipe's RESULTS.md); tests check that the shipped
bundle reproduces its recorded dev numbers. Nothing here imports torch: `speechrnn models` lists them at once.
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ShippedModel:
    name: str
    file: str
    modality: str  # audio | ink (recognisers) | synthesis (writes ink)
    knows: str  # what it recognises (or writes), in a sentence
    scores: str  # its held-out numbers and where they come from

    @property
    def path(self) -> Path:
        return FOLDER / self.file


MODELS = {model.name: model for model in (
    ShippedModel("an4", "an4.pt", "audio",
                 "US English speech, 16 kHz or telephone-band 8 kHz: spelled letters, digits and 99 census words "
                 "(ENTER, RUBOUT, STOP, YES, NO, ...), said one utterance at a time; no general English",
                 "AN4 test WER 6.86 %, 12.29 % at 8 kHz, 17.34 % in white noise at 20 dB (recipes/an4/RESULTS.md)"),
    ShippedModel("unipen", "unipen.pt", "ink",
                 "English handwriting from a tablet or a screen (pen strokes), a word or a line of words per input, "
                 "read with a lexicon of the 12,938 UNIPEN training words",
                 "UNIPEN test: composed lines WER 19.53 %, CER 5.21 %; isolated words 13.93 % wrong "
                 "(recipes/unipen/RESULTS.md)"),
    ShippedModel("unipen-writer", "unipen-writer.pt", "synthesis",
                 "writes text in the letters A-Z, a-z and the space as pen strokes (`speechrnn write`), learned from "
                 "UNIPEN's writers; an early model: short common words come out readable, most words do not",
                 "1,000 English words outside UNIPEN train, written and read back by the unipen recogniser: CER "
                 "63.5 % (recipes/unipen/RESULTS.md, \"Writing\")"),
)}
DEFAULTS = {"audio": "an4", "ink": "unipen", "synthesis": "unipen-writer"}  # the model used when none is named


def shipped(name: str) -> ShippedModel:
    """The shipped model called `name`, whose file this install must have."""
    model = MODELS[name]
    if not model.path.is_file():
        raise UserError(f"no shipped model {name!r} at {model.path}: this install lacks it; name a bundle file instead")
    return model


def default_bundle(modality: str = "audio") -> Path:
    """The shipped bundle for 'audio' (AN4) or 'ink' (UNIPEN)."""
    return shipped(DEFAULTS[modality]).path


def resolve(model: str | Path) -> Path:
    """A bundle file's path, or a shipped model's name ("an4", "unipen") -> the bundle file (a file of that name
    in the working folder comes first). Anything else is returned as it is, for the loader to refuse."""
    path = Path(model)
    if not path.is_file() and str(model) in MODELS:
        return shipped(str(model)).path
    return path
