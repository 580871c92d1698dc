"""What a recognizer returns (`Transcript`, with `Span`s of timed words) and its output formats: txt, json, jsonl,
and SubRip / WebVTT subtitles from word timestamps; `write_file` writes an output whole or not at all, and
`PartialOutput` writes a long recording's output as it is decoded, into a .part file renamed when it is done."""

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
    out["words"] = word_dicts(transcript.words)
    return out


def word_dicts(words: list[Span]) -> list[dict]:
    return [{"word": w.text, "start": round(w.start, 3), "end": round(w.end, 3), "confidence": round(w.confidence, 4)}
            for w in words]


def cue_words(words: list[Span]) -> list[list[Span]]:
    """Group words into subtitle cues, left to right: a cue closes on what it holds and the next word alone, so
    all cues but the last are final however many words follow."""
    out, group = [], []
    for word in words:
        if group and (word.end - group[0].start > CUE_SECONDS or word.start - group[-1].end > CUE_PAUSE
                      or len(" ".join(w.text for w in group + [word])) > CUE_CHARS):
            out.append(group)
            group = []
        group.append(word)
    return out + [group] if group else out


def cues(words: list[Span]) -> list[tuple[float, float, str]]:
    """Group words into subtitle cues: (start, end, text)."""
    return [(group[0].start, group[-1].end, " ".join(w.text for w in group)) for group in cue_words(words)]


def cue_block(number: int, start: float, end: float, text: str, fmt: str) -> str:
    """One srt (numbered) or vtt cue, ending with a newline; cues are separated by an empty line."""
    if fmt == "srt":
        return f"{number}\n{timestamp(start, ',')} --> {timestamp(end, ',')}\n{text}\n"
    return f"{timestamp(start, '.')} --> {timestamp(end, '.')}\n{text}\n"


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
    body = "\n".join(cue_block(number, *cue, fmt) for number, cue in enumerate(cues(transcript.words), 1))
    return ("WEBVTT\n\n" + body) if fmt == "vtt" else body


def write_file(path: str | Path, text: str, overwrite: bool = False) -> None:
    """Write `text` to `path` whole or not at all: into a temporary file beside it, then renamed over it. Without
    `overwrite`, FileExistsError when `path` exists (checked by the rename itself, a hard link: no race)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666), "w", encoding="utf-8") as f:
            f.write(text)
        move_into_place(tmp, path, overwrite)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def move_into_place(source: Path, path: Path, overwrite: bool = False) -> None:
    """Rename the finished file `source` to `path`. Without `overwrite`, FileExistsError (and `source` left as it
    is) when `path` exists, checked by the rename itself (a hard link, then `source` unlinked): no race."""
    if overwrite:
        os.replace(source, path)
        return
    try:
        os.link(source, path)  # fails when path exists
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise FileExistsError(path) from None
        os.replace(source, path)
        return
    os.unlink(source)


PARTIAL_FORMATS = ("txt", "jsonl", "srt", "vtt")  # formats PartialOutput writes as a recording is decoded


class PartialOutput:
    """A long recording's output in `fmt` written as its groups of segments are decoded (`add`, longaudio's
    on_group): appended to `<target>.part` and flushed per group, so a stopped run keeps what was done; `finish`
    completes it and renames it to `target`, so a half-written file never replaces a good one. txt: the texts so
    far; srt / vtt: the cues closed so far (the open one waits for the next group), numbered on, vtt's header once;
    jsonl: one line per group, {"path", "start", "end", "text", "words"}, and the finished file is the recording's
    one document, as `render` writes it. The finished file is always `render(transcript, fmt)`, byte for byte."""

    def __init__(self, target: str | Path, fmt: str, name: str):
        self.target, self.fmt, self.name = Path(target), fmt, name
        self.part = self.target.with_name(self.target.name + ".part")
        self.part.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.part, "w", encoding="utf-8")  # a .part left by a stopped run is started afresh
        self.texts, self.cues, self.open_cue = 0, 0, []
        if fmt == "vtt":
            self.file.write("WEBVTT\n\n")

    def add(self, group) -> None:
        """One decoded group (longaudio.Group: texts, words with times in the recording, start, end)."""
        if self.fmt == "txt" and group.texts:
            self.file.write((" " if self.texts else "") + " ".join(group.texts))
            self.texts += len(group.texts)
        elif self.fmt == "jsonl":
            line = {"path": self.name, "start": round(group.start, 3), "end": round(group.end, 3),
                    "text": " ".join(group.texts), "words": word_dicts(group.words)}
            self.file.write(json.dumps(line, ensure_ascii=False) + "\n")
        elif self.fmt in ("srt", "vtt"):
            *closed, self.open_cue = cue_words(self.open_cue + group.words) or [[]]
            for words in closed:
                self._cue(words)
        self.file.flush()

    def _cue(self, words: list[Span]) -> None:
        self.cues += 1
        text = cue_block(self.cues, words[0].start, words[-1].end, " ".join(w.text for w in words), self.fmt)
        self.file.write(("\n" if self.cues > 1 else "") + text)

    def finish(self, transcript: Transcript, overwrite: bool = False) -> None:
        """The recording is done: its file written (write_file's `overwrite` rules; FileExistsError or OSError
        leave the .part as it is), the .part gone."""
        if self.fmt == "txt":
            self.file.write("\n")
        elif self.open_cue:
            self._cue(self.open_cue)
        self.close()
        final = render(transcript, self.fmt)
        if self.fmt == "jsonl" or self.part.read_text(encoding="utf-8") != final:
            write_file(self.target, final, overwrite)  # jsonl: one document; else a safeguard, never needed
            self.part.unlink()
        else:
            move_into_place(self.part, self.target, overwrite)

    def close(self) -> None:
        self.file.close()
