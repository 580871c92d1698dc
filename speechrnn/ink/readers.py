"""Online handwriting ("ink"): the Ink type, its validation, and the readers and writers of its file formats.

An `Ink` is a list of strokes (pen-down traces), each an (N, 2) or (N, 3) float array of x, y[, t] with t in
seconds. Readers:
  - `read_inkml(path)`             W3C InkML `<trace>` elements, optional `<annotation type="truth">`;
  - `read_iam_ondb(strokes_xml)`   IAM-OnDB lineStrokes XML; `read_iam_ascii(path)` its transcription (`CSR:` block);
  - `read_json(path)` / `write_json(ink, path)`  `{"strokes": [[[x, y, t], ...], ...], "text": ...}`;
  - `ink_to_inkml(ink)`, `ink_to_svg(ink)`  an ink as an InkML or SVG document (what `speechrnn write` writes);
  - `InkStore(path)` / `write_ink_store(path, inks)`  many inks in one `.npz` (what data_prep/unipen.py writes;
    manifest lines name it in `ink_filepath` and the item in `ink_index`); `load_ink(entry)` reads either form.
UNIPEN `.dat` files are read by speechrnn/ink/unipen.py.

Orientation: an Ink's `y_down` says which way its y axis points, as its source states it: False for UNIPEN
(tablets, y up), True for IAM-OnDB (screen coordinates), the "y_down" field of the JSON form, and for InkML the
`orientation` of its Y channel ("-ve": y up, "+ve": y down) when the file states one; None when nothing says (then
a recognizer decides by reading the ink both ways, speechrnn/orientation.py). The features use y up.

Time: a stroke whose timestamps go backwards (a tablet's clock glitch) is re-timed, each time raised to the latest
before it, with one warning line on stderr; the points and their order are kept.

Limits (speechrnn/ink/limits.py): every reader refuses an ink of more than `max_ink_points()` points (default
100,000), and JSON nested deeper than MAX_JSON_DEPTH before it is parsed, with one InkError line.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .limits import InkError, PointCounter, max_ink_points, parse_json, too_many_points

@dataclass
class Ink:
    """Strokes (pen-down traces), each an (N, 2) or (N, 3) float array of x, y[, t seconds]; optional transcript."""

    strokes: list[np.ndarray]
    text: str | None = None
    source: str | None = field(default=None, compare=False, repr=False)  # file or manifest entry, for messages
    y_down: bool | None = field(default=None, compare=False)  # y grows downwards (screen); None: not stated

    @property
    def num_points(self) -> int:
        return int(sum(len(s) for s in self.strokes))

    @property
    def has_time(self) -> bool:
        shapes = [np.shape(s) for s in self.strokes if len(s)]
        return bool(shapes) and all(len(shape) == 2 and shape[1] >= 3 for shape in shapes)



def check_ink(ink: Ink, where: str) -> Ink:
    """Raise InkError (one line, starting with `where`) unless `ink` has at least two finite points (and at most
    max_ink_points()) in strokes of shape (N, 2) or (N, 3), all with the same channels. Time that goes backwards
    within a stroke is repaired (retime_backwards, one warning line). Records `where` as the ink's source (for later
    messages) when it has none."""
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
    if total > max_ink_points():
        raise too_many_points(where, total, max_ink_points())
    for k, stroke in enumerate(ink.strokes):
        stroke = np.asarray(stroke, dtype=np.float64)
        if stroke.size == 0:
            continue
        if not np.isfinite(stroke).all():
            row = int(np.nonzero(~np.isfinite(stroke).all(axis=1))[0][0])
            raise InkError(f"{where}: stroke {k} point {row} is not finite ({stroke[row].tolist()}); fix the source")
    retime_backwards(ink, where)
    if ink.source is None:
        ink.source = where
    return ink


_RETIMED: set[str] = set()  # sources already warned about


def retime_backwards(ink: Ink, where: str) -> int:
    """Make time non-decreasing within each stroke: a point stamped earlier than one before it (tablet clock
    glitches of 10-30 ms are common) gets the latest time before it. Points and their order are kept. Prints one
    warning line (once per `where`) naming how many points were re-timed and the largest step back; returns that
    count."""
    count, worst, first = 0, 0.0, None
    for k, stroke in enumerate(ink.strokes):
        if np.ndim(stroke) != 2 or np.shape(stroke)[1] < 3 or len(stroke) < 2:
            continue
        t = np.asarray(stroke[:, 2], dtype=np.float64)
        latest = np.maximum.accumulate(t)
        back = latest > t
        if back.any():
            count += int(back.sum())
            worst = max(worst, float((latest - t).max()))
            first = first if first is not None else (k, int(np.argmax(back)))
            stroke = np.array(stroke, dtype=np.float64)
            stroke[:, 2] = latest
            ink.strokes[k] = stroke
    if count and where not in _RETIMED:  # once per source: training reads its inks every epoch
        _RETIMED.add(where)
        print(f"warning: {where}: time goes backwards at {count} point(s) (first: stroke {first[0]} point {first[1]}, "
              f"by up to {worst * 1000:.0f} ms); re-timed to the latest time before each", file=sys.stderr)
    return count



def text_from_bytes(data: bytes) -> str:
    """File bytes as text: UTF-8, or Latin-1 when they are not UTF-8 (older corpora)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")



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
    channels, y_down = [], None
    for element in root.iter():
        if _local(element.tag) == "traceFormat":
            elements = [c for c in element.iter() if _local(c.tag) == "channel"]
            channels = [(c.get("name") or "").upper() for c in elements]
            stated = [c.get("orientation") for c in elements if (c.get("name") or "").upper() == "Y"]
            y_down = {"+ve": True, "-ve": False}.get((stated[0] or "").strip()) if stated else None
            break
    channels = channels or ["X", "Y"]
    if "X" not in channels or "Y" not in channels:
        raise InkError(f"{path}: traceFormat has no X and Y channels ({' '.join(channels)})")
    ix, iy = channels.index("X"), channels.index("Y")
    it = channels.index("T") if "T" in channels else None
    strokes = []
    counter = PointCounter(str(path))
    for k, trace in enumerate(e for e in root.iter() if _local(e.tag) == "trace"):
        rows = []
        points = (trace.text or "").split(",")
        counter.add(len(points) - 1)  # an upper bound: a trailing comma or blank makes one empty piece
        for point in points:
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
    return check_ink(Ink(strokes, text, y_down=y_down), str(path))


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
    counter = PointCounter(str(path))
    for k, stroke in enumerate(e for s in sets for e in s if _local(e.tag) == "Stroke"):
        rows = []
        counter.add(len(stroke))
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
    return check_ink(Ink(strokes, y_down=True), str(path))


