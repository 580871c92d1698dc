"""UNIPEN `.dat` files: `.SEGMENT` lines pointing into `.INCLUDE`d pen data, read as Ink.

  - `read_unipen(dat_path, root)`  a `.dat` file and the folder its includes are relative to;
  - `parse_unipen(name, text, load_include)`  the lower level, which data_prep/unipen.py drives from a tar archive.

UNIPEN's y axis points up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .readers import Ink, InkError, text_from_bytes, check_ink

_KEYWORD_RE = re.compile(r"^\.([A-Za-z_][A-Za-z0-9_]*)([^\n]*)", re.M)
_SEGMENT_RE = re.compile(r'^\s*(\S+)\s+([0-9][0-9:,\-\s]*?)\s+(\S+)\s+"((?:[^"\\]|\\.)*)"\s*$')
_ESCAPE_RE = re.compile(r"\\(.)")


@dataclass
class UnipenSegment:
    index: int  # 0-based among the file's .SEGMENT lines
    line: int  # 1-based line number in the data file
    level: str  # WORD, TEXT, CHARACTER, ...
    delineation: str  # e.g. "3-5,7" or "12:40-14"
    quality: str  # ?, OK, GOOD, BAD
    label: str  # escapes removed
    ink: Ink
    writer: str  # .WRITER_ID in effect, "" if none


@dataclass
class _UnipenState:
    coord: list[str] = field(default_factory=lambda: ["X", "Y"])
    points_per_second: float | None = None
    writer: str = ""
    clock: float = 0.0  # seconds, for streams without a T channel
    components: list[tuple[bool, np.ndarray]] = field(default_factory=list)  # (pen down, (N, 2|3) x, y[, t])
    segments: list[tuple[int, int, str]] = field(default_factory=list)  # (index, line, text after .SEGMENT)
    missing: list[str] = field(default_factory=list)  # "name: line N: .INCLUDE path not found"


def _unipen_block(body: str, state: _UnipenState) -> np.ndarray:
    """The point lines after .PEN_DOWN/.PEN_UP -> (N, 2|3) x, y[, t seconds]; ValueError if malformed."""
    first = body.lstrip().split("\n", 1)[0]
    ncols = len(first.split())
    values = body.split()
    try:
        flat = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_number(v))
        raise ValueError(f"{bad!r} in pen data is not a number") from None
    if ncols == 0 or len(flat) % ncols:
        raise ValueError(f"pen data lines have different numbers of values (the first has {ncols})")
    raw = flat.reshape(-1, ncols)
    names = state.coord[:ncols] + [""] * max(0, ncols - len(state.coord))
    try:
        xy = raw[:, [names.index("X"), names.index("Y")]]
    except ValueError:
        xy = raw[:, :2]
    n = len(raw)
    if "T" in names:
        t = raw[:, names.index("T")] / 1000.0  # UNIPEN time stamps are milliseconds
    elif state.points_per_second:
        t = state.clock + np.arange(n) / state.points_per_second
    else:
        t = None
    if state.points_per_second:
        state.clock += n / state.points_per_second
    return xy if t is None else np.column_stack([xy, t])


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _parse_unipen_text(text: str, name: str, state: _UnipenState, load_include: Callable[[str], str],
                       depth: int, record_segments: bool) -> None:
    matches = list(_KEYWORD_RE.finditer(text))
    line, counted = 1, 0
    for n, match in enumerate(matches):
        keyword, rest = match.group(1).upper(), match.group(2).strip()
        body_end = matches[n + 1].start() if n + 1 < len(matches) else len(text)
        if keyword in ("INCLUDE", "SEGMENT"):
            line += text.count("\n", counted, match.start())
            counted = match.start()
        if keyword in ("PEN_DOWN", "PEN_UP"):
            body = text[match.end():body_end]
            if body.strip():
                try:
                    points = _unipen_block(body, state)
                except ValueError as err:
                    at = text.count("\n", 0, match.start()) + 1
                    raise InkError(f"{name}: line {at}: .{keyword} block: {err}") from None
            else:
                points = np.zeros((0, 2))
            # A component is every .PEN_DOWN or .PEN_UP block that carries points. (An empty .PEN_DOWN does not
            # count: counting it misplaces 492 of the 75,098 words of UNIPEN train_r01_v07 category 6, in the
            # abm and lex data, whose words then come out as a stray point; not counting it places all.)
            if len(points):
                state.components.append((keyword == "PEN_DOWN", points))
        elif keyword == "COORD":
            state.coord = [c.upper() for c in rest.split()] or ["X", "Y"]
        elif keyword == "POINTS_PER_SECOND":
            try:  # a rate outside 20-1000 is a header error (kai says 9600, art 10): then no time at all
                rate = float(rest.split()[0])
                state.points_per_second = rate if 20 <= rate <= 1000 else None
            except (ValueError, IndexError):
                pass
        elif keyword == "DT":
            try:
                state.clock += float(rest.split()[0]) / 1000.0
            except (ValueError, IndexError):
                pass
        elif keyword == "WRITER_ID":
            state.writer = rest
        elif keyword == "INCLUDE":
            rel = rest.split()[0] if rest else ""
            if depth >= 8:
                raise InkError(f"{name}: line {line}: .INCLUDE nested more than 8 deep (a cycle?)")
            try:
                included = load_include(rel)
            except (OSError, KeyError):
                state.missing.append(f"{name}: line {line}: .INCLUDE {rel} not found")
                continue
            _parse_unipen_text(included, f"{name} > {rel}", state, load_include, depth + 1, False)
        elif keyword == "SEGMENT" and record_segments:
            state.segments.append((len(state.segments), line, rest))


def parse_delineation(text: str) -> list[tuple[int, int | None, int, int | None]]:
    """UNIPEN delineation -> [(first component, first point or None, last component, last point or None)].

    `3-5,7` is components 3 to 5 and 7; `12:40-14:9` runs from point 40 of component 12 to point 9 of component
    14 (both inclusive, points counted from 0 within their component)."""
    pieces = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        ends = part.split("-")
        if len(ends) > 2:
            raise ValueError(f"bad range {part!r}")
        parsed = []
        for end in ends:
            comp, _, point = end.partition(":")
            parsed.append((int(comp), int(point) if point else None))
        (c1, p1), (c2, p2) = parsed[0], parsed[-1]
        if c2 < c1 or (c1 == c2 and p1 is not None and p2 is not None and p2 < p1):
            raise ValueError(f"range {part!r} runs backwards")
        pieces.append((c1, p1, c2, p2))
    if not pieces:
        raise ValueError("empty delineation")
    return pieces


def parse_unipen(name: str, text: str, load_include: Callable[[str], str], levels=("WORD",),
                 on_error: Callable[[InkError], None] | None = None,
                 on_warning: Callable[[str], None] | None = None) -> Iterator[UnipenSegment]:
    """Segments of one UNIPEN data file whose level is in `levels` (None: all), with pen-down ink only.

    `load_include(path)` returns the text of an `.INCLUDE`d file (path relative to `include/`) or raises
    FileNotFoundError. When includes are missing and no pen data was found, InkError is raised for the whole
    file (before any segment is yielded); when pen data was found (only a description file is missing, as for
    some contributors), each missing include is passed to `on_warning`. A bad segment (delineation past the pen
    data, degenerate ink, ...) raises InkError naming file and segment, or with `on_error` is passed to it and
    skipped.

    Components, which delineations count from 0, are the `.PEN_DOWN` and `.PEN_UP` blocks that carry points, in
    stream order across includes; only pen-down points are kept. Time: a T channel (milliseconds) becomes
    seconds; without one, times are made from `.POINTS_PER_SECOND` (and `.DT` gaps) when given; each ink's
    time starts at 0."""
    levels = None if levels is None else {level.upper() for level in levels}
    state = _UnipenState()
    _parse_unipen_text(text, name, state, load_include, 0, True)
    components = state.components
    if state.missing and not components:
        count = len(state.segments)
        raise InkError(f"{state.missing[0]}; the file has no pen data, so its {count} segments are skipped")
    for message in state.missing:
        if on_warning is not None:
            on_warning(f"{message} (pen data found elsewhere; reading on)")
    for index, line, rest in state.segments:
        match = _SEGMENT_RE.match(rest)
        where = f"{name} segment {index} (line {line})"
        try:
            if not match:
                raise InkError(f"{where}: cannot parse .SEGMENT {rest!r}; expected LEVEL a-b QUALITY \"label\"")
            level, delineation, quality, label = match.groups()
            label = _ESCAPE_RE.sub(r"\1", label)
            where = f"{name} segment {index} (line {line}, {label!r})"
            if levels is not None and level.upper() not in levels:
                continue
            try:
                pieces = parse_delineation(delineation)
            except ValueError as err:
                raise InkError(f"{where}: delineation {delineation!r}: {err}") from None
            strokes = []
            for c1, p1, c2, p2 in pieces:
                if c2 >= len(components):
                    raise InkError(f"{where}: delineation {delineation} points past the end of the pen data "
                                   f"({len(components)} components)")
                for c in range(c1, c2 + 1):
                    down, points = components[c]
                    if not down:
                        continue
                    start = p1 if (c == c1 and p1 is not None) else 0
                    stop = p2 + 1 if (c == c2 and p2 is not None) else len(points)
                    if start >= len(points) and len(points):
                        raise InkError(f"{where}: delineation {delineation} starts at point {start} of component "
                                       f"{c}, which has {len(points)}")
                    if len(points[start:stop]):
                        strokes.append(points[start:stop].copy())
            if strokes and strokes[0].shape[1] == 3:
                t0 = strokes[0][0, 2]
                for stroke in strokes:
                    stroke[:, 2] -= t0
            ink = check_ink(Ink(strokes, label, y_down=False), where)  # UNIPEN tablets: y up
        except InkError as err:
            if on_error is None:
                raise
            on_error(err)
            continue
        yield UnipenSegment(index, line, level.upper(), delineation, quality, label, ink, state.writer)


def read_unipen(dat_path: str | Path, root: str | Path, on_error: Callable[[InkError], None] | None = None,
                levels=("WORD",), on_warning: Callable[[str], None] | None = None) -> Iterator[tuple[str, Ink, str]]:
    """(label, Ink, writer id) for each `.SEGMENT` of a UNIPEN data file; `root` is the corpus folder holding
    `include/` (or the include folder itself). Errors as in `parse_unipen`."""
    dat_path, root = Path(dat_path), Path(root)
    include = root / "include" if (root / "include").is_dir() else root
    try:
        text = text_from_bytes(dat_path.read_bytes())
    except OSError as err:
        raise InkError(f"{dat_path}: cannot read ({err.strerror or err})") from None

    def load(rel: str) -> str:
        return text_from_bytes((include / rel).read_bytes())

    for segment in parse_unipen(str(dat_path), text, load, levels=levels, on_error=on_error, on_warning=on_warning):
        yield segment.label, segment.ink, segment.writer
