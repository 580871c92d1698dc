"""`speechrnn serve`: try models in a browser. Record speech, or write on a canvas, and see what the models read;
type words and see a synthesis network write them, in its own hand or in the style of a sample.

One page (speechrnn/web/: index.html, app.js, style.css, worklet.js; no build step) and a JSON API, served by
the standard library's ThreadingHTTPServer:

  GET  /api/models      the loaded models: {"audio": {...} or null, "ink": {...} or null, "writer": {...} or null,
                        "max_upload_bytes": N}; the writer's: {"bundle", "writes" (its characters, the space
                        aside), "spaces", "knows", "how", "max_chars", "default_bias"}
  POST /api/transcribe  body: an audio file (WAV, FLAC, OGG or MP3, any rate and channel count; the page sends
                        16-bit PCM WAV), Content-Type audio/*, application/octet-stream or none (curl
                        --data-binary @x.wav), or a multipart/form-data upload (curl -F file=@x.wav)
  POST /api/ink         body: JSON {"strokes": [[[x, y, t], ...], ...], "y_down": true}, the toolkit's ink JSON;
                        "y_down" true says y grows downwards (screen coordinates, what the page sends), false
                        that it grows upwards; left out, the model reads the ink both ways and keeps the
                        reading that looks upright (speechrnn/orientation.py)

Both answer {"text", "words": [{"word", "start", "end", "confidence"}], "duration", "seconds"} (word times in
seconds for audio, in resampled points for ink; "seconds": the time the request waited for the model and was
decoded).

  POST /api/write       body: JSON {"text": "hello world", "bias": 1.0, "seed": 0, "temperature": 1.0,
                        "style": {"strokes": [[[x, y, t], ...], ...], "y_down": true}, "style_text": "..."}, all but
                        "text" optional: bias 0 to 10 (default the writer's, 1: larger writes neater), temperature
                        0 to 2 (default 1), seed an integer from 0 to 2^32 - 1 (default 0; the same seed writes the
                        same ink); "style" a sample of handwriting to imitate (its "y_down" stated), "style_text"
                        what it says (left out, the loaded handwriting recognizer reads it; 400 when none is loaded)
                        -> {"text", "strokes": [[[x, y], ...], ...] (in writing heights, y up, in the order written),
                        "finished" (false: stopped at the cap of points before the network finished the text),
                        "seconds", "style_text" (with a style: as given, or as read)}. The writer writes one text at
                        a time (tasks/synthesis/inference.py write()); 404 when no writer is loaded (`speechrnn serve
                        unipen-writer`, or a bundle of `speechrnn synthesis train`), 400 for an empty text, one over
                        200 characters, characters the writer cannot write or a value out of range.

Bad input gets an HTTP error with {"error": "what went wrong, and what to do"}: 400 (empty or
malformed), 411 (no Content-Length), 413 (over the upload limit, the audio length limit --max-audio-seconds or
the ink points limit --max-ink-points), 415 (not audio, not JSON); a full queue gets 503 with a Retry-After
header. A client that disconnects or stalls mid-upload only loses its own request.

Requests are served concurrently (one thread each: reading, decoding the audio file, ink features); each model is
loaded once and run by one worker thread that decodes the waiting requests together, up to --batch at a time
(speechrnn/batching.py); --batch 1 decodes them one at a time. Write requests take turns at the writer (at most
--max-queue waiting, more get 503).
"""

import io
import ipaddress
import json
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from .batching import Batcher, Busy, Long
from .errors import UserError
from .pretrained import DEFAULTS
from .uploads import FORM_TYPES, uploaded_file

WEB = Path(__file__).resolve().parent / "web"
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8"}
MB = 1_000_000
CLIENT_TIMEOUT = 30.0  # seconds a client may stall mid-request before its connection is dropped
MAX_AUDIO_SECONDS = 120.0  # default longest recording per request
WRITER = DEFAULTS["synthesis"]  # the shipped synthesis bundle served by default, when the install has it
BIAS_RANGE, TEMPERATURE_RANGE, SEED_RANGE = (0.0, 10.0), (0.0, 2.0), (0, 2**32 - 1)  # what /api/write accepts