def read_iam_ascii(path: str | Path) -> list[str]:
    """The text lines of the `CSR:` block of an IAM-OnDB ascii transcription file."""
    path = Path(path)
    try:
        lines = text_from_bytes(path.read_bytes()).splitlines()
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
    """`{"strokes": [[[x, y(, t)], ...], ...], "text": optional, "y_down": optional true | false}`."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise InkError(f"{path}: cannot read ({err.strerror or err})") from None
    return ink_from_dict(parse_json(raw, str(path)), str(path))


INK_READERS = {".json": read_json, ".inkml": read_inkml, ".xml": read_iam_ondb}


def read_ink(path: str | Path) -> Ink:
    """One ink file, read by its extension: .json (this toolkit's form), .inkml (W3C), .xml (IAM-OnDB lineStrokes);
    a file of another name by its content (a JSON object, an <ink> InkML document, other XML as IAM-OnDB's)."""
    if not Path(path).is_file():
        raise InkError(f"{path}: file not found" if not Path(path).exists() else f"{path}: not a regular file")
    reader = INK_READERS.get(Path(path).suffix.lower()) or reader_by_content(path)
    if reader is None:
        raise InkError(f"{path}: neither JSON nor XML, so not ink; expected one of {', '.join(INK_READERS)}")
    return reader(path)


def reader_by_content(path: str | Path):
    """The reader for a file's first bytes: JSON object -> read_json, <ink ...> -> read_inkml, other XML ->
    read_iam_ondb; None for anything else."""
    try:
        with open(path, "rb") as file:
            head = file.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError as err:
        raise InkError(f"{path}: cannot read ({err.strerror or err})") from None
    if head.startswith(b"{"):
        return read_json
    if head.startswith(b"<"):
        return read_inkml if b"<ink" in head else read_iam_ondb
    return None


def ink_from_dict(data, where: str) -> Ink:
    if not isinstance(data, dict) or not isinstance(data.get("strokes"), list):
        raise InkError(f"{where}: expected an object with a \"strokes\" list")
    total, limit = sum(len(s) if isinstance(s, list) else 1 for s in data["strokes"]), max_ink_points()
    if total > limit:  # before the points become arrays
        raise too_many_points(where, total, limit)
    strokes = []
    for k, stroke in enumerate(data["strokes"]):
        try:
            arr = np.array(stroke, dtype=np.float64)
        except (ValueError, TypeError):
            raise InkError(f"{where}: stroke {k} is not a list of [x, y] or [x, y, t] numbers") from None
        if arr.size == 0:
            continue
        strokes.append(arr)
    text, y_down = data.get("text"), data.get("y_down")
    if text is not None and not isinstance(text, str):
        raise InkError(f"{where}: \"text\" must be a string")
    if y_down is not None and not isinstance(y_down, bool):
        raise InkError(f"{where}: \"y_down\" must be true (y grows downwards, screen coordinates) or false (y up)")
    return check_ink(Ink(strokes, text, y_down=y_down), where)


def ink_to_dict(ink: Ink, decimals: int | None = None) -> dict:
    strokes = [np.asarray(s, dtype=np.float64) for s in ink.strokes]
    if decimals is not None:
        strokes = [np.round(s, decimals) for s in strokes]
    out = {"strokes": [s.tolist() for s in strokes]}
    if ink.text is not None:
        out["text"] = ink.text
    if ink.y_down is not None:
        out["y_down"] = ink.y_down
    return out


def write_json(ink: Ink, path: str | Path, decimals: int | None = None) -> None:
    """Write `ink` as JSON; `decimals` rounds coordinates (and times) to save space."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(ink_to_dict(ink, decimals), ensure_ascii=False), encoding="utf-8")


def ink_to_inkml(ink: Ink, decimals: int = 3) -> str:
    """`ink` as a W3C InkML document (read back by read_inkml): a trace per stroke, the Y channel's orientation as
    the ink states it, the text as the truth annotation."""
    from xml.sax.saxutils import escape

    has_time = ink.has_time
    channels = ['<channel name="X" type="decimal"/>',
                '<channel name="Y" type="decimal"' + ({True: ' orientation="+ve"', False: ' orientation="-ve"'}
                                                       .get(ink.y_down, "")) + "/>"]
    if has_time:
        channels.append('<channel name="T" type="decimal" units="s"/>')
    traces = []
    for stroke in ink.strokes:
        stroke = np.asarray(stroke, dtype=np.float64)[:, :3 if has_time else 2]
        if len(stroke):
            traces.append("<trace>" + ", ".join(" ".join(f"{v:.{decimals}f}" for v in point) for point in stroke)
                          + "</trace>")
    text = f'<annotation type="truth">{escape(ink.text)}</annotation>\n' if ink.text is not None else ""
    return ('<ink xmlns="http://www.w3.org/2003/InkML">\n<definitions><context xml:id="ctx"><traceFormat>'
            + "".join(channels) + "</traceFormat></context></definitions>\n" + text + "\n".join(traces) + "\n</ink>\n")


def ink_to_svg(ink: Ink, height_px: float = 80.0, margin: float = 0.5, line_width: float = 0.08) -> str:
    """`ink` drawn as an SVG document, a polyline per stroke, scaled so that a writing height (the unit of the
    normalised ink the synthesis network writes) is `height_px` pixels; `margin` and `line_width` in the ink's
    units. y is flipped for the screen unless the ink is y_down."""
    from xml.sax.saxutils import escape

    strokes = [np.asarray(s, dtype=np.float64)[:, :2] for s in ink.strokes if len(s)]
    points = np.concatenate(strokes) if strokes else np.zeros((1, 2))
    sign = 1.0 if ink.y_down else -1.0
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    top = y0 if ink.y_down else -y1
    width, height = (x1 - x0) + 2 * margin, (y1 - y0) + 2 * margin
    lines = [" ".join(f"{x - x0 + margin:.3f},{sign * y - top + margin:.3f}" for x, y in stroke) for stroke in strokes]
    title = f"<title>{escape(ink.text)}</title>" if ink.text else ""
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width * height_px:.0f}" height="{height * height_px:.0f}" '
            f'viewBox="0 0 {width:.3f} {height:.3f}">{title}<g fill="none" stroke="black" stroke-width="{line_width}" '
            'stroke-linecap="round" stroke-linejoin="round">'
            + "".join(f'<polyline points="{line}"/>' for line in lines) + "</g></svg>\n")


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
