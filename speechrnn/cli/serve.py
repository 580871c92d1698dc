"""`speechrnn serve`: a web page to try models."""

from .common import add_command, add_device_option


def cmd_serve(args) -> None:
    """Serve one page where you record speech (Record, then Stop; or choose an audio file) and write with a mouse,
    pen or finger (Recognise), and see what the models read, with word times and confidences for speech; and, with
    a writer (a handwriting synthesis bundle, such as the shipped unipen-writer), type words and watch them written
    (Write), in the writer's hand or in the style of what you wrote on the canvas (Write in my style). Open the
    printed address in a browser; Ctrl-C stops. The page calls a JSON API, usable without it: POST /api/transcribe
    (an audio file as the body), POST /api/ink ({"strokes": [[[x, y, t], ...], ...]}) and POST /api/write
    ({"text": "hello", "bias": 1.0, "seed": 0}, optionally "temperature", "style" (an ink JSON with "y_down") and
    "style_text"; answers {"text", "strokes": [[[x, y], ...], ...] in writing heights, y up, "seconds"}); see
    speechrnn/serve.py."""
    from ..serve import serve

    serve(args.bundles, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, device=args.device,
          max_audio_seconds=args.max_audio_seconds, max_ink_points=args.max_ink_points, batch=args.batch,
          batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue, threads=args.threads)


def add_parsers(commands) -> None:
    p = add_command(commands, "serve", cmd_serve, "a web page to try models: record speech, write on a canvas",
                    epilog="Browsers give the microphone only to https:// and localhost pages: to record from another "
                           "machine, tunnel the port (ssh -L 8000:127.0.0.1:8000 HOST) rather than using --host. "
                           "POST /api/write takes JSON {\"text\": \"hello\", \"bias\": 1.0, \"seed\": 0} (bias 0 to 10, "
                           "temperature 0 to 2, seed an integer; optional \"style\": an ink JSON with \"y_down\", and "
                           "\"style_text\": what it says, else the handwriting model reads it) and answers "
                           "{\"text\", \"strokes\": [[[x, y], ...], ...] (writing heights, y up), \"seconds\"}.")
    p.add_argument("bundles", nargs="*", metavar="BUNDLE",
                   help="a speech, a handwriting and/or a writer (handwriting synthesis) bundle, files or shipped "
                        "names (default: the shipped an4 and unipen models, and unipen-writer when installed)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                        "network, without any access control)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    limits = (  # option, type, default, metavar, help
        ("--max-upload-mb", float, 50.0, "MB", "largest upload accepted, in MB (default 50, about 8 minutes of 48 kHz "
                                               "16-bit audio); larger ones get HTTP 413"),
        ("--max-audio-seconds", float, 120.0, "S", "longest recording per request, in seconds (default 120); longer "
                                                   "ones get HTTP 413"),
        ("--max-ink-points", int, None, "N", "most points in one ink (default 100000, or $SPEECHRNN_MAX_INK_POINTS); "
                                             "more get HTTP 413"),
        ("--batch", int, 16, "N", "requests to one model decoded together at most (default 16; 1: one at a time)"),
        ("--batch-wait-ms", float, 20.0, "MS", "how long a batch waits at most for requests being received (default "
                                               "20 ms; it does not wait when none are)"),
        ("--max-queue", int, 64, "N", "requests waiting per model (default 64); more get HTTP 503 with Retry-After"),
        ("--threads", int, None, "N", "torch threads for the models (default: torch's, one per core)"))
    for option, kind, default, metavar, text in limits:
        p.add_argument(option, type=kind, default=default, metavar=metavar, help=text)
    add_device_option(p, default="auto")
