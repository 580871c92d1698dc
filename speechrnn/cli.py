"""`speechrnn` command line: train | eval | stats | transcribe | lm | tune | plot | plot-ink | align | add-aligner |
export |
classify | tagger | serve | mic."""

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError

EPILOG = "Run `speechrnn COMMAND --help` for a command's options. Recipes: recipes/<corpus>/run.sh."


HOTWORD_BOOST = 5.0


def parse_hotwords(items: list[str] | None) -> dict[str, float]:
    """["WORD", "OTHER:2.5"] -> {"WORD": 5.0, "OTHER": 2.5}"""
    hotwords = {}
    for item in items or []:
        word, _, boost = item.partition(":")
        try:
            hotwords[word] = float(boost) if boost else HOTWORD_BOOST
        except ValueError:
            raise UserError(f"--hotword {item!r}: the boost after ':' must be a number, e.g. {word}:3.0") from None
    return hotwords


def add_hotword_option(p) -> None:
    p.add_argument("--hotword", action="append", metavar="WORD[:BOOST]",
                   help=f"raise WORD's score by BOOST (default {HOTWORD_BOOST:g}, natural-log units) in beam search "
                        "over a lexicon; words missing from the lexicon are added; repeat for several")


def cmd_train(args) -> None:
    from .config import load_config
    from .train import train

    config = load_config(args.config, args.overrides)
    if args.device:
        config.train.device = args.device
    train(config, resume=args.resume)


def cmd_stats(args) -> None:
    """Global CMVN statistics of the training manifest, for data.cmvn."""
    import torch

    from .bundle import atomic_save
    from .config import load_config
    from .data import load_dataset, manifest_texts
    from .model import build_model
    from .text import Tokenizer
    from .train import compute_cmvn, make_loader

    config = load_config(args.config, args.overrides)
    tokenizer = Tokenizer.build(manifest_texts(config.data.train_manifest), config.text)
    dataset = load_dataset(config, config.data.train_manifest, tokenizer)
    frontend = build_model(len(tokenizer), config).frontend
    mean, std = compute_cmvn(frontend, make_loader(dataset, config, False, 0), torch.device("cpu"))
    atomic_save({"mean": mean, "std": std}, args.output)
    print(f"CMVN statistics of {len(dataset)} samples written to {args.output}", file=sys.stderr)


def cmd_eval(args) -> None:
    import torch

    from .data import load_dataset, manifest_texts
    from .metrics import write_report
    from .recognizer import load_model
    from .train import evaluate, make_loader, select_device

    device = select_device(args.device or "auto")
    model, tokenizer, config, extra = load_model(args.bundle, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config.data.num_workers = 0
    loader = make_loader(load_dataset(config, args.manifest, tokenizer), config, False, 0)
    tokenizer.report_unknown(args.manifest)
    beam = None
    if args.tuned:
        from .tune import stored_decoder

        beam = stored_decoder(extra, tokenizer, workers=2, hotwords=parse_hotwords(args.hotword))
        if beam is None:
            raise UserError(f"{args.bundle}: the bundle has no tuned decoder; run `speechrnn tune` first")
    elif args.beam:
        from .decode import BeamConfig, BeamDecoder

        beam = BeamDecoder(tokenizer, BeamConfig(beam_size=args.beam, lm=args.lm, lexicon=args.lexicon,
                                                 lm_weight=args.lm_weight, word_score=args.word_score,
                                                 hotwords=parse_hotwords(args.hotword)))
    elif args.hotword:
        raise UserError("--hotword works with beam search: add --beam N --lexicon FILE, or --tuned")
    result = evaluate(model, loader, tokenizer, device, beam)
    name = args.name or Path(args.manifest).stem
    rates = write_report(args.out, name, result["ids"], result["refs"], result["hyps"])
    missing = len(manifest_texts(args.manifest)) - len(result["ids"])
    print(f"{name}: {rates.summary()}" + (f" ({missing} unreadable utterance(s) not scored)" if missing else ""))
    if missing:
        sys.exit(1)


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".sph", ".nist")
INK_EXTENSIONS = (".json", ".inkml", ".xml")


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
    from .pretrained import default_bundle

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


