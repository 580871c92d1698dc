"""`speechrnn tagger labels | train | eval`: speech / non-speech frame tagging, a voice-activity detector."""

import argparse
import sys
from pathlib import Path

from .classify import RNN_CELL_NAMES
from .common import (add_command, add_device_option, add_positionals, add_report_arguments, add_threads_option,
                     add_training_command, set_threads, training_config)

# The fields of tasks.tagger.labels.LabelConfig with their defaults, written out here so that building the parser
# needs no torch (tests/test_cli.py checks that they agree).
LABEL_OPTIONS = {  # field: (default, meaning)
    "min_silence": (0.24, "seconds: shorter inner blank runs and energy gaps are speech"),
    "min_speech": (0.08, "seconds: shorter energy bursts are silence"),
    "margin_db": (6.0, "energy threshold = floor + max(MARGIN_DB, RATIO * (peak - floor))"),
    "ratio": (0.25, "see --margin-db"),
    "support_window": (0.2, "seconds: refined keeps energy segments with ctc speech this close")}


def cmd_tagger_labels(args) -> None:
    """Force-align each transcript of MANIFEST with CTC_BUNDLE and write OUT/NAME.ctc.npz (silence = blank runs),
    OUT/NAME.energy.npz (energy detector), OUT/NAME.refined.npz (energy segments the alignment supports) and
    OUT/NAME.stats.json (alignment edges against the energy's)."""
    from ..device import select_device
    from ..tasks.tagger.labels import LabelConfig, make_labels

    set_threads(args.threads)
    config = LabelConfig(**{key: getattr(args, key) for key in LABEL_OPTIONS})
    name = args.name or Path(args.manifest).stem
    stats = make_labels(args.bundle, args.manifest, args.out, name, config, str(select_device(args.device)))
    c = stats["ctc_vs_energy"]
    print(f"{name}: {stats['utterances']} utterances labelled ({len(stats['skipped'])} skipped); first token "
          f"in frame 0-1 in {100 * stats['first_token_in_first_2_frames']:.0f} %, median first token - energy "
          f"onset {stats['start_minus_energy_onset_s']['median']:+.2f} s; ctc labels vs energy: frame acc "
          f"{100 * c['accuracy']:.1f} %, speech F1 {100 * c['f1']:.1f} %; refined vetoed "
          f"{stats['energy_segments_vetoed']}/{stats['energy_segments']} energy segments")


def cmd_tagger_train(args) -> None:
    """Train a frame tagger. Writes last.pt/best.pt, train_log.jsonl and the bundle model.pt under train.exp_dir;
    best = highest dev frame accuracy (ties: lower dev loss)."""
    from ..tasks.tagger.task import load_tagger_config, train

    train(training_config(load_tagger_config, args), resume=args.resume, overwrite=args.overwrite)


def cmd_tagger_eval(args) -> None:
    """Tag every utterance of MANIFEST (one at a time, as a VAD would) and score the frames against each LABELS
    file: frame accuracy, speech precision / recall / F1, real-time factor; writes NAME.summary.json and
    NAME.per_utt.jsonl per labels file to --out."""
    from ..device import select_device
    from ..tasks.tagger.score import evaluate_manifest

    set_threads(args.threads)
    summaries = evaluate_manifest(args.bundle, args.manifest, args.labels, args.out, args.threshold,
                                  str(select_device(args.device)))
    for s in summaries:
        print(f"{s['name']}: frame accuracy {100 * s['accuracy']:.2f} %, speech precision "
              f"{100 * s['precision']:.2f} % recall {100 * s['recall']:.2f} % F1 {100 * s['f1']:.2f} % "
              f"({s['utterances']} utterances, {s['frames']} frames); RTF {s['rtf']:.4f} "
              f"({s['threads']} thread(s))")
    if any(s["unscored"] for s in summaries):
        print("warning: some utterances were not scored (unreadable, or without labels)", file=sys.stderr)
        sys.exit(1)


def add_labels_parser(commands) -> None:
    p = add_command(commands, "labels", cmd_tagger_labels,
                    "speech / non-speech frame labels from a CTC recognizer's forced alignment")
    add_positionals(p, bundle="CTC recognizer bundle (e.g. recipes/an4/exp/default/model.pt)",
                    manifest="JSONL manifest with audio_filepath, duration, text")
    p.add_argument("--out", required=True, help="folder for the label files")
    p.add_argument("--name", help="file name stem (default: the manifest's file name without .jsonl)")
    for key, (default, meaning) in LABEL_OPTIONS.items():
        p.add_argument("--" + key.replace("_", "-"), type=float, default=default, help=f"{meaning} ({default:g})")
    add_device_option(p, default="auto")
    add_threads_option(p)


def add_train_parser(commands) -> None:
    keys = ("keys: data.{train,dev}_manifest, data.{train,dev}_labels (.npz of `tagger labels`), features.*, "
            "model.rnn.cell (" + ", ".join(RNN_CELL_NAMES) + "), model.rnn.{hidden_size,num_layers,bidirectional,"
            "dropout}, model.conv_channels, optim.*, train.{exp_dir,max_epochs,patience,seed,threads}")
    add_training_command(commands, cmd_tagger_train, "train a tagger from a YAML config", keys,
                         "e.g. recipes/an4/conf/vad.yaml", "model.rnn.cell=lstm")


def add_eval_parser(commands) -> None:
    p = add_command(commands, "eval", cmd_tagger_eval, "score a tagger on a manifest against frame labels")
    p.add_argument("bundle", help="tagger bundle (exp/.../model.pt), or 'energy' to score speechrnn.vad.EnergyVAD")
    p.add_argument("manifest", help="JSONL manifest with audio_filepath, duration")
    p.add_argument("labels", nargs="+", help="labels .npz file(s) of the manifest's utterances")
    add_report_arguments(p)
    p.add_argument("--threshold", type=float, default=0.5, help="speech when the probability is at least this (0.5)")
    add_device_option(p, default="auto")
    add_threads_option(p)


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "tagger", help="speech / non-speech frame tagging (a VAD): labels | train | eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Frame tagging (one speech / non-speech label per 40 ms encoder frame): make labels from a CTC "
                    "forced alignment, train a tagger from a YAML config, score it (it is also a voice-activity "
                    "detector: speechrnn.tasks.tagger.inference.TaggerVAD).",
        epilog="example: recipes/an4/vad.sh (labels from AN4's CTC model, training, scoring on test).")
    tagger_commands = p.add_subparsers(dest="tagger_command", required=True, metavar="COMMAND")
    add_labels_parser(tagger_commands)
    add_train_parser(tagger_commands)
    add_eval_parser(tagger_commands)