@dataclass
class Limits:
    """What one request may ask of the server, and how requests are batched."""

    max_upload_bytes: int = 50 * MB
    max_audio_seconds: float = MAX_AUDIO_SECONDS
    batch: int = 16  # requests decoded together at most (1: one at a time)
    max_wait: float = 0.02  # seconds a batch waits at most for requests on their way (none on the way: no wait)
    max_queue: int = 64  # requests waiting per model; more get 503


class BadRequest(Exception):
    """An HTTP error answer: status and a one-line message for the user."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class ClientGone(Exception):
    """The client closed the connection or stalled before sending the whole body."""


# ---------------------------------------------------------------------------------------------------- models

def load_models(bundles: list[str], device: str = "auto") -> dict[str, tuple[str, object]]:
    """{kind: (file name, model)} for the named bundles (files or shipped names), or, when none is named, for the
    shipped AN4 and UNIPEN bundles and the shipped writer (WRITER) when this install has it. Kinds: "audio" and
    "ink" (a Recognizer each), "writer" (a synthesis bundle, extra["task"] "synthesis": a
    tasks.synthesis.inference.Writer); at most one bundle of each."""
    from .bundle import load_bundle
    from .device import select_device
    from .pretrained import default_bundle, resolve
    from .recognizer import Recognizer

    paths = [resolve(b) for b in bundles] or [default_bundle("audio"), default_bundle("ink")]
    if not bundles and (writer := default_writer()) is not None:
        paths.append(writer)
    models = {}
    for path in paths:
        if load_bundle(path)["extra"].get("task") == "synthesis":
            from .tasks.synthesis.inference import load_writer

            kind, model = "writer", load_writer(path, device=select_device(device))
        else:
            model = Recognizer.load(path, device=device)
            kind = model.config.modality
        if kind in models:
            what = {"audio": "speech", "ink": "handwriting", "writer": "writer (synthesis)"}.get(kind, kind)
            raise UserError(f"{path}: a second {what} model (after {models[kind][0]}); serve takes at most one "
                            f"speech, one handwriting and one writer bundle")
        models[kind] = (Path(path).name, model)
    return models


def default_writer() -> Path | None:
    """The shipped writer's bundle when this install has it, else None."""
    from .pretrained import MODELS

    shipped = MODELS.get(WRITER)
    return shipped.path if shipped is not None and shipped.path.is_file() else None


HOW = {"audio": "Press Record, say one of the things the model knows, then press Stop; or choose a recording.",
       "ink": "Write a word with a mouse, pen or finger, then press Recognise.",
       "ink lines": "Write a word or a line of words with a mouse, pen or finger, then press Recognise.",
       "write": "Type a few words and press Write; or write a sample on the handwriting canvas and press Write in "
                "my style."}


def model_info(name: str, recognizer) -> dict:
    """What /api/models says of a loaded model: its file, decoder, what it knows (the shipped models' own words;
    for others, the characters it writes) and, in a sentence, what a visitor does with it."""
    from .pretrained import MODELS

    modality = recognizer.config.modality
    path = getattr(recognizer, "bundle_path", None)
    shipped = next((m for m in MODELS.values() if path is not None and m.path == Path(path).resolve()), None)
    letters = "".join(sorted(s for s in recognizer.tokenizer.symbols[1:] if len(s) == 1 and s.strip()))
    knows = shipped.knows if shipped else f"a {'speech' if modality == 'audio' else 'handwriting'} model that " \
                                          f"writes the characters {letters}"
    reads_lines = modality == "ink" and " " in recognizer.tokenizer.symbols  # a model that writes spaces
    info = {"bundle": name, "decoder": "greedy" if recognizer.decoder is None else "beam search", "knows": knows,
            "how": HOW["ink lines" if reads_lines else modality]}
    if modality == "audio":
        info["sample_rate"] = recognizer.config.features.sample_rate
    return info


