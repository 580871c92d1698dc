"""speechrnn: speech and online-handwriting recognition with recurrent networks and CTC.

    import speechrnn
    recognizer = speechrnn.load("an4")        # a shipped model by name (`speechrnn models`), or a bundle's path
    print(recognizer.transcribe("x.wav").text)

    from speechrnn import Recognizer          # imports torch on first use, not with `import speechrnn`
"""

import importlib

__version__ = "0.1.0"

LAZY = {"Recognizer": "speechrnn.recognizer", "Transcript": "speechrnn.output"}  # name -> module that defines it


def load(model: str = "an4", device: str = "cpu", **options):
    """A Recognizer for a shipped model's name ("an4", "unipen") or a bundle file; `options` go to
    Recognizer.load (decoding="greedy", vad=..., ...)."""
    from .pretrained import resolve
    from .recognizer import Recognizer

    return Recognizer.load(resolve(model), device=device, **options)


def __getattr__(name: str):
    """`speechrnn.Recognizer` and `speechrnn.Transcript`, imported when first asked for (PEP 562)."""
    if name in LAZY:
        return getattr(importlib.import_module(LAZY[name]), name)
    raise AttributeError(f"module 'speechrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *LAZY])
