"""`speechrnn transcribe | align`: audio or ink files to text; one recording's word times drawn to PNG."""

import json
import sys
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .common import add_command, add_device_option, add_hotword_option, parse_hotwords

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".nist")
INK_EXTENSIONS = (".json", ".inkml", ".xml")
FORMATS = ["txt", "json", "jsonl", "srt", "vtt"]


def expand_inputs(inputs: list[str], extensions: tuple[str, ...]) -> list[str]:
    """Files as given; folders searched recursively for `extensions`; "-" reads paths from stdin, one a line."""
    paths = []
    for item in inputs:
        if item == "-":
            paths += [line.strip() for line in sys.stdin if line.strip()]
        elif Path(item).is_dir():
            found = sorted(str(p) for p in Path(item).rglob("*") if p.suffix.lower() in extensions and p.is_file())
            if not found:
                raise UserError(f"{item}: the folder has no files ending in {', '.join(extensions)}")
            paths += found
        else:
            paths.append(item)
    return paths


def split_bundle(items: list[str]) -> tuple[str, list[str]]:
    """[BUNDLE] INPUT... -> (bundle, inputs). The first item is the bundle unless it is an audio or ink file, a
    folder or '-'; then the shipped model for the inputs' kind is used: UNIPEN handwriting when they are all ink
    files, else AN4 speech."""
    from ..pretrained import default_bundle

    first = items[0]
    if not (first == "-" or Path(first).is_dir() or first.lower().endswith(AUDIO_EXTENSIONS + INK_EXTENSIONS)):
        if len(items) == 1:
            raise UserError(f"{first}: taken as the bundle, but no input follows; name files, folders or - after it")
        return first, items[1:]
    ink = all(item.lower().endswith(INK_EXTENSIONS) for item in items)
    bundle = default_bundle("ink" if ink else "audio")
    print(f"model: {bundle.name}, shipped with speechrnn ({'UNIPEN handwriting' if ink else 'AN4 speech'}; "
          "name a bundle first to use another)", file=sys.stderr)
    return str(bundle), items


def beam_settings(args) -> tuple[str, dict]:
    """(decoding, beam search keywords) of Recognizer.load for the command's options."""
    beam = {k: v for k, v in (("lexicon", args.lexicon), ("lm", args.lm), ("lm_weight", args.lm_weight),
                              ("word_score", args.word_score)) if v is not None}
    if args.beam:
        beam["beam_size"] = args.beam
    if args.hotword:
        beam["hotwords"] = parse_hotwords(args.hotword)
    decoding = "greedy" if args.greedy else "beam" if (args.beam or args.lexicon or args.lm) else "tuned"
    return decoding, beam


@contextmanager
def seconds_bar(path, seconds: float):
    """A progress bar in seconds of audio for one long recording (Recognizer.transcribe_each's long_progress)."""
    from tqdm import tqdm

    with tqdm(total=round(seconds), unit="s", desc=Path(path).name, file=sys.stderr, disable=None, leave=False) as bar:
        yield lambda s: bar.update(round(s) - bar.n)


def cmd_transcribe(args) -> None:
    """Transcribe files, folders (searched recursively by extension) or '-' (paths on stdin). Decodes with the
    bundle's tuned beam search when it has one (`speechrnn tune`), else greedily. Unreadable files are reported and
    skipped; the exit status is 1 if any failed. Recordings of any length work: those over --split-over seconds are
    cut at pauses and decoded segment by segment."""
    from tqdm import tqdm

    from ..output import NEEDS_TIMES, render, to_dict
    from ..recognizer import Recognizer

    if args.format in ("srt", "vtt") and not args.output and len(args.inputs) > 1:
        raise UserError(f"--format {args.format} writes one file per input: give --output DIR for several inputs")
    decoding, beam = beam_settings(args)
    args.bundle, args.inputs = split_bundle(args.inputs)
    recognizer = Recognizer.load(args.bundle, device=args.device or "cpu", decoding=decoding, vad=args.vad,
                                 split_over=args.split_over, **beam)
    paths = expand_inputs(args.inputs, INK_EXTENSIONS if recognizer.config.modality == "ink" else AUDIO_EXTENSIONS)
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed, documents = [], []
    bar = tqdm(total=len(paths), unit="file", desc="transcribe", disable=None if len(paths) > 1 else True,
               file=sys.stderr)
    results = recognizer.transcribe_each(paths, args.format in NEEDS_TIMES, chunk=args.chunk, long_progress=seconds_bar)
    for path, result in zip(paths, results):  # a chunk of files in memory at a time; long ones read in blocks
        if isinstance(result, UserError):  # unreadable audio or ink: reported, and the other files go on
            bar.write(f"error: {result}", file=sys.stderr)
            failed.append(path)
        elif out_dir:
            (out_dir / f"{Path(path).stem}.{args.format}").write_text(render(result, args.format), encoding="utf-8")
        elif args.format == "txt":
            print(f"{path}\t{result.text}", flush=True)
        elif args.format == "json":
            documents.append(result)
        else:
            print(render(result, args.format), end="", flush=True)
        bar.update(1)
    bar.close()
    if documents:
        print(json.dumps([to_dict(r) for r in documents] if len(documents) > 1 else to_dict(documents[0]),
                         ensure_ascii=False, indent=2))
    if failed:
        print(f"{len(failed)} of {len(paths)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


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
        usage="speechrnn transcribe [options] [BUNDLE] INPUT...",
        epilog="formats: txt (path<TAB>text), jsonl (a JSON object a line), json (with word start/end times in "
               "seconds and confidences), srt and vtt (subtitles). With --output DIR, one file per input: "
               "DIR/<name>.<format>.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a model bundle (.pt; left out: the shipped AN4 speech model, or the UNIPEN handwriting model "
                        "for ink files), then audio files (wav, flac, ogg, mp3, sphere) for a speech bundle, ink "
                        "files (.json, .inkml, IAM-OnDB .xml) for a handwriting bundle, folders of them, or - to read "
                        "paths from stdin")
    p.add_argument("--format", choices=FORMATS, default="txt")
    p.add_argument("--output", metavar="DIR", help="write one file per input into DIR instead of printing")
    add_device_option(p, meaning="default: cpu")
    p.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle has a tuned decoder")
    p.add_argument("--beam", type=int, metavar="N", help="beam search with N hypotheses (default of tuned: its own)")
    p.add_argument("--lexicon", help="beam search over this lexicon's words (`speechrnn lm lexicon`)")
    p.add_argument("--lm", help="ARPA LM for beam search (word LM with --lexicon, char LM without)")
    p.add_argument("--lm-weight", type=float, help="weight of the LM's log10 scores")
    p.add_argument("--word-score", type=float, help="score added per word (with --lexicon)")
    add_hotword_option(p)
    p.add_argument("--chunk", type=int, default=64, help="files read and decoded at a time (64)")
    p.add_argument("--split-over", type=float, default=30.0, metavar="SECONDS",
                   help="audio longer than this (default 30 s; minutes or hours are fine) is read in blocks, cut "
                        "into segments at pauses by the VAD and decoded segment by segment, with bounded memory; "
                        "word times stay relative to the start of the file")
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