def writer_info(name: str, writer) -> dict:
    """What /api/models says of the loaded writer: its file, the characters it writes (and whether spaces), what
    it is (the shipped model's words, when it is one), the longest text and the default bias."""
    from .pretrained import MODELS
    from .tasks.synthesis.inference import MAX_TEXT_CHARS

    chars = [c for c in writer.alphabet.chars if c not in ("\n", "\ufffd")]  # not the newline, the unknown mark
    shipped = next((m for m in MODELS.values() if writer.source and m.path == Path(writer.source).resolve()), None)
    writes, spaces = "".join(c for c in chars if c != " "), " " in chars
    knows = getattr(shipped, "knows", None) or \
        f"a handwriting synthesis network that writes the characters {writes}" + (" and spaces" if spaces else "")
    return {"bundle": name, "writes": writes, "spaces": spaces, "knows": knows,
            "how": HOW["write"], "max_chars": MAX_TEXT_CHARS, "default_bias": writer.default_bias}


def result_json(transcript, seconds: float) -> dict:
    from .output import to_dict

    out = to_dict(transcript)
    out.pop("path", None)
    out.setdefault("words", [])
    out["seconds"] = round(seconds, 3)
    return out


# ---------------------------------------------------------------------------------------------------- inputs

def read_audio(body: bytes, max_seconds: float = MAX_AUDIO_SECONDS) -> tuple[np.ndarray, int]:
    """An uploaded audio file -> (mono float32 samples, rate); BadRequest when it is not usable audio or longer
    than `max_seconds` (checked on the header before decoding, and again after)."""
    try:
        info = soundfile.info(io.BytesIO(body))
        if info.samplerate > 0 and info.frames > 0:
            check_audio_seconds(info.frames / info.samplerate, max_seconds)
        samples, rate = soundfile.read(io.BytesIO(body), dtype="float32", always_2d=True)  # (N, C)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        why = getattr(err, "error_string", None) or str(err)
        raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                         f"the upload is not audio that can be read ({why.rstrip('.')}); send WAV (16-bit PCM), FLAC, OGG or "
                         f"MP3 (a browser's WebM/Opus recording must be converted first)") from None
    if samples.shape[0] == 0:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the audio holds no samples; record or choose a longer file")
    check_audio_seconds(samples.shape[0] / rate, max_seconds)
    if not np.isfinite(samples).all():
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the audio contains NaN or infinite samples; re-encode it")
    return samples.mean(axis=1), int(rate)


def check_audio_seconds(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                         f"the audio is {seconds:.1f} s long, over this server's limit of {max_seconds:g} s per "
                         f"request; send a shorter recording, or restart `speechrnn serve` with a larger "
                         f"--max-audio-seconds")


def read_json(body: bytes, example: str = '{"strokes": [[[x, y, t], ...], ...]}'):
    """An uploaded JSON body, parsed; BadRequest when it is not JSON (or nests deeper than any ink needs)."""
    from .ink import InkError, check_json_depth

    try:
        check_json_depth(body, "the body")
        return json.loads(body.decode("utf-8"))
    except InkError as err:
        raise BadRequest(HTTPStatus.BAD_REQUEST, str(err)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"the body is not JSON ({err}); send {example}") from None


def read_ink_json(body: bytes):
    """An uploaded ink JSON -> ink.Ink, its y_down as the body states it (None: the recognizer decides);
    BadRequest when it is not usable ink."""
    return ink_of(read_json(body))


def ink_of(data, what: str = "the ink", where: str = "ink"):
    """A parsed ink JSON object ({"strokes": [...], "y_down": ...}) -> ink.Ink; BadRequest when it is not usable."""
    from .ink import InkError, InkTooLarge, ink_from_dict

    if not isinstance(data, dict) or not isinstance(data.get("strokes"), list):
        raise BadRequest(HTTPStatus.BAD_REQUEST, 'expected a JSON object with a "strokes" list: '
                                                 '{"strokes": [[[x, y, t], ...], ...]}')
    if not any(isinstance(s, list) and s for s in data["strokes"]):
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"{what} has no strokes: write something first")
    y_down = data.get("y_down")
    if y_down is not None and not isinstance(y_down, bool):
        raise BadRequest(HTTPStatus.BAD_REQUEST, '"y_down" must be true (screen coordinates) or false (y up)')
    try:
        ink = ink_from_dict({"strokes": data["strokes"]}, where)
    except InkError as err:
        status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE if isinstance(err, InkTooLarge) else HTTPStatus.BAD_REQUEST
        raise BadRequest(status, str(err)) from None
    ink.y_down = y_down
    return ink