def cmd_transcribe(args) -> None:
    from tqdm import tqdm

    from .output import NEEDS_TIMES, render
    from .recognizer import Recognizer

    if args.format in ("srt", "vtt") and not args.output and len(args.inputs) > 1:
        raise UserError(f"--format {args.format} writes one file per input: give --output DIR for several inputs")
    beam = {k: v for k, v in (("lexicon", args.lexicon), ("lm", args.lm), ("lm_weight", args.lm_weight),
                              ("word_score", args.word_score)) if v is not None}
    if args.beam:
        beam["beam_size"] = args.beam
    if args.hotword:
        beam["hotwords"] = parse_hotwords(args.hotword)
    decoding = "greedy" if args.greedy else "beam" if (args.beam or args.lexicon or args.lm) else "tuned"
    args.bundle, args.inputs = split_bundle(args.inputs)
    recognizer = Recognizer.load(args.bundle, device=args.device or "cpu", decoding=decoding, **beam)
    ink = recognizer.config.modality == "ink"
    if not ink:
        from .vad import load_vad

        recognizer.vad, recognizer.split_over = load_vad(args.vad, args.device or "cpu"), args.split_over
    paths = expand_inputs(args.inputs, INK_EXTENSIONS if ink else AUDIO_EXTENSIONS)
    timestamps = args.format in NEEDS_TIMES
    out_dir = Path(args.output) if args.output else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    failed, documents = [], []
    bar = tqdm(total=len(paths), unit="file", desc="transcribe", disable=None if len(paths) > 1 else True,
               file=sys.stderr)
    for start in range(0, len(paths), args.chunk):  # a chunk of files in memory at a time
        inputs, done = [], []  # done: (path, transcript of a long file, or None: decoded with `inputs`)
        for path in paths[start:start + args.chunk]:
            try:
                if recognizer.is_long(path):  # read in blocks and cut at pauses, never whole in memory
                    with tqdm(total=round(recognizer.long_seconds(path)), unit="s", desc=Path(path).name,
                              file=sys.stderr, disable=None, leave=False) as seconds:
                        done.append((path, recognizer.transcribe_long(
                            path, timestamps, progress=lambda s, bar=seconds: bar.update(round(s) - bar.n))))
                else:
                    inputs.append(recognizer.load_input(path))
                    done.append((path, None))
            except UserError as err:  # unreadable audio or ink: reported, and the other files go on
                bar.write(f"error: {err}", file=sys.stderr)
                failed.append(path)
        short = iter(recognizer.transcribe_inputs(inputs, timestamps))
        for path, result in done:
            result = result or next(short)
            result.name = path
            if out_dir:
                (out_dir / f"{Path(path).stem}.{args.format}").write_text(render(result, args.format), encoding="utf-8")
            elif args.format == "txt":
                print(f"{path}\t{result.text}", flush=True)
            elif args.format == "json":
                documents.append(result)
            else:
                print(render(result, args.format), end="", flush=True)
        bar.update(len(paths[start:start + args.chunk]))
    bar.close()
    if documents:
        from .output import to_dict

        print(json.dumps([to_dict(r) for r in documents] if len(documents) > 1 else to_dict(documents[0]),
                         ensure_ascii=False, indent=2))
    if failed:
        print(f"{len(failed)} of {len(paths)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
        sys.exit(1)


def cmd_lm_build(args) -> None:
    from . import lm

    print(lm.run(args))


def cmd_lm_lexicon(args) -> None:
    from .bundle import load_bundle
    from .decode import write_lexicon
    from .lm import read_sentences
    from .text import Tokenizer

    tokenizer = Tokenizer.from_dict(load_bundle(args.bundle)["tokenizer"])
    words = [word for sentence in read_sentences(args.text) for word in sentence.split()]
    written, skipped = write_lexicon(words, tokenizer, args.output)
    print(f"wrote {args.output}: {written} words spelled with {args.bundle}'s characters ({skipped} left out)")


def cmd_plot(args) -> None:
    from .plot import plot_training_log

    out = plot_training_log(args.log, args.output)
    print(f"wrote {out}", file=sys.stderr)


def cmd_align(args) -> None:
    import torch

    from .plot import plot_alignment
    from .recognizer import Recognizer

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


def cmd_add_aligner(args) -> None:
    from .recognizer import add_aligner

    out = args.output or args.bundle
    described = add_aligner(args.bundle, args.aligner, out, args.end_aligner)
    gives = {"aligner": ("starts" if args.end_aligner else "starts and ends", args.aligner),
             "aligner_end": ("ends", args.end_aligner)}
    for role, aligner in described.items():
        rnn = aligner["config"]["model"]["rnn"]
        way = "bidirectional" if rnn["bidirectional"] else "right-to-left" if rnn.get("reverse") else "left-to-right"
        print(f"{out}: word {gives[role][0]} from {gives[role][1]} ({rnn['cell']} {rnn['num_layers']} x {way} "
              f"{rnn['hidden_size']}, lookahead {rnn.get('lookahead', 0)})", file=sys.stderr)


def cmd_export(args) -> None:
    if not (args.onnx or args.int8):
        raise UserError("export: name an output, --onnx OUT.onnx and/or --int8 OUT.pt")
    if args.onnx:
        from .export import export_onnx

        print(f"wrote {export_onnx(args.bundle, args.onnx, opset=args.opset, inputs=args.inputs)}", file=sys.stderr)
    if args.int8:
        from .bundle import repack_bundle

        repack_bundle(args.bundle, args.int8, "int8")
        print(f"wrote {args.int8} ({Path(args.int8).stat().st_size / 1e6:.1f} MB)", file=sys.stderr)


def cmd_plot_ink(args) -> None:
    from .config import Config
    from .data import INK_FIELDS, read_manifest
    from .ink import check_ink, load_ink, read_ink
    from .plot import plot_inks

    inks, names = [], []
    for path in args.inputs:
        inks.append(read_ink(path))
        names.append(Path(path).name)
    if args.manifest:
        for entry in read_manifest(args.manifest, INK_FIELDS)[:: args.stride][: args.first]:
            inks.append(load_ink(entry))
            names.append(entry["id"])
    if not inks:
        raise UserError("plot-ink: give ink files and/or --manifest")
    inks = [check_ink(ink, name) for ink, name in zip(inks, names)]
    config = Config().ink
    titles = [f"{name}: \"{ink.text}\"" if ink.text else name for ink, name in zip(inks, names)]
    if args.bundle:
        from .recognizer import Recognizer

        recognizer = Recognizer.load(args.bundle)
        if recognizer.config.modality != "ink":
            raise UserError(f"{args.bundle}: a {recognizer.config.modality} model, not a handwriting one")
        config = recognizer.config.ink
        read = recognizer.transcribe_inks(inks)
        titles = [f"{title} -> read \"{text}\"" for title, text in zip(titles, read)]
    elif args.flip_y:
        config.flip_y = True
    out = plot_inks(inks, args.output, config, titles)
    print(f"wrote {out}", file=sys.stderr)


def cmd_serve(args) -> None:
    from .serve import serve

    serve(args.bundles, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb, device=args.device)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechrnn", description=__doc__, epilog=EPILOG)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a CTC model from a YAML config",
                            description="Train a CTC recognizer. Writes last.pt/best.pt checkpoints, "
                                        "train_log.jsonl and the bundle model.pt under train.exp_dir.")
    p.add_argument("config", help="YAML config (see recipes/*/conf/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.rnn.cell=gru train.max_epochs=30")
    p.add_argument("--resume", action="store_true", help="continue from exp_dir/last.pt if it exists")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("stats", help="global CMVN statistics of the training set",
                            description="Compute per-dimension feature mean/std over data.train_manifest.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("-o", "--output", required=True, help="output file (.pt), referenced by data.cmvn")
    p.set_defaults(run=cmd_stats)

    p = commands.add_parser("eval", help="greedy-decode a manifest and score WER/CER",
                            description="Writes NAME.per_utt.jsonl (ref, hyp, errors) and NAME.summary.json to --out "
                                        "and prints the summary line.")
    p.add_argument("bundle", help="model bundle (exp/.../model.pt)")
    p.add_argument("manifest", help="JSONL manifest with audio_filepath, duration, text")
    p.add_argument("--out", default=".", help="folder for the reports (default: current folder)")
    p.add_argument("--name", help="report name (default: the manifest's file name)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--beam", type=int, default=0, metavar="N",
                   help="beam search with N hypotheses (flashlight-text) instead of greedy decoding")
    p.add_argument("--lexicon", help="with --beam: lexicon file (WORD<TAB>c h a r s |), words outside it are never output")
    p.add_argument("--lm", help="with --beam: ARPA n-gram LM (`speechrnn lm build`); a word LM needs --lexicon, "
                                "a char LM (--unit char) must go without")
    p.add_argument("--lm-weight", type=float, default=0.5, help="with --lm: weight of the LM's log10 scores (0.5)")
    p.add_argument("--word-score", type=float, default=0.0, help="with --lexicon: score added per word (0)")
    p.add_argument("--tuned", action="store_true", help="decode with the beam search stored by `speechrnn tune`")
    add_hotword_option(p)
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser(
        "transcribe", help="transcribe audio or ink files", usage="speechrnn transcribe [options] [BUNDLE] INPUT...",
        description="Transcribe files, folders (searched recursively by extension) or '-' (paths on stdin). Decodes "
                    "with the bundle's tuned beam search when it has one (`speechrnn tune`), else greedily. Unreadable "
                    "files are reported and skipped; the exit status is 1 if any failed. Recordings of any length work: "
                    "those over --split-over seconds are cut at pauses and decoded segment by segment.",
        epilog="formats: txt (path<TAB>text), jsonl (a JSON object a line), json (with word start/end times in "
               "seconds and confidences), srt and vtt (subtitles). With --output DIR, one file per input: "
               "DIR/<name>.<format>.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="a model bundle (.pt; left out: the shipped AN4 speech model, or the UNIPEN handwriting model "
                        "for ink files), then audio files (wav, flac, ogg, mp3, sphere) for a speech bundle, ink "
                        "files (.json, .inkml, IAM-OnDB .xml) for a handwriting bundle, folders of them, or - to read "
                        "paths from stdin")
    p.add_argument("--format", choices=["txt", "json", "jsonl", "srt", "vtt"], default="txt")
    p.add_argument("--output", metavar="DIR", help="write one file per input into DIR instead of printing")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
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
    p.set_defaults(run=cmd_transcribe)

    p = commands.add_parser("lm", help="n-gram language models", description="n-gram language models.")
    lm_commands = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")
    from .lm import build_parser as lm_build_parser

    p = lm_build_parser(lm_commands.add_parser(
        "build", help="build a modified Kneser-Ney n-gram LM from text, written as ARPA",
        description="Interpolated modified Kneser-Ney n-gram LM (as KenLM's lmplz), written as ARPA text that "
                    "the CTC beam decoder loads. Text is taken as it is: normalise it the way the model's "
                    "tokenizer does (AN4: upper case)."))
    p.set_defaults(run=cmd_lm_build)
    p = lm_commands.add_parser("lexicon", help="write the lexicon of a text's words for `eval --beam --lexicon`",
                               description="One line per distinct word, spelled with the model's characters "
                                           "(flashlight's WORD<TAB>W O R D | format).")
    p.add_argument("bundle", help="model bundle whose characters spell the words")
    p.add_argument("text", help="text file (one sentence per line) or JSONL manifest (.jsonl) with \"text\"")
    p.add_argument("-o", "--output", required=True, help="lexicon file to write")
    p.set_defaults(run=cmd_lm_lexicon)

    p = commands.add_parser("align", help="word times and confidences of one recording, drawn to PNG",
                            description="Transcribe one audio file (tuned beam search if the bundle has one, else "
                                        "greedy), align the words to the CTC posteriors, print start end "
                                        "confidence word per line, and draw features, posteriors and words to PNG.")
    p.add_argument("bundle", help="speech model bundle")
    p.add_argument("input", help="audio file")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle has a tuned decoder")
    p.set_defaults(run=cmd_align)

    p = commands.add_parser("add-aligner", help="put aligners in a bundle: the models its word times come from",
                            description="Store the recognizer bundle ALIGNER (and END_ALIGNER) inside BUNDLE; "
                                        "transcribe, align, mic and serve then take word start times from "
                                        "ALIGNER's CTC alignment and end times from END_ALIGNER's (ALIGNER's when "
                                        "not given); confidences stay the recognizer's. recipes/an4/aligner.sh "
                                        "trains a left-to-right aligner for starts and a right-to-left one for ends "
                                        "(a bidirectional recognizer puts each utterance's first character at "
                                        "frame 0). All must share vocabulary, features and frame rate.")
    p.add_argument("bundle", help="recognizer bundle")
    p.add_argument("aligner", help="aligner bundle for word starts (and ends, alone)")
    p.add_argument("end_aligner", nargs="?", help="aligner bundle for word ends")
    p.add_argument("-o", "--output", help="bundle to write (default: rewrite BUNDLE in place, atomically)")
    p.set_defaults(run=cmd_add_aligner)

    p = commands.add_parser("export", help="export a bundle to ONNX, or as a 4x smaller int8 bundle",
                            description="Write the bundle's model as ONNX with dynamic batch and time axes: inputs "
                                        "(B, N) waveforms [or (B, T, F) features] + input_lens (B,) -> log_probs "
                                        "(B, T', V) + output_lens (B,); vocabulary and feature settings are in the "
                                        "model's metadata. Checked against torch with onnxruntime. "
                                        "Needs pip install 'speechrnn[onnx]'. --int8 writes a bundle whose "
                                        "weight matrices are int8 with a scale per row (about 4x smaller; loaded "
                                        "back as float32, so it runs everywhere a bundle does).")
    p.add_argument("bundle", help="model bundle")
    p.add_argument("--onnx", metavar="OUT", help="ONNX file to write (its folder is created)")
    p.add_argument("--int8", metavar="OUT", help="int8-weight bundle to write (e.g. for shipping a model)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 11..20 (default 17)")
    p.add_argument("--inputs", choices=["waveform", "features"], default="waveform",
                   help="audio bundles: the graph starts at the waveform (default) or at the features before CMVN "
                        "(speechrnn.export.raw_audio_features computes them); ink bundles take stroke features")
    p.set_defaults(run=cmd_export)

    commands.add_parser("classify", help="utterance classification (one label per recording): train | eval | adapt",
                        add_help=False)  # handled by speechrnn.classify.main
    commands.add_parser("tagger", help="speech / non-speech frame tagging (a VAD): labels | train | eval",
                        add_help=False)  # handled by speechrnn.tagger.main
    from .tune import add_parser as add_tune_parser

    add_tune_parser(commands)
    from .mic import add_parser as add_mic_parser  # speechrnn/mic.py: live transcription, --input FILE

    add_mic_parser(commands)

    p = commands.add_parser("plot", help="draw training curves from train_log.jsonl to PNG",
                            description="Loss (train, dev) and dev CER/WER per epoch.")
    p.add_argument("log", help="train_log.jsonl written by `speechrnn train`")
    p.add_argument("-o", "--output", help="PNG path (default: next to the log, .png)")
    p.set_defaults(run=cmd_plot)

    p = commands.add_parser("plot-ink", help="draw ink samples as the model sees them (and what it reads) to PNG",
                            description="One row per sample: the trace as written, and the normalised points "
                                        "resampled at equal arc length that the features come from (stroke ends "
                                        "in red). With --bundle, the bundle's ink settings are used and the "
                                        "recognised text is shown.")
    p.add_argument("inputs", nargs="*", help="ink files (.json, .inkml, IAM-OnDB .xml)")
    p.add_argument("--manifest", help="ink manifest (.jsonl); its first --first samples (every --stride-th) are drawn")
    p.add_argument("--first", type=int, default=4, help="with --manifest: how many samples (4)")
    p.add_argument("--stride", type=int, default=1, help="with --manifest: take every N-th sample (1)")
    p.add_argument("--bundle", help="handwriting model bundle: use its ink settings and show what it reads")
    p.add_argument("--flip-y", action="store_true", help="without --bundle: the ink is y-down (screen coordinates)")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p.set_defaults(run=cmd_plot_ink)

    p = commands.add_parser(
        "serve", help="a web page to try models: record speech, write on a canvas",
        description="Serve one page where you record speech (Record, then Stop; or choose an audio file) and write "
                    "with a mouse, pen or finger (Recognise), and see what the models read, with word times and "
                    "confidences for speech. Open the printed address in a browser; Ctrl-C stops. The page calls "
                    "a JSON API, usable without it: POST /api/transcribe (an audio file as the body) and POST "
                    "/api/ink ({\"strokes\": [[[x, y, t], ...], ...]}); see speechrnn/serve.py.",
        epilog="Browsers give the microphone only to https:// and localhost pages: to record from another machine, "
               "tunnel the port (ssh -L 8000:127.0.0.1:8000 HOST) rather than using --host.")
    p.add_argument("bundles", nargs="*", metavar="BUNDLE",
                   help="a speech and/or a handwriting bundle (default: the shipped AN4 and UNIPEN models)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the "
                        "network, without any access control)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--max-upload-mb", type=float, default=50.0, metavar="MB",
                   help="largest upload accepted, in MB (default 50, about 8 minutes of 48 kHz 16-bit audio); "
                        "larger ones get HTTP 413")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(run=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["classify"]:  # its own parser (train | eval | adapt), see speechrnn/classify.py
        from .classify import main as classify_main

        sys.exit(classify_main(argv[1:]))
    if argv[:1] == ["tagger"]:  # its own parser (labels | train | eval), see speechrnn/tagger.py
        from .tagger import main as tagger_main

        sys.exit(tagger_main(argv[1:]))
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
