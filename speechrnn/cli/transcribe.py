"""`speechrnn transcribe | align`: audio or ink files to text; one recording's word times drawn to PNG."""

import json
import os
import sys
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from ..errors import UserError
from .common import (add_command, add_device_option, add_hotword_option, add_threads_option, parse_hotwords,
                     set_threads)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".nist")
INK_EXTENSIONS = (".json", ".inkml", ".xml")
FORMATS = ["txt", "json", "jsonl", "srt", "vtt"]


def expand_inputs(inputs: list[str], extensions: tuple[str, ...], problems: list | None = None) -> list[str]:
    """Files as given; folders searched recursively for `extensions` (anything so named but a folder: a FIFO or a
    broken link is the reader's to refuse, with its own line); "-" reads paths from stdin, one a line. A folder
    with no such files is a UserError: raised, or appended to `problems` as (folder, error) when given (and the
    others go on)."""
    paths = []
    for item in inputs:
        if item == "-":
            paths += read_stdin()
        elif Path(item).is_dir():
            found = sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in extensions and not p.is_dir())
            if not found:
                problem = UserError(f"{item}: the folder has no files ending in {', '.join(extensions)}; name files "
                                    "or a folder that holds some")
                if problems is None:
                    raise problem
                problems.append((item, problem))
            paths += found
        else:
            paths.append(item)
    return paths


