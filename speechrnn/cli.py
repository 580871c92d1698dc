"""`speechrnn` command line: train | eval | stats | transcribe | lm | plot | plot-ink."""

import argparse
import json
import sys
from pathlib import Path

from .errors import UserError

EPILOG = "Run `speechrnn COMMAND --help` for a command's options. Recipes: recipes/<corpus>/run.sh."


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
    model, tokenizer, config, _ = load_model(args.bundle, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    config.data.num_workers = 0
    loader = make_loader(load_dataset(config, args.manifest, tokenizer), config, False, 0)
    tokenizer.report_unknown(args.manifest)
    beam = None
    if args.beam:
        from .decode import BeamConfig, BeamDecoder

        beam = BeamDecoder(tokenizer, BeamConfig(beam_size=args.beam, lm=args.lm, lexicon=args.lexicon,
                                                 lm_weight=args.lm_weight, word_score=args.word_score))
    result = evaluate(model, loader, tokenizer, device, beam)
    name = args.name or Path(args.manifest).stem
    rates = write_report(args.out, name, result["ids"], result["refs"], result["hyps"])
    missing = len(manifest_texts(args.manifest)) - len(result["ids"])
    print(f"{name}: {rates.summary()}" + (f" ({missing} unreadable utterance(s) not scored)" if missing else ""))
    if missing:
        sys.exit(1)


def cmd_transcribe(args) -> None:
    from .recognizer import Recognizer

    recognizer = Recognizer.load(args.bundle, device=args.device or "cpu")
    failed = []
    for path in args.inputs:
        try:
            (result,) = recognizer.transcribe([path])
        except UserError as err:  # unreadable audio or ink: reported, and the other files go on
            print(f"error: {err}", file=sys.stderr)
            failed.append(path)
            continue
        print(json.dumps({"path": result.path, "text": result.text}) if args.format == "jsonl" else f"{path}\t{result.text}")
    if failed:
        print(f"{len(failed)} of {len(args.inputs)} input(s) failed: {', '.join(failed)}", file=sys.stderr)
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
        for entry in read_manifest(args.manifest, INK_FIELDS)[: args.first]:
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
    p.set_defaults(run=cmd_eval)

    p = commands.add_parser("transcribe", help="transcribe audio or ink files",
                            description="Print one line per file: path<TAB>text (or JSON lines with --format jsonl).")
    p.add_argument("bundle", help="model bundle")
    p.add_argument("inputs", nargs="+", help="audio files (wav, flac, ogg, mp3, sphere) for a speech bundle; ink "
                                             "files (.json, .inkml, IAM-OnDB .xml) for a handwriting bundle")
    p.add_argument("--format", choices=["txt", "jsonl"], default="txt")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cpu)")
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
    p.add_argument("--manifest", help="ink manifest (.jsonl); its first --first samples are drawn")
    p.add_argument("--first", type=int, default=4, help="with --manifest: how many samples (4)")
    p.add_argument("--bundle", help="handwriting model bundle: use its ink settings and show what it reads")
    p.add_argument("--flip-y", action="store_true", help="without --bundle: the ink is y-down (screen coordinates)")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p.set_defaults(run=cmd_plot_ink)
    return parser


def main(argv: list[str] | None = None) -> None:
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
