"""`speechrnn classify train | eval | adapt`: utterance classification (one label per recording)."""

import argparse
import sys
from pathlib import Path

from .common import (CUDA_WHEN_PRESENT, add_command, add_device_option, add_positionals, add_report_arguments,
                     add_threads_option, add_training_command, set_threads, training_config)

# The RNN cells of speechrnn.rnn.RNN_CELLS and the defaults of tasks.classify.model.AdaptConfig, written out here so
# that building the parser needs no torch (tests/test_cli.py checks that they agree).
RNN_CELL_NAMES = ("elman", "gru", "indrnn", "jordan", "lstm")
ADAPT_OPTIONS = {  # key: (type, default, meaning)
    "rounds": (int, 4, "self-training rounds; round r uses the most confident r/ROUNDS of each predicted class"),
    "epochs": (int, 4, "fine-tuning epochs per round"),
    "lr": (float, 1.0e-3, "peak learning rate of each round's fine-tuning (cosine decay to optim.final_lr_ratio of "
                          "it)"),
    "repeat": (int, 3, "times each pseudo-labelled recording is seen per epoch, next to the labelled training set"),
    "max_dev_drop": (float, 0.02, "refuse a round whose model reads the training speakers' dev recordings (the "
                                  "bundle's data.dev_manifest) this share worse than the unadapted one (0.02 = 2 "
                                  "points): keep the round before")}


def print_summary(summary: dict) -> None:
    print(f"{summary['name']}: accuracy {100 * summary['accuracy']:.2f} % "
          f"({summary['correct']}/{summary['utterances']})"
          + (f" ({summary['unscored']} unreadable utterance(s) not scored)" if summary.get("unscored") else ""))


def cmd_classify_train(args) -> None:
    """Train a sequence classifier. Writes last.pt/best.pt, train_log.jsonl and the bundle model.pt under
    train.exp_dir; best = highest dev accuracy (ties: lower dev loss). With data.test_manifest set, the bundle is
    also scored on it (reports in exp_dir/eval)."""
    from ..tasks.classify.inference import evaluate_manifest
    from ..tasks.classify.task import load_classify_config, train

    config = training_config(load_classify_config, args)
    result = train(config, resume=args.resume, overwrite=args.overwrite)
    if config.data.test_manifest:
        print_summary(evaluate_manifest(result.bundle, config.data.test_manifest, Path(config.train.exp_dir) / "eval",
                                        "test", config.train.device))


def cmd_classify_eval(args) -> None:
    """Classify every utterance of MANIFEST; writes NAME.per_utt.jsonl (id, ref, hyp, correct, speaker) and
    NAME.summary.json (accuracy, confusion matrix) to --out and prints the accuracy."""
    from ..tasks.classify.inference import evaluate_manifest

    set_threads(args.threads)
    summary = evaluate_manifest(args.bundle, args.manifest, args.out, args.name, args.device, args.trim_edges)
    print_summary(summary)
    if summary["unscored"]:
        sys.exit(1)


def cmd_classify_adapt(args) -> None:
    """Unsupervised adaptation: label MANIFEST's recordings with the model, fine-tune a copy of it on the labelled
    training set plus the most confident share of them under the predicted labels, and repeat with a growing share
    (--rounds). MANIFEST's labels, if any, are not read. Writes the adapted bundle to -o. Score it on other
    recordings of that speaker, not on these."""
    from ..tasks.classify.task import adapt

    overrides = {key: getattr(args, key) for key in ADAPT_OPTIONS if getattr(args, key) is not None}
    adapt(args.bundle, args.manifest, args.out, args.train_manifest, overrides, args.device, args.threads)
    print(f"adapted bundle written to {args.out}")


def add_train_parser(commands) -> None:
    keys = ("keys: data.{train,dev,test}_manifest (JSONL with audio_filepath, duration, label), data.classes, "
            "data.speed_perturb, data.noise_snr ([low, high] dB of white noise on training clips), features.*, "
            "specaugment.*, use_specaugment, model.rnn.cell (" + ", ".join(RNN_CELL_NAMES) + "), "
            "model.rnn.{hidden_size,num_layers,bidirectional,dropout}, model.conv_channels, model.pooling "
            "(mean | attention), model.utterance_cmn, optim.{lr,warmup_steps,label_smoothing,...}, "
            "train.{exp_dir,max_epochs,patience,seed,device,threads}")
    add_training_command(commands, cmd_classify_train, "train a classifier from a YAML config", keys,
                         "e.g. recipes/fsdd/conf/default.yaml", "model.rnn.cell=gru model.pooling=attention")


def add_eval_parser(commands) -> None:
    p = add_command(commands, "eval", cmd_classify_eval, "score a bundle on a labelled manifest")
    add_positionals(p, bundle="classifier bundle (exp/.../model.pt)",
                    manifest="JSONL manifest with audio_filepath, duration and the label field")
    add_report_arguments(p, "the manifest's file name without .jsonl")
    p.add_argument("--trim-edges", action="store_true",
                   help="cut each recording to its speech before classifying (silence at the edges then changes "
                        "nothing; on by itself for a bundle trained with data.trim_edges=true)")
    add_device_option(p, default="auto")
    add_threads_option(p)


def add_adapt_parser(commands) -> None:
    p = add_command(
        commands, "adapt", cmd_classify_adapt,
        "adapt a bundle to a new speaker's unlabelled recordings (self-training)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example (FSDD: adapt on half of the held-out speaker, score the other half):\n"
               "  speechrnn classify adapt exp/default/nicolas/model.pt exp/data/nicolas/test_a.jsonl "
               "-o exp/default/nicolas/adapted_a.pt --train-manifest exp/data/nicolas/train.jsonl\n"
               "  speechrnn classify eval exp/default/nicolas/adapted_a.pt exp/data/nicolas/test_b.jsonl")
    add_positionals(p, bundle="classifier bundle to adapt",
                    manifest="JSONL manifest of the recordings to adapt to (audio_filepath, duration)")
    p.add_argument("-o", "--out", required=True, help="path of the adapted bundle")
    p.add_argument("--train-manifest", help="labelled training set (default: the bundle's data.train_manifest)")
    for key, (kind, default, meaning) in ADAPT_OPTIONS.items():
        p.add_argument(f"--{key.replace('_', '-')}", dest=key, type=kind,
                       help=f"{meaning} (default: the bundle's adapt.{key}, {default} unless set in training)")
    add_device_option(p, default="auto", meaning=CUDA_WHEN_PRESENT)
    add_threads_option(p, meaning="default: the bundle's train.threads, else torch's choice")


def add_parsers(commands) -> None:
    p = commands.add_parser(
        "classify", help="utterance classification (one label per recording): train | eval | adapt",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Utterance classification (one label per recording) with the speechrnn encoder: train from a "
                    "YAML config, or score a trained bundle on a labelled manifest.",
        epilog="examples:\n"
               "  speechrnn classify train recipes/fsdd/conf/default.yaml model.rnn.cell=gru train.exp_dir=exp/gru\n"
               "  speechrnn classify eval exp/gru/model.pt data/test.jsonl --out exp/gru/eval\n"
               "Recipe: recipes/fsdd/run.sh (spoken digits, speaker-disjoint folds).")
    classify_commands = p.add_subparsers(dest="classify_command", required=True, metavar="COMMAND")
    add_train_parser(classify_commands)
    add_eval_parser(classify_commands)
    add_adapt_parser(classify_commands)