AUDIO_MAGIC = (b"RIFF", b"RIFX", b"fLaC", b"OggS", b"ID3", b"NIST_1A", b"FORM", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2")
STDIN_AUDIO = "stdin"  # the name audio piped into `transcribe -` goes by (stdin.txt under --output)


def read_stdin() -> list[str]:
    """`-`: audio bytes piped in (recognised by their header: wav, flac, ogg, mp3, sphere, aiff) are kept in a
    temporary file, which is the input; anything else is a list of paths, one a line."""
    data = sys.stdin.buffer.read()
    if data.startswith(AUDIO_MAGIC):
        import atexit
        import tempfile

        folder = tempfile.mkdtemp(prefix="speechrnn-stdin-")
        path = Path(folder) / STDIN_AUDIO
        path.write_bytes(data)
        atexit.register(lambda: (path.unlink(missing_ok=True), os.rmdir(folder)))
        return [str(path)]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError("-: stdin is neither audio (wav, flac, ogg, mp3, sphere) nor a list of paths in UTF-8, "
                        "one a line") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def shown(path: str) -> str:
    """How an input is named in the output: as given, and `-` for audio piped into stdin."""
    return "-" if Path(path).name == STDIN_AUDIO and Path(path).parent.name.startswith("speechrnn-stdin-") else path


def output_names(paths: list[str], fmt: str) -> dict[str, Path]:
    """Each input's file name under --output: <stem>.<fmt>; inputs that share a stem are named after their path
    below the folder they have in common, extension kept (a/x.wav, b/x.wav -> a/x.wav.fmt, b/x.wav.fmt; x.mp3,
    x.ogg -> x.mp3.fmt, x.ogg.fmt). Should that still clash (x.wav beside x.wav.wav), every input is named so,
    below the folder all of them share. The same file given twice has one name."""
    real = {path: os.path.abspath(path) for path in paths}
    distinct = sorted(set(real.values()))

    def mirrored(group: list[str]) -> dict[str, Path]:
        top = os.path.commonpath([os.path.dirname(a) for a in group])
        return {a: Path(f"{os.path.relpath(a, top)}.{fmt}") for a in group}

    by_stem: dict[str, list[str]] = {}
    for a in distinct:
        by_stem.setdefault(Path(a).stem, []).append(a)
    names = {}
    for stem, group in by_stem.items():
        names.update(mirrored(group) if len(group) > 1 else {group[0]: Path(f"{stem}.{fmt}")})
    if len(set(names.values())) < len(names):
        names = mirrored(distinct)
    return {path: names[real[path]] for path in paths}


def output_targets(out_dir: Path, paths: list[str], fmt: str, overwrite: bool) -> dict[str, Path]:
    """Each input's output file in out_dir (created), refusing (one line) when any exists already and not
    `overwrite`: outputs from an earlier run are never replaced unasked."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--output {out_dir}: is a file, not a folder; name a folder (it is created if missing)")
    if not out_dir.exists() and out_dir.suffix.lstrip(".").lower() in FORMATS:
        raise UserError(f"--output {out_dir}: looks like a file name, but --output is the folder the outputs go to "
                        f"(DIR/<name>.{fmt}); name a folder, or print to stdout and redirect it")
    targets = {path: out_dir / name for path, name in output_names(paths, fmt).items()}
    there = sorted({str(t) for t in targets.values() if os.path.lexists(t)})
    if there and not overwrite:
        more = f" (and {len(there) - 1} more)" if len(there) > 1 else ""
        raise UserError(f"{there[0]}: exists already{more}; add --overwrite to replace it, or choose another --output")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--output {out_dir}: cannot create the folder ({err.strerror}); choose another") from None
    return targets


def saved_by_torch(path: str) -> bool:
    """A regular file (never a FIFO: it is not opened) that starts as torch.save's files do: a zip archive, or a
    pickle of protocol 2 or later."""
    try:
        if not Path(path).is_file():
            return False
        with open(path, "rb") as head:
            start = head.read(4)
    except OSError:
        return False
    return start.startswith((b"PK\x03\x04", b"\x80"))


def split_bundle(items: list[str]) -> tuple[str | None, list[str]]:
    """[MODEL] INPUT... -> (bundle, inputs). The first item is the model when it is a shipped model's name, is
    named .pt, or is a file that torch.save could have written (a zip archive or a pickle); otherwise every item is
    an input and the bundle is None: each input then goes to the shipped model of its kind (by_content)."""
    from ..pretrained import MODELS

    first = items[0]
    if first in MODELS or first.lower().endswith(".pt") or saved_by_torch(first):
        if len(items) == 1:
            raise UserError(f"{first}: taken as the bundle, but no input follows; name files, folders or - after it")
        return first, items[1:]
    return None, items


def is_ink(path: str) -> bool:
    """Whether a file holds ink, by its content: a JSON object or an XML document (InkML, IAM-OnDB lineStrokes), which
    no audio format starts with; by its extension when it is not a regular file (a FIFO is never opened here) or
    cannot be read (its reader reports why)."""
    try:
        if Path(path).is_file():
            with open(path, "rb") as head:
                return head.read(256).lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"{", b"<"))
    except OSError:
        pass
    return path.lower().endswith(INK_EXTENSIONS)


def by_content(paths: list[str]) -> list[tuple[str, list[str]]]:
    """(shipped bundle, its inputs) for each kind of input present, by content (is_ink): UNIPEN handwriting for ink,
    AN4 speech for the rest (a recording of another extension, .opus say, is the audio reader's to read or refuse)."""
    from ..pretrained import default_bundle

    kinds = {path: "ink" if is_ink(path) else "audio" for path in paths}
    groups = []
    for kind, name in (("audio", "AN4 speech"), ("ink", "UNIPEN handwriting")):
        chosen = [path for path in paths if kinds[path] == kind]
        if chosen:
            bundle = default_bundle(kind)
            share = f", {len(chosen)} of the inputs" if len(chosen) < len(paths) else ""
            print(f"model: {bundle.stem}, shipped with speechrnn ({name}{share}; --model names another)",
                  file=sys.stderr)
            groups.append((str(bundle), chosen))
    return groups


def beam_settings(args) -> tuple[str, dict]:
    """(decoding, beam search keywords) of Recognizer.load for the command's options; options that contradict
    each other are refused."""
    beam_options = [name for name, value in (("--beam", args.beam), ("--lexicon", args.lexicon), ("--lm", args.lm),
                                             ("--lm-weight", args.lm_weight), ("--word-score", args.word_score),
                                             ("--hotword", args.hotword)) if value]
    if args.greedy and beam_options:
        raise UserError(f"--greedy decodes without beam search, so {' and '.join(beam_options)} would do nothing; "
                        "drop --greedy or them")
    beam = {k: v for k, v in (("lexicon", args.lexicon), ("lm", args.lm), ("lm_weight", args.lm_weight),
                              ("word_score", args.word_score)) if v is not None}
    if args.beam:
        beam["beam_size"] = args.beam
    if args.hotword:
        beam["hotwords"] = parse_hotwords(args.hotword)
    decoding = "greedy" if args.greedy else "beam" if (args.beam or args.lexicon or args.lm) else "tuned"
    return decoding, beam


@contextmanager
def seconds_bar(path, seconds: float, disable: bool | None = None):
    """A progress bar in seconds of audio for one long recording (Recognizer.transcribe_each's long_progress);
    `disable` as tqdm's (None: on a terminal only)."""
    from tqdm import tqdm

    with tqdm(total=round(seconds), unit="s", desc=Path(path).name, file=sys.stderr, disable=disable,
              leave=False) as bar:
        yield lambda s: bar.update(round(s) - bar.n)


def verbosity(value: str) -> bool:
    """--verbose's value: True/False (whisper's spelling), yes/no, 1/0."""
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise ValueError(value)


def partial_outputs(targets: dict[str, Path] | None, fmt: str, partials: dict) -> object:
    """Recognizer.transcribe_each's long_groups for --output DIR: a long recording's output is written as its
    groups are decoded, into DIR/<name>.part (output.PartialOutput, txt, jsonl, srt and vtt), kept in `partials`
    (input -> PartialOutput) for _write to finish and rename; a stopped run keeps what was done there."""
    from ..output import PARTIAL_FORMATS, PartialOutput

    if not targets or fmt not in PARTIAL_FORMATS:
        return None

    def start(item) -> object:
        if item in partials:  # the same input given twice: its .part is started again
            partials.pop(item).close()
        try:
            partials[item] = PartialOutput(targets[item], fmt, shown(item))
        except OSError:  # not writable: the output is written whole at the end, or reported then
            return None
        return partials[item].add

    return start


def cmd_transcribe(args) -> None:
    """Transcribe files, folders (searched recursively by extension) or '-' (paths on stdin). Decodes with the
    bundle's tuned beam search when it has one (`speechrnn tune`), else greedily. An input that cannot be used (not
    audio or ink, unreadable, a FIFO or device, an empty folder) is reported on one line and skipped, the others go
    on, and the exit status is 1 if any failed. Recordings of any length work: those over --split-over seconds are
    cut at pauses and decoded segment by segment."""
    from tqdm import tqdm

    from ..output import NEEDS_TIMES, to_dict
    from ..recognizer import Recognizer

    decoding, beam = beam_settings(args)
    set_threads(args.threads)
    bundle, inputs = (args.model, args.inputs) if args.model else split_bundle(args.inputs)
    load = partial(Recognizer.load, device=args.device, decoding=decoding, vad=args.vad, split_over=args.split_over,
                   gate=not args.no_gate, orientation=args.orientation, **beam)
    problems: list[tuple[str, UserError]] = []
    if bundle is None:  # each input to the shipped model of its kind, decided by its content
        paths = expand_inputs(inputs, AUDIO_EXTENSIONS + INK_EXTENSIONS, problems)
        groups = [(load(bundle), chosen) for bundle, chosen in by_content(paths)]
    else:
        recognizer = load(bundle)
        paths = expand_inputs(inputs, INK_EXTENSIONS if recognizer.config.modality == "ink" else AUDIO_EXTENSIONS,
                              problems)
        groups = [(recognizer, paths)]
    if args.format in ("srt", "vtt") and not args.output and len(paths) + len(problems) > 1:
        raise UserError(f"--format {args.format} writes one file per input: give --output DIR for several inputs")
    targets = output_targets(Path(args.output), paths, args.format, args.overwrite) if args.output else None
    for _, problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    failed, documents, written = [item for item, _ in problems], [], set()
    # progress on stderr, on a terminal only; it is cleared before each result is printed, and at the end
    quiet = None if args.verbose is None else not args.verbose  # tqdm's disable: None = on a terminal only
    bar = tqdm(total=len(paths), unit="file", desc="transcribe", disable=quiet if len(paths) > 1 else True,
               file=sys.stderr, leave=False)
    partials: dict = {}  # long inputs' outputs being written as they are decoded (partial_outputs)
    results = ((path, result) for recognizer, chosen in groups
               for path, result in zip(chosen, recognizer.transcribe_each(
                   chosen, args.format in NEEDS_TIMES, chunk=args.chunk,
                   long_progress=partial(seconds_bar, disable=quiet),
                   long_groups=partial_outputs(targets, args.format, partials))))
    for path, result in results:  # a chunk of files in memory at a time; long ones read in blocks
        if isinstance(result, UserError):  # unusable audio or ink: reported, and the other files go on
            bar.write(f"error: {result}", file=sys.stderr)
            failed.append(path)
        elif targets:
            if not _write(result, targets[path], args, written, bar, partials.pop(path, None)):
                failed.append(path)
        else:
            documents += _print_result(path, result, args.format, bar)
        bar.update(1)
    bar.close()
    if documents:
        print(json.dumps([to_dict(r) for r in documents], ensure_ascii=False, indent=2))  # a list, for any number
    if failed:
        print(f"{len(failed)} of {len(paths) + len(problems)} input(s) failed: {', '.join(map(shown, failed))}",
              file=sys.stderr)
        sys.exit(1)


def _print_result(path: str, result, fmt: str, bar) -> list:
    """Print one transcript to stdout in `fmt`, the progress bar cleared first (and drawn again after); json ones
    are returned to be printed together at the end."""
    from ..output import render

    if fmt == "json":
        return [result]
    bar.write(f"{shown(path)}\t{result.text}\n" if fmt == "txt" else render(result, fmt), file=sys.stdout, end="")
    sys.stdout.flush()
    return []


def _write(result, target: Path, args, written: set[Path], bar, partial=None) -> bool:
    """Write one transcript to its file (whole or not at all); False, with an error line, when that failed.
    `written`: the files this run wrote (the same input given twice writes its file again). `partial`: the
    output.PartialOutput a long recording was written to as it was decoded, finished and renamed to `target`."""
    from ..output import render, write_file

    try:
        target.parent.mkdir(parents=True, exist_ok=True)  # a name below the inputs' common folder (output_names)
        if partial:
            partial.finish(result, overwrite=args.overwrite or target in written)
        else:
            write_file(target, render(result, args.format), overwrite=args.overwrite or target in written)
    except FileExistsError:
        bar.write(f"error: {target}: appeared while transcribing; add --overwrite to replace it", file=sys.stderr)
        return False
    except OSError as err:
        bar.write(f"error: {target}: cannot be written ({err.strerror}); check the --output folder",
                  file=sys.stderr)
        return False
    written.add(target)
    return True


def cmd_align(args) -> None:
    """Transcribe one audio file (tuned beam search if the bundle has one, else greedy), align the words to the CTC
    posteriors, print start end confidence word per line, and draw features, posteriors and words to PNG."""
    import torch

    from ..plot import plot_alignment
    from ..recognizer import Recognizer

    recognizer = Recognizer.load(args.bundle, decoding="greedy" if args.greedy else "tuned")
    if recognizer.config.modality != "audio":
        raise UserError(f"{args.bundle}: align draws audio; for ink use `speechrnn plot-ink`")
    wav = recognizer.load_input(args.input)
    (result,) = recognizer.transcribe_inputs([wav], timestamps=True)
    frontend = recognizer.model.frontend
    with torch.no_grad():
        lens = torch.tensor([len(wav)])
        feats, _ = frontend.raw(wav[None], lens)
        log_probs, out_lens = recognizer.model(wav[None], lens)
    hop = recognizer.config.features.hop_length / recognizer.config.features.sample_rate
    out = plot_alignment(feats[0], hop, log_probs[0, : out_lens[0]], recognizer.shift, recognizer.tokenizer.symbols,
                         result.words, args.output, f"{Path(args.input).name}: {result.text}")
    for word in result.words:
        print(f"{word.start:7.2f} {word.end:7.2f}  {word.confidence:.2f}  {word.text}")
    print(f"wrote {out}", file=sys.stderr)


def add_transcribe_parser(commands) -> None:
    p = add_command(
        commands, "transcribe", cmd_transcribe, "transcribe audio or ink files",
        usage="speechrnn transcribe [options] [MODEL] INPUT...",
        epilog="examples: `speechrnn transcribe some.wav other.flac` (the shipped an4 model); `speechrnn transcribe "
               "--model unipen word.json -o out/ -f json`; `cat some.wav | speechrnn transcribe -`; `speechrnn "
               "transcribe inputs/` (audio to the speech model, ink to the handwriting model, by content). formats: txt "
               "(path<TAB>text), json and jsonl (per input an object: path, text, duration, [gate,] words with start "
               "and end in seconds and a confidence; jsonl one a line; json indented, on stdout a list of "
               "them), srt and vtt (subtitles). With --output DIR, one file per input: DIR/<stem>.<format> (see "
               "--output for inputs that share a stem).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a model first (a shipped model's name, `speechrnn models`, or a .pt bundle file; or give it "
                        "with --model; left out: each input goes to the shipped model of its kind, by its content: "
                        "ink (JSON, XML) to the UNIPEN handwriting model, the rest to the AN4 speech model), then "
                        "audio files (wav, flac, ogg, mp3, sphere) for a speech model, "
                        "ink files (.json, .inkml, IAM-OnDB .xml) for a handwriting model, folders of them, or - for "
                        "stdin: audio piped in, or paths one a line")
    p.add_argument("-m", "--model", help="the model, as a name or a bundle file (then every INPUT is an input)")
    p.add_argument("-f", "--output_format", "--output-format", "--format", dest="format", choices=FORMATS,
                   default="txt", help="txt (default), json, jsonl, srt or vtt")
    p.add_argument("-o", "--output_dir", "--output-dir", "--output", dest="output", metavar="DIR",
                   help="write one file per input into DIR instead of printing: DIR/<stem>.<format>; inputs that "
                        "share a stem are named after their path below the folder they have in common, extension "
                        "kept (a/x.wav, b/x.wav -> DIR/a/x.wav.txt, DIR/b/x.wav.txt; x.mp3, x.ogg -> DIR/x.mp3.txt, "
                        "DIR/x.ogg.txt). Files are written whole (a temporary file, renamed; a long recording's "
                        "into DIR/<name>.part as it is decoded, so a stopped run keeps what was done); an output that "
                        "exists already is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help="replace output files that exist in --output DIR")
    add_device_option(p, default="auto", meaning="default: auto, cuda when present, else cpu")
    add_threads_option(p)
    p.add_argument("--verbose", type=verbosity, metavar="True|False",
                   help="progress bars on stderr: True always, False never (default: on a terminal only)")
    p.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle has a tuned decoder")
    p.add_argument("--beam", type=int, metavar="N", help="beam search with N hypotheses (default of tuned: its own)")
    p.add_argument("--lexicon", help="beam search over this lexicon's words (`speechrnn lm lexicon`)")
    p.add_argument("--lm", help="ARPA LM for beam search (word LM with --lexicon, char LM without)")
    p.add_argument("--lm-weight", type=float, help="weight of the LM's log10 scores")
    p.add_argument("--word-score", type=float, help="score added per word (with --lexicon)")
    add_hotword_option(p)
    orientation = p.add_mutually_exclusive_group()
    orientation.add_argument("--y-down", dest="orientation", action="store_const", const="y-down", default="auto",
                             help="ink: y grows downwards (screen coordinates), whatever the files say")
    orientation.add_argument("--y-up", dest="orientation", action="store_const", const="y-up",
                             help="ink: y grows upwards (tablets, UNIPEN), whatever the files say. Without either, "
                                  "each ink is read as its file states (IAM-OnDB y down, UNIPEN y up, JSON's "
                                  "\"y_down\", InkML's Y orientation), and when it does not say, both ways, keeping "
                                  "the reading that looks upright")
    p.add_argument("--chunk", type=int, default=64, help="files read and decoded at a time (64)")
    p.add_argument("--split-over", type=float, default=30.0, metavar="SECONDS",
                   help="audio longer than this (default 30 s; minutes or hours are fine) is read in blocks, cut "
                        "into segments at pauses by the VAD and decoded segment by segment, with bounded memory; "
                        "word times stay relative to the start of the file")
    p.add_argument("--no-gate", action="store_true",
                   help="decode every input: by default silence, noise and clicks (a dot of ink) give an empty "
                        "transcript, the gate's decision in json output (speechrnn/gate.py)")
    p.add_argument("--vad", default="energy", metavar="energy|BUNDLE",
                   help="voice-activity detector for --split-over: 'energy' (log energy against an adaptive noise "
                        "floor, the default) or a frame-tagger bundle (`speechrnn tagger train`)")


def add_align_parser(commands) -> None:
    p = add_command(commands, "align", cmd_align, "word times and confidences of one recording, drawn to PNG")
    p.add_argument("bundle", help="speech model bundle")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle has a tuned decoder")


def add_parsers(commands) -> None:
    add_transcribe_parser(commands)
    add_align_parser(commands)
