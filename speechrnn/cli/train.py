"""`speechrnn train | stats | plot`: train a CTC recognizer, its CMVN statistics, its training curves."""

import sys

from .common import CUDA_WHEN_PRESENT, add_command, add_training_command, training_config


def cmd_train(args) -> None:
    """Train a CTC recognizer. Writes last.pt/best.pt checkpoints, train_log.jsonl and the bundle model.pt under
    train.exp_dir. Several processes (DDP): torchrun --nproc-per-node N -m speechrnn train CONFIG ..."""
    from ..config import load_config
    from ..tasks.ctc import train

    train(training_config(load_config, args), resume=args.resume, overwrite=args.overwrite)


def cmd_stats(args) -> None:
    """Compute per-dimension feature mean/std over data.train_manifest."""
    from ..config import load_config
    from ..tasks.ctc import compute_cmvn_file

    samples = compute_cmvn_file(load_config(args.config, args.overrides), args.output)
    print(f"CMVN statistics of {samples} samples written to {args.output}", file=sys.stderr)


def cmd_plot(args) -> None:
    """Loss (train, dev) and dev CER/WER per epoch."""
    from ..plot import plot_training_log

    out = plot_training_log(args.log, args.output)
    print(f"wrote {out}", file=sys.stderr)


def add_parsers(commands) -> None:
    add_training_command(commands, cmd_train, "train a CTC model from a YAML config", None, "see recipes/*/conf/",
                         "model.rnn.cell=gru train.max_epochs=30", CUDA_WHEN_PRESENT)

    p = add_command(commands, "stats", cmd_stats, "global CMVN statistics of the training set")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.add_argument("-o", "--output", required=True, help="output file (.pt), referenced by data.cmvn")

    p = add_command(commands, "plot", cmd_plot, "draw training curves from train_log.jsonl to PNG")
    p.add_argument("log", help="train_log.jsonl written by `speechrnn train`")
    p.add_argument("-o", "--output", help="PNG path (default: next to the log, .png)")
