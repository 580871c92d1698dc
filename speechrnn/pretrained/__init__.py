"""Ready-to-use model bundles shipped inside the package, so a fresh install can be tried without training.

- `an4.pt`: speech, CMU AN4 (census): spelled letters, digits and a few command words ("ENTER", "RUBOUT", "STOP",
  "NO", "YES", ...) said in isolation by US English speakers into a close-talk microphone, 16 kHz.
- `unipen.pt`: online handwriting, UNIPEN isolated English words written on a tablet.

Each is trained by the project's own recipe (the command is in the recipe's RESULTS.md); tests check that the shipped
bundle reproduces its recorded dev numbers.
"""

from pathlib import Path

from ..errors import UserError

FOLDER = Path(__file__).resolve().parent
BUNDLES = {"audio": "an4.pt", "ink": "unipen.pt"}


def default_bundle(modality: str = "audio") -> Path:
    """The shipped bundle for 'audio' (AN4) or 'ink' (UNIPEN)."""
    path = FOLDER / BUNDLES[modality]
    if not path.is_file():
        raise UserError(f"no shipped {modality} model at {path}: this install lacks it; name a bundle instead")
    return path
