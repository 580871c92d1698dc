"""Online handwriting ("ink"): the Ink type, validation, readers, normalisation, features and augmentation.

An `Ink` is a list of strokes (pen-down traces), each an (N, 2) or (N, 3) float array of x, y[, t] with t in
seconds. Readers:
  - `read_unipen(dat_path, root)`  UNIPEN `.dat` files with `.SEGMENT` lines pointing into `.INCLUDE`d pen data
    (lower level: `parse_unipen(name, text, load_include)`, which data_prep/unipen.py drives from a tar archive);
  - `read_inkml(path)`             W3C InkML `<trace>` elements, optional `<annotation type="truth">`;
  - `read_iam_ondb(strokes_xml)`   IAM-OnDB lineStrokes XML; `read_iam_ascii(path)` its transcription (`CSR:` block);
  - `read_json(path)` / `write_json(ink, path)`  `{"strokes": [[[x, y, t], ...], ...], "text": ...}`;
  - `InkStore(path)` / `write_ink_store(path, inks)`  many inks in one `.npz` (what data_prep/unipen.py writes;
    manifest lines name it in `ink_filepath` and the item in `ink_index`); `load_ink(entry)` reads either form.

Coordinate conventions: UNIPEN's y axis points up, screen formats (IAM-OnDB, most InkML) point down. The
features use y up: pass `flip_y=True` for y-down sources.

Features (`ink_features`, float32 (T, F)), one row per point after normalising and resampling, in this order:
  0 dx, 1 dy   offset from the previous point (0 at the first), in units of the writing's height; the offset
               into a stroke's first point is the pen-up jump from the previous stroke
  2 pen_up     1 at the last point of each stroke, else 0
  3 cos, 4 sin writing direction (of the chord from the previous to the next point in the stroke); 0, 0 for a
               stroke of one point
  5 cos, 6 sin turning angle at the point (curvature); 1, 0 at stroke ends
  7 y          height above the writing's vertical centre (median), in heights (tells ascenders from descenders)
  8 dt         (use_time only) log(1 + dt / 10 ms), dt the time since the previous point, pen-up gaps included
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import UserError

FEATURE_NAMES = ("dx", "dy", "pen_up", "dir_cos", "dir_sin", "curv_cos", "curv_sin", "y")
TIME_FEATURE = "dt"
DEFAULT_SPACING = 0.15  # resampling step in normalised heights (see writing_box): ~23 points per letter on UNIPEN


class InkError(UserError):
    """Ink that cannot be read or used (malformed file, empty or degenerate trace)."""


@dataclass
class Ink:
    """Strokes (pen-down traces), each an (N, 2) or (N, 3) float array of x, y[, t seconds]; optional transcript."""

    strokes: list[np.ndarray]
    text: str | None = None

    @property
    def num_points(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    @property
    def has_time(self) -> bool:
        shapes = [np.shape(s) for s in self.strokes if len(s)]
        return bool(shapes) and all(len(shape) == 2 and shape[1] >= 3 for shape in shapes)


def num_ink_features(use_time: bool = False) -> int:
    return len(FEATURE_NAMES) + (1 if use_time else 0)


def check_ink(ink: Ink, where: str) -> Ink:
    """Raise InkError (one line, starting with `where`) unless `ink` has at least two finite points in strokes of
    shape (N, 2) or (N, 3), all with the same channels, and time never goes backwards within a stroke."""
    if not isinstance(ink.strokes, (list, tuple)):
        raise InkError(f"{where}: strokes must be a list of (N, 2) or (N, 3) arrays, not {type(ink.strokes).__name__}")
    widths = set()
    total = 0
    for k, stroke in enumerate(ink.strokes):
        shape = np.shape(stroke)
        if len(shape) == 1 and shape[0] == 0:  # an empty stroke ([]) is harmless: features skip it
            continue
        if len(shape) != 2 or shape[1] not in (2, 3):
            raise InkError(f"{where}: stroke {k} has shape {shape}, expected (N, 2) or (N, 3) points of x, y[, t]")
        if shape[0] == 0:
            continue
        widths.add(shape[1])
        total += shape[0]
    if total == 0:
        raise InkError(f"{where}: no points (empty ink); drop it or fix the source")
    if total == 1:
        raise InkError(f"{where}: a single point, too little ink to recognise; drop it or fix the source")
    if len(widths) > 1:
        raise InkError(f"{where}: strokes mix (N, 2) and (N, 3) points; give all strokes a time channel or none")
    for k, stroke in enumerate(ink.strokes):
        stroke = np.asarray(stroke, dtype=np.float64)
        if stroke.size == 0:
            continue
        if not np.isfinite(stroke).all():
            row = int(np.nonzero(~np.isfinite(stroke).all(axis=1))[0][0])
            raise InkError(f"{where}: stroke {k} point {row} is not finite ({stroke[row].tolist()}); fix the source")
        if stroke.shape[1] == 3 and len(stroke) > 1:
            back = np.nonzero(np.diff(stroke[:, 2]) < 0)[0]
            if len(back):
                i = int(back[0])
                raise InkError(f"{where}: stroke {k}: time goes backwards at point {i + 1} "
                               f"({stroke[i + 1, 2]:g} s after {stroke[i, 2]:g} s)")
    return ink


def _as_strokes(strokes) -> list[np.ndarray]:
    out = []
    for stroke in strokes:
        arr = np.asarray(stroke, dtype=np.float64)
        if arr.size == 0:
            continue
        out.append(arr)
    return out


# ---------------------------------------------------------------------------------------------------- UNIPEN

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


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


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
            ink = check_ink(Ink(strokes, label), where)
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
        text = _decode(dat_path.read_bytes())
    except OSError as err:
        raise InkError(f"{dat_path}: cannot read ({err.strerror or err})") from None

    def load(rel: str) -> str:
        return _decode((include / rel).read_bytes())

    for segment in parse_unipen(str(dat_path), text, load, levels=levels, on_error=on_error, on_warning=on_warning):
        yield segment.label, segment.ink, segment.writer


# ---------------------------------------------------------------------------------------------------- XML formats

def _local(tag) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _parse_xml(path: Path, what: str) -> ET.Element:
    try:
        return ET.parse(path).getroot()
    except ET.ParseError as err:
        raise InkError(f"{path}: not {what} (XML error: {err})") from None
    except OSError as err:
        raise InkError(f"{path}: cannot read ({err.strerror or err})") from None


def read_inkml(path: str | Path) -> Ink:
    """W3C InkML: every `<trace>` (inside trace groups too) in document order; channels from the first
    `<traceFormat>` (default X Y; a T channel becomes the time column, relative to the first point); text from
    the top-level `<annotation type="truth">`, else None."""
    path = Path(path)
    root = _parse_xml(path, "InkML")
    if _local(root.tag) != "ink":
        raise InkError(f"{path}: not InkML (root element <{_local(root.tag)}>, expected <ink>)")
    channels = []
    for element in root.iter():
        if _local(element.tag) == "traceFormat":
            channels = [(c.get("name") or "").upper() for c in element.iter() if _local(c.tag) == "channel"]
            break
    channels = channels or ["X", "Y"]
    if "X" not in channels or "Y" not in channels:
        raise InkError(f"{path}: traceFormat has no X and Y channels ({' '.join(channels)})")
    ix, iy = channels.index("X"), channels.index("Y")
    it = channels.index("T") if "T" in channels else None
    strokes = []
    for k, trace in enumerate(e for e in root.iter() if _local(e.tag) == "trace"):
        rows = []
        for point in (trace.text or "").split(","):
            values = point.split()
            if not values:
                continue
            try:
                numbers = [float(v) for v in values]
            except ValueError:
                raise InkError(f"{path}: trace {k}: point {point.strip()!r} is not plain numbers "
                               f"(difference-encoded traces are not supported)") from None
            if len(numbers) <= max(ix, iy, it if it is not None else 0):
                raise InkError(f"{path}: trace {k}: point {point.strip()!r} has fewer values than the "
                               f"{len(channels)} channels {' '.join(channels)}")
            rows.append([numbers[ix], numbers[iy]] + ([numbers[it]] if it is not None else []))
        if rows:
            strokes.append(np.array(rows, dtype=np.float64))
    if it is not None and strokes:
        t0 = strokes[0][0, 2]
        for stroke in strokes:
            stroke[:, 2] -= t0
    text = None
    for child in root:
        if _local(child.tag) == "annotation" and child.get("type") == "truth":
            text = (child.text or "").strip()
            break
    return check_ink(Ink(strokes, text), str(path))


def read_iam_ondb(strokes_xml: str | Path) -> Ink:
    """IAM-OnDB lineStrokes XML (`<StrokeSet><Stroke><Point x= y= time=/>`): screen coordinates (y down), time in
    seconds relative to the first point; text None (see `read_iam_ascii`)."""
    path = Path(strokes_xml)
    root = _parse_xml(path, "IAM-OnDB strokes XML")
    strokes = []
    sets = [e for e in root.iter() if _local(e.tag) == "StrokeSet"]
    if not sets:
        raise InkError(f"{path}: no <StrokeSet> element; not an IAM-OnDB lineStrokes file")
    has_time = None
    for k, stroke in enumerate(e for s in sets for e in s if _local(e.tag) == "Stroke"):
        rows = []
        for point in stroke:
            if _local(point.tag) != "Point":
                continue
            try:
                row = [float(point.get("x")), float(point.get("y"))]
                if point.get("time") is not None:
                    row.append(float(point.get("time")))
            except (TypeError, ValueError):
                raise InkError(f"{path}: stroke {k}: <Point> needs numeric x and y, got {point.attrib}") from None
            if has_time is None:
                has_time = len(row) == 3
            rows.append(row[:3] if has_time else row[:2])
        if rows:
            if has_time and any(len(r) < 3 for r in rows):
                raise InkError(f"{path}: stroke {k}: some <Point>s lack a time attribute")
            strokes.append(np.array(rows, dtype=np.float64))
    if has_time and strokes:
        t0 = strokes[0][0, 2]
        for stroke in strokes:
            stroke[:, 2] -= t0
    return check_ink(Ink(strokes), str(path))


def read_iam_ascii(path: str | Path) -> list[str]:
    """The text lines of the `CSR:` block of an IAM-OnDB ascii transcription file."""
    path = Path(path)
    try:
        lines = _decode(path.read_bytes()).splitlines()
    except OSError as err:
        raise InkError(f"{path}: cannot read ({err.strerror or err})") from None
    for n, line in enumerate(lines):
        if line.strip() == "CSR:":
            out = []
            for text in lines[n + 1:]:
                text = text.strip()
                if not text:
                    if out:
                        break
                    continue
                out.append(text)
            return out
    raise InkError(f"{path}: no 'CSR:' block; not an IAM-OnDB ascii transcription")


# ---------------------------------------------------------------------------------------------------- JSON / npz

def read_json(path: str | Path) -> Ink:
    """`{"strokes": [[[x, y(, t)], ...], ...], "text": optional}`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InkError(f"{path}: cannot read ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InkError(f"{path}: not JSON ({err})") from None
    return ink_from_dict(data, str(path))


INK_READERS = {".json": read_json, ".inkml": read_inkml, ".xml": read_iam_ondb}


def read_ink(path: str | Path) -> Ink:
    """One ink file, read by its extension: .json (this toolkit's form), .inkml (W3C), .xml (IAM-OnDB lineStrokes)."""
    reader = INK_READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise InkError(f"{path}: unknown ink file type; expected one of {', '.join(INK_READERS)}")
    if not Path(path).is_file():
        raise InkError(f"{path}: file not found")
    return reader(path)


def ink_from_dict(data, where: str) -> Ink:
    if not isinstance(data, dict) or not isinstance(data.get("strokes"), list):
        raise InkError(f"{where}: expected an object with a \"strokes\" list")
    strokes = []
    for k, stroke in enumerate(data["strokes"]):
        try:
            arr = np.array(stroke, dtype=np.float64)
        except (ValueError, TypeError):
            raise InkError(f"{where}: stroke {k} is not a list of [x, y] or [x, y, t] numbers") from None
        if arr.size == 0:
            continue
        strokes.append(arr)
    text = data.get("text")
    if text is not None and not isinstance(text, str):
        raise InkError(f"{where}: \"text\" must be a string")
    return check_ink(Ink(strokes, text), where)


def ink_to_dict(ink: Ink, decimals: int | None = None) -> dict:
    strokes = [np.asarray(s, dtype=np.float64) for s in ink.strokes]
    if decimals is not None:
        strokes = [np.round(s, decimals) for s in strokes]
    out = {"strokes": [s.tolist() for s in strokes]}
    if ink.text is not None:
        out["text"] = ink.text
    return out


def write_json(ink: Ink, path: str | Path, decimals: int | None = None) -> None:
    """Write `ink` as JSON; `decimals` rounds coordinates (and times) to save space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ink_to_dict(ink, decimals), ensure_ascii=False), encoding="utf-8")


def write_ink_store(path: str | Path, inks: list[Ink], ids: list[str] | None = None) -> None:
    """Many inks in one compressed `.npz`: `points` float32 (P, 3) x, y, t (t NaN for inks without time),
    `stroke_starts` (S + 1) offsets into points, `ink_starts` (N + 1) offsets into strokes, `has_time` (N),
    and `ids` (N) when given. float32 holds tablet integer coordinates exactly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    total = sum(len(s) for ink in inks for s in ink.strokes)
    points = np.full((total, 3), np.nan, dtype=np.float32)
    stroke_starts, ink_starts, has_time = [0], [0], []
    at = 0
    for ink in inks:
        cols = 3 if ink.has_time else 2
        has_time.append(cols == 3)
        for stroke in ink.strokes:
            if len(stroke) == 0:
                continue
            points[at: at + len(stroke), :cols] = np.asarray(stroke)[:, :cols]
            at += len(stroke)
            stroke_starts.append(at)
        ink_starts.append(len(stroke_starts) - 1)
    arrays = dict(points=points, stroke_starts=np.array(stroke_starts, dtype=np.int64),
                  ink_starts=np.array(ink_starts, dtype=np.int64), has_time=np.array(has_time, dtype=bool))
    if ids is not None:
        arrays["ids"] = np.array(ids, dtype=str)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)


