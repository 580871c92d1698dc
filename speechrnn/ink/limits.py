"""Limits on ink from hostile or careless sources: at most `max_ink_points()` points per ink (DEFAULT_MAX_POINTS,
or the SPEECHRNN_MAX_INK_POINTS environment variable, or `set_max_ink_points`, which `speechrnn serve
--max-ink-points` calls), enforced by every reader (speechrnn/ink/readers.py, unipen.py) and, on the resampled
pen path, by the features (features.py); JSON nested deeper than MAX_JSON_DEPTH refused before it is parsed.
Each refusal is one InkError line."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ..errors import UserError


class InkError(UserError):
    """Ink that cannot be read or used (malformed file, empty or degenerate trace, over a limit)."""


# The longest real inputs: of the 75,097 words of UNIPEN train_r01_v07 category 6 the longest has 5,405 points
# (median 181, 99.9 % under 1,520); an IAM-OnDB text line is a few words of such ink. 100,000 points is well over
# that, and bounds the time and memory one ink may take (a 1M-point ink took 57 s and 1.8 GB in `serve`).
DEFAULT_MAX_POINTS = 100_000
MAX_POINTS_ENV = "SPEECHRNN_MAX_INK_POINTS"
MAX_JSON_DEPTH = 32  # ink JSON needs 4 levels ({"strokes": [[[x, y, t]]]}); deeper is refused before parsing
_max_points: int | None = None  # set_max_ink_points(); None: the environment variable, else the default


def set_max_ink_points(limit: int | None) -> None:
    """The process-wide points limit (None: back to SPEECHRNN_MAX_INK_POINTS, else DEFAULT_MAX_POINTS)."""
    global _max_points
    if limit is not None and (not isinstance(limit, int) or limit < 2):
        raise UserError(f"the ink points limit must be a whole number >= 2, got {limit!r}")
    _max_points = limit


def max_ink_points() -> int:
    """The largest ink, in points, that readers and features accept."""
    if _max_points is not None:
        return _max_points
    value = os.environ.get(MAX_POINTS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_POINTS
    try:
        limit = int(value.replace("_", "").replace(",", ""))
    except ValueError:
        limit = 0
    if limit < 2:
        raise InkError(f"{MAX_POINTS_ENV}={value!r} is not a number of points >= 2; fix it, or unset it for the "
                       f"default of {DEFAULT_MAX_POINTS:,}")
    return limit


class InkTooLarge(InkError):
    """Ink over the points limit (serve answers it with HTTP 413)."""


def too_many_points(where: str, count: int, limit: int, what: str = "points") -> InkError:
    return InkTooLarge(f"{where}: {count:,} {what}, over the limit of {limit:,} ink points; split it into lines or "
                    f"words, or raise the limit ({MAX_POINTS_ENV}=N, or `speechrnn serve --max-ink-points N`)")


class PointCounter:
    """Counts points as a reader collects them, and stops it (InkError) as soon as they pass the limit."""

    def __init__(self, where: str):
        self.where, self.limit, self.count = where, max_ink_points(), 0

    def add(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise too_many_points(self.where, self.count, self.limit, "points or more")


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def check_json_depth(data: bytes, where: str, limit: int = MAX_JSON_DEPTH) -> None:
    """InkError when the JSON text nests arrays/objects more than `limit` deep; checked on the brackets outside
    strings (linear time, small memory), so that json.loads never recurses into a hostile structure."""
    brackets = _JSON_STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if brackets.count(b"[") + brackets.count(b"{") <= limit:
        return
    depth = 0
    for start in range(0, len(brackets), 1 << 20):
        chunk = np.frombuffer(brackets[start: start + (1 << 20)], dtype=np.uint8)
        steps = np.where((chunk == ord("[")) | (chunk == ord("{")), 1, -1).astype(np.int32)
        levels = depth + np.cumsum(steps)
        if levels.max() > limit:
            raise InkError(f"{where}: JSON nested more than {limit} deep; ink JSON is "
                           '{"strokes": [[[x, y, t], ...], ...]} (4 levels)')
        depth = int(levels[-1])


def parse_json(data: bytes, where: str):
    """JSON bytes -> the parsed value; InkError (one line) when they are not UTF-8 JSON or nest too deep."""
    check_json_depth(data, where)
    try:
        return json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InkError(f"{where}: not JSON ({err})") from None
    except RecursionError:  # not reached after check_json_depth; kept as a guard
        raise InkError(f"{where}: JSON nested too deep") from None
