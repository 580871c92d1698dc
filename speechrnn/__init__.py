"""speechrnn: speech and online-handwriting recognition with recurrent networks and CTC.

    from speechrnn import Recognizer          # imports torch on first use, not with `import speechrnn`
"""

import importlib

__version__ = "0.1.0"

LAZY = {"Recognizer": "speechrnn.recognizer", "Transcript": "speechrnn.output"}  # name -> module that defines it


def __getattr__(name: str):
    """`speechrnn.Recognizer` and `speechrnn.Transcript`, imported when first asked for (PEP 562)."""
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'speechrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