class InkStore:
    """Random access to the inks of a `write_ink_store` file (loaded into memory once)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as data:
                self.points = data["points"]
                self.stroke_starts = data["stroke_starts"]
                self.ink_starts = data["ink_starts"]
                self.has_time = data["has_time"]
                self.ids = data["ids"] if "ids" in data.files else None
        except (OSError, ValueError, KeyError) as err:
            raise InkError(f"{self.path}: not an ink store written by write_ink_store ({err})") from None

    def __len__(self) -> int:
        return len(self.ink_starts) - 1

    def __getitem__(self, index: int) -> Ink:
        if not 0 <= index < len(self):
            raise InkError(f"{self.path}: ink index {index} out of range (the store holds {len(self)})")
        cols = 3 if self.has_time[index] else 2
        s0, s1 = self.ink_starts[index], self.ink_starts[index + 1]
        starts = self.stroke_starts[s0: s1 + 1]
        return Ink([self.points[a:b, :cols].astype(np.float64) for a, b in zip(starts[:-1], starts[1:])])


_STORES: dict[str, InkStore] = {}


def load_ink(entry: dict) -> Ink:
    """The ink of a manifest line: inline `"ink": {"strokes": ...}`, `ink_filepath` + `ink_index` into an
    InkStore (cached per file), or `ink_filepath` to a .json/.inkml file. `text` comes from the entry."""
    where = f"manifest entry {entry.get('id', '?')}"
    if "ink" in entry:
        ink = ink_from_dict(entry["ink"], where)
    elif "ink_filepath" in entry:
        path = str(entry["ink_filepath"])
        if "ink_index" in entry:
            if path not in _STORES:
                _STORES[path] = InkStore(path)
            ink = _STORES[path][int(entry["ink_index"])]
        elif path.endswith(".inkml"):
            ink = read_inkml(path)
        else:
            ink = read_json(path)
    else:
        raise InkError(f"{where}: has neither \"ink\" nor \"ink_filepath\"")
    if "text" in entry:
        ink.text = entry["text"]
    return ink


# ---------------------------------------------------------------------------------------------------- features

def _stroke_list(ink: Ink) -> list[np.ndarray]:
    return [np.asarray(s, dtype=np.float64) for s in ink.strokes if len(s)]


def _resample_stroke(stroke: np.ndarray, spacing: float) -> np.ndarray:
    if len(stroke) < 2:
        return stroke.copy()
    steps = np.hypot(*np.diff(stroke[:, :2], axis=0).T)
    keep = np.concatenate([[True], steps > 0])  # drop repeated points so arc length strictly increases
    stroke, steps = stroke[keep], steps[steps > 0]
    if len(stroke) < 2:
        return stroke[:1].copy()
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    n = max(int(math.ceil(arc[-1] / spacing - 1e-9)), 1)
    at = np.linspace(0.0, arc[-1], n + 1)
    return np.column_stack([np.interp(at, arc, stroke[:, c]) for c in range(stroke.shape[1])])


def resample(ink: Ink, spacing: float) -> Ink:
    """Each stroke resampled at equal arc length (step <= `spacing`, as close as divides the stroke evenly; end
    points kept; time interpolated too). A stroke without extent becomes one point."""
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0, got {spacing}")
    return Ink([_resample_stroke(s, spacing) for s in _stroke_list(ink)], ink.text)


def writing_box(ink: Ink) -> tuple[float, float, float]:
    """(x origin, y centre, height) of the writing, robust to outliers and to the sampling rate: percentiles of
    points spaced evenly along the pen path. The height is twice the interquartile y range, about the height of
    the lower-case letters (of the estimates tried on UNIPEN it varies least between one writer's words, so
    words with and without ascenders come out the same size); it is at least 1/20 of the 10-90 % x extent
    (so a dash gets a size), and 1 when the ink has no extent at all. The y centre is the median."""
    strokes = [s[:, :2] for s in _stroke_list(ink)]
    length = sum(float(np.hypot(*np.diff(s, axis=0).T).sum()) for s in strokes if len(s) > 1)
    if length > 0:
        pts = np.concatenate([_resample_stroke(s, length / 400) for s in strokes])
    else:
        pts = np.concatenate(strokes)
    (x10, x90), (y25, y50, y75) = np.percentile(pts[:, 0], [10, 90]), np.percentile(pts[:, 1], [25, 50, 75])
    height = max(2.0 * (y75 - y25), 0.05 * (x90 - x10))
    if not height > 0:
        extent = float(np.ptp(pts, axis=0).max())
        height = extent if extent > 0 else 1.0
    return float(pts[:, 0].min()), float(y50), float(height)


def normalize(ink: Ink, flip_y: bool = False) -> Ink:
    """Translate (x from 0, y centred on the writing's median) and scale by the writing's robust height (see
    `writing_box`), so that size and position do not matter; `flip_y` first turns y-down (screen) coordinates
    into y-up. Time is kept as is."""
    strokes = _stroke_list(ink)
    if flip_y:
        strokes = [s * np.array([1.0, -1.0] + [1.0] * (s.shape[1] - 2)) for s in strokes]
    x0, yc, height = writing_box(Ink(strokes))
    out = []
    for s in strokes:
        s = s.copy()
        s[:, 0] = (s[:, 0] - x0) / height
        s[:, 1] = (s[:, 1] - yc) / height
        out.append(s)
    return Ink(out, ink.text)


def ink_features(ink: Ink, spacing: float = DEFAULT_SPACING, use_time: bool = False,
                 flip_y: bool = False) -> np.ndarray:
    """Normalise, resample every `spacing` heights, and compute the per-point features listed in the module
    docstring: float32 (T, 8), or (T, 9) with `use_time` (which needs inks with a time channel)."""
    if use_time and not ink.has_time:
        raise InkError("ink has no time channel, so use_time cannot be used; set use_time false for this data")
    strokes = resample(normalize(ink, flip_y), spacing).strokes
    if not strokes:
        raise InkError("ink has no points")
    pts = np.concatenate([s[:, :2] for s in strokes])
    n = len(pts)
    lengths = np.array([len(s) for s in strokes])
    ends = np.cumsum(lengths) - 1
    starts = ends - lengths + 1
    out = np.zeros((n, num_ink_features(use_time)), dtype=np.float64)
    delta = np.zeros_like(pts)
    delta[1:] = np.diff(pts, axis=0)
    out[:, 0:2] = delta
    out[ends, 2] = 1.0
    # neighbours within the stroke (clamped at stroke ends)
    stroke_of = np.repeat(np.arange(len(strokes)), lengths)
    idx = np.arange(n)
    prev = np.maximum(idx - 1, starts[stroke_of])
    nxt = np.minimum(idx + 1, ends[stroke_of])
    chord = pts[nxt] - pts[prev]
    norm = np.hypot(chord[:, 0], chord[:, 1])
    ok = norm > 0
    out[ok, 3] = chord[ok, 0] / norm[ok]
    out[ok, 4] = chord[ok, 1] / norm[ok]
    a = pts[idx] - pts[prev]
    b = pts[nxt] - pts[idx]
    na, nb = np.hypot(a[:, 0], a[:, 1]), np.hypot(b[:, 0], b[:, 1])
    inner = (na > 0) & (nb > 0)
    out[:, 5] = 1.0
    out[inner, 5] = (a[inner] * b[inner]).sum(axis=1) / (na[inner] * nb[inner])
    out[inner, 6] = (a[inner, 0] * b[inner, 1] - a[inner, 1] * b[inner, 0]) / (na[inner] * nb[inner])
    out[:, 7] = pts[:, 1]
    if use_time:
        t = np.concatenate([s[:, 2] for s in strokes])
        dt = np.zeros(n)
        dt[1:] = np.maximum(np.diff(t), 0.0)
        out[:, 8] = np.log1p(dt / 0.01)
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------------- augmentation

@dataclass
class InkFeatureConfig:
    spacing: float = DEFAULT_SPACING  # resampling step, in normalised heights
    use_time: bool = False  # add the dt feature (needs a time channel)
    flip_y: bool = False  # true for y-down sources (IAM-OnDB, most InkML); UNIPEN is y-up
    stack: int = 1  # consecutive points concatenated into one frame by the model's front-end (features.StrokeFrames)
    augment: bool = False  # apply `augment` to training inks
    aug_scale: float = 0.15  # std of the log aspect-ratio change (x stretched, y squeezed or vice versa)
    aug_shear: float = 0.25  # slant change: x += U(-s, s) * y
    aug_rotate: float = 5.0  # rotation: U(-r, r) degrees
    aug_jitter: float = 0.01  # point jitter std, in heights
    aug_gap: float = 0.15  # std of the change of each gap between letters/words, in heights

    @property
    def num_features(self) -> int:
        return num_ink_features(self.use_time)


def augment(ink: Ink, rng: np.random.Generator, config: InkFeatureConfig | None = None) -> Ink:
    """A randomly distorted copy of `ink`, deterministic given `rng`'s state: horizontal gaps between strokes
    widened or narrowed (delayed strokes such as i-dots move with the ink they sit on), then a random affine
    (aspect ratio, slant, small rotation) about the writing's centre, then per-point jitter. Strengths (in units
    of the writing's height) come from `config`; zero turns one off. With jitter, strokes come back resampled at
    half of `config.spacing` (time interpolated)."""
    config = config or InkFeatureConfig()
    strokes = _stroke_list(ink)
    if not strokes:
        return Ink([], ink.text)
    _, yc, height = writing_box(Ink(strokes))
    xy = [s[:, :2].copy() for s in strokes]
    # stroke spacing: a stroke starting right of everything before it (in x order) opens a gap
    if config.aug_gap > 0 and len(xy) > 1:
        lo = np.array([p[:, 0].min() for p in xy])
        hi = np.array([p[:, 0].max() for p in xy])
        order = np.argsort(lo, kind="stable")
        reach = -np.inf
        shift, shifts = 0.0, np.zeros(len(xy))
        draws = rng.normal(0.0, config.aug_gap * height, size=len(xy))
        for rank, k in enumerate(order):
            if rank > 0 and lo[k] > reach:
                gap = lo[k] - reach
                shift += max(draws[rank], -0.8 * gap)
            shifts[k] = shift
            reach = max(reach, hi[k])
        for k, p in enumerate(xy):
            p[:, 0] += shifts[k]
    allxy = np.concatenate(xy)
    centre = np.array([np.median(allxy[:, 0]), yc])
    aspect = math.exp(rng.normal(0.0, config.aug_scale)) if config.aug_scale > 0 else 1.0
    shear = rng.uniform(-config.aug_shear, config.aug_shear) if config.aug_shear > 0 else 0.0
    angle = math.radians(rng.uniform(-config.aug_rotate, config.aug_rotate)) if config.aug_rotate > 0 else 0.0
    c, s = math.cos(angle), math.sin(angle)
    matrix = np.array([[c, -s], [s, c]]) @ np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1.0 / aspect])
    out = []
    for stroke, p in zip(strokes, xy):
        stroke = np.column_stack([(p - centre) @ matrix.T + centre, stroke[:, 2:]])
        if config.aug_jitter > 0:
            # jitter points half a resampling step apart: jittering the tablet's dense raw points would lengthen
            # the pen path, and with it the resampled sequence, up to twice
            stroke = _resample_stroke(stroke, 0.5 * config.spacing * height)
            stroke[:, :2] += rng.normal(0.0, config.aug_jitter * height, size=(len(stroke), 2))
        out.append(stroke)
    return Ink(out, ink.text)


def featurize(ink: Ink, config: InkFeatureConfig, rng: np.random.Generator | None = None) -> np.ndarray:
    """Features per `config`; with `rng` and `config.augment`, of an augmented copy."""
    if rng is not None and config.augment:
        ink = augment(ink, rng, config)
    return ink_features(ink, spacing=config.spacing, use_time=config.use_time, flip_y=config.flip_y)
