"""What every data_prep script shares: finding the speechrnn package (installed, or else this checkout's), the error
a script raises for a source it cannot use, and the main() wrapper that prints a user's error as one line.

The scripts run as `python data_prep/NAME.py`, which puts this folder on sys.path, so `from common import ...` finds
this file (pyproject's pytest pythonpath lists data_prep/ too, so tests `import an4` the same way). Import it before
anything from speechrnn.
"""

import sys
from pathlib import Path
from typing import Callable

try:
    import speechrnn  # noqa: F401  (installed with `pip install -e .`)
except ImportError:  # running from a checkout without installing: use the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechrnn.errors import UserError  # noqa: E402


class PrepError(UserError):
    """The source is not usable: missing or malformed files, an unsafe archive, a failed download, nothing found."""


def run(prepare: Callable, *args, **kwargs) -> int:
    """prepare(*args, **kwargs) as a script's exit status: 0, or 1 after printing a UserError (PrepError, AudioError,
    InkError, ...) as one `error: ...` line."""
    try:
        prepare(*args, **kwargs)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
