"""What a recognizer returns (`Transcript`, with `Span`s of timed words) and its output formats: txt, json, jsonl,
and SubRip / WebVTT subtitles from word timestamps; `write_file` writes an output whole or not at all."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("txt", "json", "jsonl", "srt", "vtt")
NEEDS_TIMES = ("json", "jsonl", "srt", "vtt")  # formats that carry word times
CUE_SECONDS = 6.0  # a subtitle cue closes after this long...
CUE_CHARS = 42  # ...or this many characters (the usual subtitle line length)
CUE_PAUSE = 1.0  # ...or at a pause this long between words


@dataclass
class Span:
    text: str  # a character, or a word
    start: float  # seconds (audio) or resampled points (ink)
    end: float
    confidence: float  # [0, 1]


@dataclass
class Transcript:
    name: str  # the path, or "<input N>" for in-memory inputs
    text: str
    words: list[Span] = field(default_factory=list)  # with times and confidences (when asked for)
    duration: float = 0.0  # seconds of audio (resampled points of ink)
    gate: dict | None = None  # the no-speech / no-ink gate's decision (speechrnn/gate.py); None: no gate ran


def to_dict(transcript: Transcript) -> dict:
    """The json / jsonl document of one input: {"path", "text", "duration", ["gate",] "words": [{"word", "start",
    "end", "confidence"}, ...]}; "words" is always there, empty when nothing was recognised."""
    out = {"path": transcript.name, "text": transcript.text, "duration": round(transcript.duration, 3)}
    if transcript.gate is not None:
        out["gate"] = transcript.gate
    out["words"] = [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3),
                     "confidence": round(w.confidence, 4)} for w in transcript.words]
    return out


def cues(words: list[Span]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues: (start, end, text)."""
    out, group = [], []
    for word in words:
        if group and (word.end - group[0].start > CUE_SECONDS or word.start - group[-1].end > CUE_PAUSE
                      or len(" ".join(w.text for w in group + [word])) > CUE_CHARS):
            out.append((group[0].start, group[-1].end, " ".join(w.text for w in group)))
            group = []
        group.append(word)
    if group:
        out.append((group[0].start, group[-1].end, " ".join(w.text for w in group)))
    return out


def timestamp(seconds: float, decimal: str) -> str:
    ms = int(round(seconds * 1000))
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def render(transcript: Transcript, fmt: str) -> str:
    """One transcript in `fmt`, ending with a newline (txt: the text alone)."""
    if fmt == "txt":
        return transcript.text + "\n"
    if fmt == "jsonl":
        return json.dumps(to_dict(transcript), ensure_ascii=False) + "\n"
    if fmt == "json":
        return json.dumps(to_dict(transcript), ensure_ascii=False, indent=2) + "\n"
    blocks = []
    for number, (start, end, text) in enumerate(cues(transcript.words), 1):
        if fmt == "srt":
            blocks.append(f"{number}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n{text}\n")
        else:
            blocks.append(f"{timestamp(start, '.')} --> {timestamp(end, '.')}\n{text}\n")
    body = "\n".join(blocks)
    return ("WEBVTT\n\n" + body) if fmt == "vtt" else body


def write_file(path: str | Path, text: str, overwrite: bool = False) -> None:
    """Write `text` to `path` whole or not at all: into a temporary file beside it, then renamed over it. Without
    `overwrite`, FileExistsError when `path` exists (checked by the rename itself, a hard link: no race)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "w", encoding="utf-8") as f:
            f.write(text)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails when path exists
            except FileExistsError:
                raise
            except OSError:  # a file system without hard links
                if os.path.lexists(path):
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
