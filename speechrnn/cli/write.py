"""`speechrnn write` (text in, handwriting out) and `speechrnn synthesis train | score`: the handwriting synthesis
network."""

import re
import sys
from pathlib import Path

from ..errors import UserError
from ..pretrained import DEFAULTS
from .common import (add_command, add_device_option, add_threads_option, add_training_command, set_threads,
                     training_config)

FORMATS = ("svg", "png", "json", "inkml")
DEFAULT_WRITER = DEFAULTS["synthesis"]


def output_paths(texts: list[str], output: str | None, output_dir: str, formats: list[str]) -> list[list[Path]]:
    """Per text the files to write: -o FILE (one text; its suffix the format), else OUTPUT_DIR/NAME.FORMAT with NAME
    from the text (letters, digits and _ only; a number added when two texts give the same name)."""
    if output:
        if len(texts) > 1:
            raise UserError(f"-o {output}: one file for {len(texts)} texts; use --output_dir DIR for several")
        suffix = Path(output).suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise UserError(f"-o {output}: unknown format {suffix or '(no suffix)'!r}; end it with "
                            f"{', '.join('.' + f for f in FORMATS)}")
        return [[Path(output)]]
    names, paths = set(), []
    for text in texts:
        stem = re.sub(r"\W+", "_", text).strip("_")[:40] or "ink"
        name, k = stem, 2
        while name in names:
            name, k = f"{stem}_{k}", k + 1
        names.add(name)
        paths.append([Path(output_dir) / f"{name}.{fmt}" for fmt in formats])
    return paths


def save_ink(ink, path: Path, overwrite: bool) -> None:
    """One written ink in the format of `path`'s suffix, whole or not at all (output.write_file's rules)."""
    import json
    import os

    from ..ink.readers import ink_to_dict, ink_to_inkml, ink_to_svg
    from ..output import move_into_place, write_file

    fmt = path.suffix.lower().lstrip(".")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "png":
        from ..plot import draw_inks

        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
        try:
            draw_inks([ink], tmp)
            move_into_place(tmp, path, overwrite)
        finally:
            if tmp.exists():
                tmp.unlink()
        return
    text = {"svg": ink_to_svg, "inkml": ink_to_inkml,
            "json": lambda i: json.dumps(ink_to_dict(i, decimals=3), ensure_ascii=False) + "\n"}[fmt](ink)
    write_file(path, text, overwrite)


def style_sample(path: str, text: str | None, device: str):
    """The --style ink and what it says: --style-text, else the file's own text, else what the shipped handwriting
    recogniser reads in it."""
    from ..ink.readers import InkError, check_ink, read_ink

    try:
        ink = check_ink(read_ink(path), path)
    except (InkError, OSError) as err:
        raise UserError(f"--style {path}: {err}") from None
    text = text or ink.text
    if not text:
        from ..pretrained import default_bundle
        from ..recognizer import Recognizer

        text = Recognizer.load(default_bundle("ink"), device=device).transcribe(ink).text
        print(f"--style {path}: read as {text!r} (give --style-text when that is wrong)", file=sys.stderr)
    return ink, text


def cmd_write(args) -> None:
    """Write text as handwriting with a synthesis network (the shipped unipen-writer unless a bundle is named):
    one file per text and format (svg, png, json, inkml), the ink in writing heights, y up. --bias makes the
    writing neater (0: as the network samples it); --seed picks one of its ways to write it (the same seed gives
    the same ink); --style INK writes in the style of a sample of your own handwriting (a JSON, InkML or IAM-OnDB
    file; its text from --style-text, the file, or the shipped recogniser). Files that exist are kept unless
    --overwrite; a text that cannot be written is reported in one line and the others are written."""
    from ..tasks.synthesis.inference import load_writer, write

    set_threads(args.threads)
    items = list(args.items)
    bundle = DEFAULT_WRITER
    if len(items) > 1 and (items[0].lower().endswith(".pt") or items[0] == DEFAULT_WRITER):
        bundle, items = items[0], items[1:]
    formats = list(FORMATS) if args.output_format == "all" else [args.output_format]
    paths = output_paths(items, args.output, args.output_dir, formats)
    writer = load_writer(args.model or bundle, device=args.device or "cpu")
    style, style_text = style_sample(args.style, args.style_text, args.device or "cpu") if args.style else (None, None)
    failed = 0
    for index, (text, targets) in enumerate(zip(items, paths)):
        try:
            ink = write(writer, text, bias=args.bias, temperature=args.temperature, seed=args.seed + index,
                        style=style, style_text=style_text)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            failed += 1
            continue
        for path in targets:
            try:
                save_ink(ink, path, args.overwrite)
            except FileExistsError:
                print(f"error: {path} exists; kept as it is (--overwrite replaces it)", file=sys.stderr)
                failed += 1
            except OSError as err:
                print(f"error: {path}: cannot write ({err.strerror or err})", file=sys.stderr)
                failed += 1
            else:
                print(f"{path}\t{ink.text}\t{ink.num_points} points, {len(ink.strokes)} strokes")
    if failed:
        sys.exit(1)