WRITE_KEYS = ("text", "bias", "temperature", "seed", "style", "style_text")


def write_request(data) -> dict:
    """A parsed /api/write body -> {"text", "bias", "temperature", "seed", "style" (an Ink or None),
    "style_text" (or None)}, defaults filled in; BadRequest (one line) for anything else."""
    def bad(message: str) -> BadRequest:
        return BadRequest(HTTPStatus.BAD_REQUEST, message)

    if not isinstance(data, dict):
        raise bad('expected a JSON object: {"text": "hello", "bias": 1.0, "seed": 0}')
    unknown = [key for key in data if key not in WRITE_KEYS]
    if unknown:
        raise bad(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; /api/write "
                  f"takes {', '.join(WRITE_KEYS)}")
    if not isinstance(data.get("text"), str):
        raise bad('"text" (a string, the words to write) is missing' if data.get("text") is None
                  else f'"text" must be a string, not {type(data["text"]).__name__}')
    request = {"text": data["text"]}
    for key, default, (low, high), what in (("bias", None, BIAS_RANGE, "0: as sampled, larger: neater"),
                                            ("temperature", 1.0, TEMPERATURE_RANGE, "0: no randomness"),
                                            ("seed", 0, SEED_RANGE, "the same seed writes the same ink")):
        value = data.get(key, default)
        if value is None and key == "bias":  # the writer's own, chosen on dev
            request[key] = None
            continue
        integer = key == "seed"
        number = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
        if not (number and low <= value <= high):  # NaN and infinities are out of range
            kind = "an integer" if integer else "a number"
            raise bad(f'"{key}" must be {kind} from {low:g} to {high:g} ({what}), got {json.dumps(value)[:40]}')
        request[key] = value if integer else float(value)
    style_text = data.get("style_text")
    if style_text is not None and not isinstance(style_text, str):
        raise bad(f'"style_text" must be a string (what the style sample says), not {type(style_text).__name__}')
    request["style_text"] = style_text if style_text and style_text.strip() else None
    request["style"] = None
    if data.get("style") is not None:
        style = ink_of(data["style"], "the style sample", "style")
        if style.y_down is None:
            raise bad('the style sample must say which way is up: "y_down": true (screen coordinates) or false (y up)')
        request["style"] = style
    elif request["style_text"] is not None:
        raise bad('"style_text" says what the style sample says, but no "style" ink was given')
    return request


def ink_finished(ink, text: str, styled: bool) -> bool:
    """Whether the writer finished the text, rather than being stopped at write()'s cap of points."""
    from .tasks.synthesis.inference import POINTS_PER_CHAR, START_POINTS

    return ink.num_points < START_POINTS + POINTS_PER_CHAR * len(text) + (0 if styled else 1)


# ---------------------------------------------------------------------------------------------------- server

class DemoServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: connections beyond the handler threads wait, not fail

    def __init__(self, address: tuple[str, int], models: dict, limits: Limits | None = None):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.models = models
        self.limits = limits or Limits()
        self.max_upload_bytes = self.limits.max_upload_bytes
        super().__init__(address, Handler)
        self.batchers = {modality: Batcher(recognizer, self.limits.batch, self.limits.max_wait,
                                           self.limits.max_queue, name=modality)
                         for modality, (_, recognizer) in models.items() if modality in ("audio", "ink")}
        self.writer_lock = threading.Lock()  # the writer writes one text at a time
        self.writers_waiting = 0  # requests waiting for (or holding) the writer; over max_queue get 503
        self.writers_counted = threading.Lock()

    def server_close(self) -> None:
        super().server_close()
        for batcher in self.batchers.values():
            batcher.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


