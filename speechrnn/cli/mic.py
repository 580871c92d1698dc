"""`speechrnn mic`: live transcription from the microphone, or from a file played through the same path."""

from .common import add_command, add_device_option, add_threads_option

# speechrnn.mic's BLOCK_SECONDS, PARTIAL_EVERY and MIC_RULES, written out here so that building the parser needs
# neither numpy nor torch (tests/test_cli.py checks that they agree).
BLOCK_SECONDS = 0.1
PARTIAL_EVERY = 0.5
THRESHOLD, MIN_SILENCE, MAX_SEGMENT = 0.5, 0.3, 25.0
DESCRIPTION = (
    "Listen on the default input device, cut the audio into speech segments with a voice-activity detector, show a "
    "partial hypothesis while a segment is open and print its final text when it closes ([start - end] TEXT "
    "(latency), times in seconds from the start). Ctrl-C (or the end of --input) prints a summary: segments, words, "
    "audio, mean latency. Partials: a unidirectional model (model.rnn.bidirectional=false) streams them chunk by "
    f"chunk, every {BLOCK_SECONDS:g} s block (state carried; 42.5 ms lookahead, plus 40 ms per frame of "
    "model.rnn.lookahead when trained with one; the summary gives compute per chunk); a bidirectional one (the "
    "shipped models) needs the segment's end, so its partials are greedy re-decodes of the whole open segment every "
    f"{PARTIAL_EVERY:g} s of audio. Finals use the bundle's tuned beam search unless --greedy. Latency: from the "
    "arrival of the audio that closes a segment (--min-silence after the speech ends) to its final text.")


def cmd_mic(args) -> None:
    """Live transcription (DESCRIPTION)."""
    from ..mic import transcribe_live

    transcribe_live(args.bundle, input_file=args.input, fast=args.fast, vad=args.vad, threshold=args.threshold,
                    min_silence=args.min_silence, max_segment=args.max_segment, greedy=args.greedy,
                    device=args.device, threads=args.threads)


def add_parsers(commands) -> None:
    p = add_command(commands, "mic", cmd_mic,
                    "live transcription from the microphone (or a file played through the same path)",
                    description=DESCRIPTION,
                    epilog="Needs pip install 'speechrnn[mic]' and the PortAudio library (Debian/Ubuntu: apt-get "
                           "install libportaudio2); --input works without them.")
    p.add_argument("bundle", nargs="?", help="speech model bundle (default: the shipped AN4 model)")
    p.add_argument("--input", metavar="FILE", help="play this audio file instead of listening, in blocks of "
                                                    f"{BLOCK_SECONDS:g} s as the microphone gives them")
    p.add_argument("--fast", action="store_true", help="with --input: as fast as possible, not at real-time pace")
    p.add_argument("--vad", default="energy", metavar="energy|BUNDLE",
                   help="voice-activity detector: 'energy' (default) or a frame-tagger bundle")
    p.add_argument("--threshold", type=float, default=THRESHOLD,
                   help=f"speech probability that counts as speech ({THRESHOLD:g})")
    p.add_argument("--min-silence", type=float, default=MIN_SILENCE, metavar="SECONDS",
                   help=f"silence that closes a segment ({MIN_SILENCE:g} s)")
    p.add_argument("--max-segment", type=float, default=MAX_SEGMENT, metavar="SECONDS",
                   help=f"a segment without a pause is cut at its quietest point after this long ({MAX_SEGMENT:g} s)")
    p.add_argument("--greedy", action="store_true", help="greedy final decoding even if the bundle has a tuned "
                                                        "decoder")
    add_device_option(p, default="auto")
    add_threads_option(p, default=1, meaning="default 1")