def cmd_synthesis_train(args) -> None:
    """Train a handwriting synthesis network (LSTM layers, an attention window over the text, a mixture-density
    output of pen offsets) through the one training loop. Writes last.pt/best.pt, train_log.jsonl and the bundle
    model.pt under train.exp_dir; the epoch with the lowest dev negative log-likelihood per point is kept."""
    from ..tasks.synthesis.task import load_synth_config, train

    train(training_config(load_synth_config, args), resume=args.resume, overwrite=args.overwrite)


def cmd_synthesis_score(args) -> None:
    """Negative log-likelihood per point (nats; the offset mixture plus the pen lift, offsets in units of the
    resampling step) of the inks of a manifest, each read with its text: how well a synthesis network (text-
    conditioned or unconditional) predicts held-out handwriting. Lower is better."""
    from ..tasks.synthesis.data import InkOffsetsDataset
    from ..tasks.synthesis.inference import load_network, nll_per_point

    set_threads(args.threads)
    model, alphabet, config, _, path = load_network(args.bundle)
    dataset = InkOffsetsDataset(args.manifest, alphabet, config.data.spacing, 10 ** 9, Path(args.manifest).name)
    if not len(dataset):
        raise UserError(f"{args.manifest}: no ink with text to score")
    scores = nll_per_point(model, dataset)
    print(f"{path}: {scores['nll']:.4f} nats/point (offset {scores['offset']:.4f}, pen {scores['pen']:.4f}) over "
          f"{scores['points']} points of {len(dataset)} inks in {args.manifest}")


def add_parsers(commands) -> None:
    p = add_command(commands, "write", cmd_write, "write text as handwriting (svg, png, json, inkml)")
    p.add_argument("items", nargs="+", metavar="TEXT",
                   help="the text(s) to write, each into its own files; a first item ending in .pt is taken as the "
                        "synthesis bundle (as --model)")
    p.add_argument("--model", "-m", help=f"synthesis bundle or shipped name (default: {DEFAULT_WRITER})")
    p.add_argument("-o", "--output", help="the file to write, for one text; its suffix gives the format "
                                          f"({', '.join('.' + f for f in FORMATS)})")
    p.add_argument("--output_dir", "--output-dir", default=".", metavar="DIR",
                   help="folder for the files, named after the texts (default: current folder)")
    p.add_argument("--output_format", "--output-format", "-f", choices=FORMATS + ("all",), default="svg",
                   help="format of the files in --output_dir (default: svg)")
    p.add_argument("--bias", type=float, default=None,
                   help="neatness: 0 writes as the network samples, larger values more regular (default: the bundle's, "
                        "chosen on dev words)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="randomness of the rest of the sampling; 0: the likeliest pen moves (default: 1.0)")
    p.add_argument("--seed", type=int, default=0, help="random seed; text i uses seed + i (default: 0)")
    p.add_argument("--style", metavar="INK", help="a sample of the handwriting to imitate (.json, .inkml, .xml)")
    p.add_argument("--style-text", help="what the --style sample says (default: its file's text, else what the "
                                        "shipped recogniser reads)")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist (default: keep them)")
    add_threads_option(p)
    add_device_option(p, default="cpu", meaning="default: cpu")

    p = commands.add_parser("synthesis", help="train and score handwriting synthesis networks",
                            description="Handwriting synthesis networks: training and scoring.")
    synthesis_commands = p.add_subparsers(dest="synthesis_command", required=True, metavar="SYNTHESIS_COMMAND")
    add_training_command(synthesis_commands, cmd_synthesis_train,
                         "train a handwriting synthesis network from a YAML config",
                         "keys: data.train_manifest, data.dev_manifest (ink manifests with text), data.spacing, "
                         "model.hidden_size, model.num_layers, model.mixtures, model.attention (false: the "
                         "unconditional baseline), train.max_epochs, train.exp_dir",
                         "see recipes/unipen/conf/synthesis.yaml", "model.hidden_size=400 train.max_epochs=10")
    p = add_command(synthesis_commands, "score", cmd_synthesis_score,
                    "negative log-likelihood per point of held-out ink under a synthesis network")
    p.add_argument("bundle", help="synthesis bundle (text-conditioned or unconditional)")
    p.add_argument("manifest", help="ink manifest (.jsonl) with \"text\", e.g. recipes/unipen/exp/data/test.jsonl")
    add_threads_option(p)