class Handler(BaseHTTPRequestHandler):
    server: DemoServer
    server_version = "speechrnn-serve"
    timeout = CLIENT_TIMEOUT  # socket timeout: a stalled client is dropped, its thread freed

    # --------------------------------------------------------------------------------------------- GET

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/models":
            models = self.server.models
            info = {modality: model_info(*models[modality]) if modality in models else None
                    for modality in ("audio", "ink")}
            info["writer"] = writer_info(*models["writer"]) if "writer" in models else None
            self.send_json(HTTPStatus.OK, {**info, "max_upload_bytes": self.server.max_upload_bytes})
            return
        if path.startswith("/api/"):
            self.send_json(HTTPStatus.METHOD_NOT_ALLOWED if path in ("/api/transcribe", "/api/ink", "/api/write")
                           else HTTPStatus.NOT_FOUND,
                           {"error": f"{path}: POST to /api/transcribe, /api/ink or /api/write"})
            return
        name = "index.html" if path == "/" else path.lstrip("/")
        file = WEB / name
        if "/" in name or file.suffix not in STATIC_TYPES or not file.is_file():
            self.send_json(HTTPStatus.NOT_FOUND, {"error": f"{path}: not found; the page is at /"})
            return
        self.send_bytes(HTTPStatus.OK, file.read_bytes(), STATIC_TYPES[file.suffix])

    # --------------------------------------------------------------------------------------------- POST

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        routes = {"/api/transcribe": ("audio", self.check_audio_type, self.audio_input),
                  "/api/ink": ("ink", self.check_json_type, self.ink_input)}
        self._unread = 0  # bytes of the body not read yet
        try:
            length = self.content_length()
            if path == "/api/write":
                self.write_text(length)
                return
            if path not in routes:
                raise BadRequest(HTTPStatus.NOT_FOUND, f"{path}: no such endpoint; POST to /api/transcribe "
                                                       f"(audio), /api/ink (JSON strokes) or /api/write (JSON text)")
            modality, check_type, model_input = routes[path]
            if modality not in self.server.models:
                what = "speech" if modality == "audio" else "handwriting"
                raise BadRequest(HTTPStatus.NOT_FOUND, f"no {what} model is loaded; start `speechrnn serve` with "
                                                       f"a {modality} bundle (or none, for the shipped ones)")
            check_type()
            recognizer, batcher = self.server.models[modality][1], self.server.batchers[modality]
            with batcher.arriving() as submit:  # a batch being gathered waits for this request (a few ms at most)
                body = uploaded_file(self.read_body(length), self.headers.get("Content-Type") or "")
                item = model_input(body, recognizer)
                start = time.perf_counter()
                job = submit(item)
            transcript = batcher.result(job)
            self.send_json(HTTPStatus.OK, result_json(transcript, time.perf_counter() - start))
        except BadRequest as err:
            self.send_json(err.status, {"error": str(err)})
            self.discard_body()
        except Busy as err:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(err)},
                           {"Retry-After": str(err.retry_after)})
        except ClientGone as err:
            self.close_connection = True
            self.log_message("%s", f"dropped: {err}")
        except UserError as err:  # input the model cannot take (e.g. ink too small to recognise, or too long)
            too_large = type(err).__name__ == "InkTooLarge"
            self.send_json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if too_large else HTTPStatus.BAD_REQUEST,
                           {"error": str(err)})
        except Exception as err:  # a bug: answer, log, and keep serving
            traceback.print_exc(file=sys.stderr)
            self.send_json(HTTPStatus.INTERNAL_SERVER_ERROR,
                           {"error": f"internal error ({type(err).__name__}: {err}); see the server's log"})

    def audio_input(self, body: bytes, recognizer):
        """The model's input, made in this request's thread: resampled audio, or Long for audio over split_over."""
        samples, rate = read_audio(body, self.server.limits.max_audio_seconds)
        if len(samples) / rate > recognizer.split_over:
            return Long((samples, rate))
        return recognizer.load_input((samples, rate))

    def ink_input(self, body: bytes, recognizer):
        return recognizer.load_input(read_ink_json(body))

    # --------------------------------------------------------------------------------------------- writing

    def write_text(self, length: int) -> None:
        """POST /api/write: the text written by the loaded writer, as strokes (writing heights, y up)."""
        from .tasks.synthesis.inference import check_text

        if "writer" not in self.server.models:
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no writer (handwriting synthesis model) is loaded; start "
                                                   f"`speechrnn serve {WRITER}` (beside the recognizers you want: "
                                                   f"`speechrnn serve an4 unipen {WRITER}`) or name a bundle of "
                                                   f"`speechrnn synthesis train`")
        self.check_json_type('{"text": "hello"}')
        writer = self.server.models["writer"][1]
        body = uploaded_file(self.read_body(length), self.headers.get("Content-Type") or "")
        request = write_request(read_json(body, '{"text": "hello", "bias": 1.0, "seed": 0}'))
        text = check_text(writer, request["text"])
        style, style_text = request["style"], request["style_text"]
        if style is not None and style_text is None:
            style_text = self.read_style(style)
            try:
                check_text(writer, style_text, "style's text")
            except UserError:
                raise BadRequest(HTTPStatus.BAD_REQUEST,
                                 f"the style sample was read as {style_text!r}, which has characters this writer "
                                 f"cannot write; give \"style_text\", what the sample says") from None
        start = time.perf_counter()
        with self.writer_turn():
            ink = self.write_ink(writer, text, request, style, style_text)
        answer = {"text": text, "strokes": [np.round(np.asarray(s)[:, :2], 3).tolist() for s in ink.strokes],
                  "finished": ink_finished(ink, text, style is not None),
                  "seconds": round(time.perf_counter() - start, 3)}
        if style is not None:
            answer["style_text"] = style_text  # as given, or as the recognizer read it
        self.send_json(HTTPStatus.OK, answer)

    @staticmethod
    def write_ink(writer, text: str, request: dict, style, style_text):
        from .tasks.synthesis.inference import write

        return write(writer, text, bias=request["bias"], temperature=request["temperature"], seed=request["seed"],
                     style=style, style_text=style_text)

    def read_style(self, style) -> str:
        """What the loaded handwriting recognizer reads in the style sample (through its batcher, as /api/ink)."""
        if "ink" not in self.server.models:
            raise BadRequest(HTTPStatus.BAD_REQUEST, 'no handwriting recognizer is loaded to read the style sample; '
                                                     'give "style_text", what the sample says')
        recognizer, batcher = self.server.models["ink"][1], self.server.batchers["ink"]
        with batcher.arriving() as submit:
            job = submit(recognizer.load_input(style))
        text = batcher.result(job).text.strip()
        if not text:
            raise BadRequest(HTTPStatus.BAD_REQUEST, 'the style sample could not be read (nothing recognised); '
                                                     'write it larger, or give "style_text", what it says')
        return text

    @contextmanager
    def writer_turn(self):
        """Wait for the writer (one request at a time); Busy when max_queue requests are waiting already."""
        server = self.server
        with server.writers_counted:
            if server.writers_waiting >= server.limits.max_queue:
                raise Busy(5, server.writers_waiting)
            server.writers_waiting += 1
        try:
            with server.writer_lock:
                yield
        finally:
            with server.writers_counted:
                server.writers_waiting -= 1

    def check_audio_type(self) -> None:
        kind = self.content_type()
        if kind and not (kind.startswith("audio/") or kind in ("application/octet-stream", *FORM_TYPES)):
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                             f"expected an audio file as the request body (Content-Type audio/wav, audio/flac, ... "
                             f"or application/octet-stream), got {kind}")

    def check_json_type(self, example: str = '{"strokes": [[[x, y, t], ...], ...]}') -> None:
        kind = self.content_type()
        if kind and kind not in ("application/json", *FORM_TYPES):
            what = "JSON strokes" if "strokes" in example else "JSON"
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                             f'expected {what} (Content-Type application/json), got {kind}; send {example}')

    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()

    # --------------------------------------------------------------------------------------------- body

    def content_length(self) -> int:
        value = self.headers.get("Content-Length")
        if value is None:
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length header "
                                                         "(chunked uploads are not accepted)")
        try:
            length = int(value)
        except ValueError:
            length = -1
        if length < 0:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length {value!r} is not a byte count")
        self._unread = length
        limit = self.server.max_upload_bytes
        if length > limit:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"the upload is {length / MB:.1f} MB, over this server's limit of {limit / MB:g} MB; "
                             f"send a shorter recording, or restart `speechrnn serve` with a larger --max-upload-mb")
        if length == 0:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the request body is empty; send the recording or the strokes")
        return length

    def read_body(self, length: int) -> bytes:
        chunks, got = [], 0
        try:
            while got < length:
                chunk = self.rfile.read1(min(length - got, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except OSError as err:  # reset, or stalled past CLIENT_TIMEOUT
            raise ClientGone(f"client gone mid-upload after {got} of {length} bytes ({err})") from None
        self._unread = 0
        if got < length:
            raise ClientGone(f"client closed the connection after {got} of {length} bytes")
        return b"".join(chunks)

    def discard_body(self) -> None:
        """After an error answer to a request whose body was not read: read and drop some of it (up to the
        upload limit, a few seconds at most), so that a client still sending gets to read the answer rather than
        a connection reset; then close the connection."""
        self.close_connection = True
        left = min(self._unread, self.server.max_upload_bytes)
        deadline = time.monotonic() + 5.0
        try:
            self.connection.settimeout(1.0)
            while left > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass

    # --------------------------------------------------------------------------------------------- answers

    def send_json(self, status: HTTPStatus, data: dict, headers: dict | None = None) -> None:
        self.send_bytes(status, json.dumps(data, ensure_ascii=False).encode("utf-8"), "application/json", headers)

    def send_bytes(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except OSError as err:  # the client left before reading the answer
            self.close_connection = True
            self.log_message("%s", f"could not answer: {err}")


def make_server(models: dict, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> DemoServer:
    """A DemoServer bound to host:port (0: a free port), not yet serving: call serve_forever()."""
    try:
        return DemoServer((host, port), models, limits)
    except OSError as err:
        raise UserError(f"cannot listen on {host}:{port} ({err.strerror or err}); pick another --port "
                        f"(0 picks a free one) or --host") from None


def serve(bundles: list[str], host: str = "127.0.0.1", port: int = 8000, max_upload_mb: float = 50.0,
          device: str = "auto", max_audio_seconds: float = MAX_AUDIO_SECONDS, max_ink_points: int | None = None,
          batch: int = 16, batch_wait_ms: float = 20.0, max_queue: int = 64, threads: int | None = None) -> None:
    """Load the models, then serve the page until interrupted (Ctrl-C)."""
    checks = (("--max-upload-mb", max_upload_mb, "> 0"), ("--max-audio-seconds", max_audio_seconds, "> 0"),
              ("--batch", batch, ">= 1"), ("--batch-wait-ms", batch_wait_ms, ">= 0"),
              ("--max-queue", max_queue, ">= 1"), ("--threads", threads, ">= 1"),
              ("--max-ink-points", max_ink_points, ">= 2"))
    for name, value, rule in checks:
        bound = float(rule.split()[1])
        if value is not None and not (value >= bound if rule.startswith(">=") else value > bound):
            raise UserError(f"{name} must be {rule}, got {value:g}")
    from .ink import set_max_ink_points

    if max_ink_points is not None:
        set_max_ink_points(int(max_ink_points))
    if threads:
        import torch

        torch.set_num_threads(threads)
    models = load_models(bundles, device)
    limits = Limits(int(max_upload_mb * MB), max_audio_seconds, batch, batch_wait_ms / 1000, max_queue)
    server = make_server(models, host, port, limits)
    for kind, (name, _) in sorted(models.items()):
        what = {"audio": "speech model", "ink": "handwriting model", "writer": "writer (handwriting synthesis)"}[kind]
        print(f"{what}: {name}", file=sys.stderr)
    if "writer" not in models:
        print(f"no writer loaded: the page's Write panel is off (`speechrnn serve an4 unipen {WRITER}` adds one)",
              file=sys.stderr)
    try:
        loopback = ipaddress.ip_address(server.server_address[0]).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        print(f"note: listening on {host}: anyone who can reach this port can use the models; browsers give the "
              f"microphone only to https:// or localhost pages (tunnel with ssh -L to record from elsewhere)",
              file=sys.stderr)
    print(f"serving on {server.url} (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
        for modality, batcher in sorted(server.batchers.items()):
            if batcher.batches:
                print(f"{modality}: {batcher.decoded} requests decoded in {batcher.batches} batches "
                      f"(largest {batcher.largest})", file=sys.stderr)
