"""`speechrnn plot-ink | orientation`: ink samples drawn as the model sees them (and what it reads); a handwriting
model's orientation probe fitted and stored."""

import sys
from pathlib import Path

from ..errors import UserError
from .common import add_command, add_threads_option, set_threads


def cmd_plot_ink(args) -> None:
    """One row per sample: the trace as written, and the normalised points resampled at equal arc length that the
    features come from (stroke ends in red). With --bundle, the bundle's ink settings are used and the recognised
    text is shown."""
    from ..config import Config
    from ..data import INK_FIELDS, read_manifest
    from ..ink import check_ink, load_ink, read_ink
    from ..plot import plot_inks

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
        from ..recognizer import Recognizer

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


def cmd_orientation(args) -> None:
    """Fit the bundle's orientation probe on training inks read both ways and store it in the bundle
    (speechrnn/orientation.py): then ink that does not say which way its y axis points is read the right way up."""
    from ..orientation import fit_probe, store_probe
    from ..pretrained import MODELS
    from ..recognizer import Recognizer

    if args.bundle in MODELS and not Path(args.bundle).exists():
        raise UserError(f"{args.bundle}: a shipped model's name, and orientation rewrites the bundle file it is given; "
                        f"copy {MODELS[args.bundle].path} and fit the copy")
    set_threads(args.threads)
    recognizer = Recognizer.load(args.bundle, decoding="greedy")
    if recognizer.config.modality != "ink":
        raise UserError(f"{args.bundle}: a {recognizer.config.modality} model; orientation is for handwriting models")
    probe = fit_probe(recognizer.model, recognizer.config, args.manifest, count=args.count)
    store_probe(args.bundle, probe)
    print(f"{args.bundle}: orientation probe stored; fitted on {probe['inks']} inks read both ways, right way up for "
          f"{100 * probe['fit_accuracy']:.2f} % of them")


def add_parsers(commands) -> None:
    p = add_command(commands, "plot-ink", cmd_plot_ink,
                    "draw ink samples as the model sees them (and what it reads) to PNG")
    p.add_argument("inputs", nargs="*", help="ink files (.json, .inkml, IAM-OnDB .xml)")
    p.add_argument("--manifest", help="ink manifest (.jsonl); its first --first samples (every --stride-th) are drawn")
    p.add_argument("--first", type=int, default=4, help="with --manifest: how many samples (4)")
    p.add_argument("--stride", type=int, default=1, help="with --manifest: take every N-th sample (1)")
    p.add_argument("--bundle", help="handwriting model bundle: use its ink settings and show what it reads")
    p.add_argument("--flip-y", action="store_true", help="without --bundle: the ink is y-down (screen coordinates)")
    p.add_argument("-o", "--output", required=True, help="PNG path")
    p = add_command(commands, "orientation", cmd_orientation,
                    "fit the probe that tells which way up unlabelled ink is; store it in the bundle")
    p.add_argument("bundle", help="handwriting model bundle, rewritten in place (atomically)")
    p.add_argument("manifest", help="a TRAINING manifest of the model's data (never dev or test)")
    p.add_argument("--count", type=int, default=8000, help="inks read both ways to fit on (8000)")
    add_threads_option(p, meaning="for the model; default: torch's")
