"""Pictures: training curves from the JSONL epoch log, and ink samples as the model sees them."""

import json
from pathlib import Path

import numpy as np

from .errors import UserError


def read_training_log(log_path: Path) -> list[dict]:
    """The epoch records of a train_log.jsonl; a line that is not a record is one line naming it."""
    if not log_path.is_file():
        raise UserError(f"{log_path}: no such training log")
    records = []
    for number, line in enumerate(log_path.read_bytes().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            float(record["epoch"]), float(record["train_loss"])
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserError(f"{log_path}:{number}: not an epoch record of a training log (a JSON object with epoch "
                            "and train_loss); give the train_log.jsonl a training run wrote") from None
        records.append(record)
    if not records:
        raise UserError(f"{log_path}: the log has no epochs yet")
    return records


def plot_training_log(log_path: str | Path, output: str | Path | None = None) -> Path:
    """Loss (train, dev) and the dev scores of each epoch (CER/WER of a recognizer, accuracy of a classifier or
    tagger), drawn to PNG (default: beside the log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_path = Path(log_path)
    records = read_training_log(log_path)
    epochs = [r["epoch"] for r in records]
    scores = [key for key in records[-1] if key.startswith(("dev_", "train_")) and key not in ("train_loss", "dev_loss")
              and isinstance(records[-1][key], (int, float))]
    fig, (loss_ax, score_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in records], label="train")
    if all("dev_loss" in r for r in records):
        loss_ax.plot(epochs, [r["dev_loss"] for r in records], label="dev")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    for key in scores:
        score_ax.plot(epochs, [100 * r.get(key, float("nan")) for r in records], label=key.replace("_", " "))
    score_ax.set(xlabel="epoch", ylabel="%", title="scores")
    score_ax.set_ylim(bottom=0)
    score_ax.legend()
    for ax in (loss_ax, score_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    output = Path(output) if output else log_path.with_suffix(".png")
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def plot_inks(inks: list, output: str | Path, config=None, titles: list[str] | None = None) -> Path:
    """One row per ink: the pen trace as written, and the normalised points resampled at equal arc length that the
    features are computed from (stroke ends, where the pen-up flag is set, in red), titled with `titles`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .ink import InkFeatureConfig, normalize, resample

    config = config or InkFeatureConfig()
    fig, axes = plt.subplots(len(inks), 2, figsize=(11, 2.2 * len(inks)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.4]})
    for row, ink in enumerate(inks):
        raw_ax, model_ax = axes[row]
        y_down = ink.y_down if ink.y_down is not None else config.flip_y  # as the ink states, else the config
        sign = -1.0 if y_down else 1.0  # draw y-up
        for stroke in ink.strokes:
            stroke = np.asarray(stroke)
            if len(stroke):
                raw_ax.plot(stroke[:, 0], sign * stroke[:, 1], "k-", linewidth=1)
        points = resample(normalize(ink, y_down), config.spacing)
        for stroke in points.strokes:
            model_ax.plot(stroke[:, 0], stroke[:, 1], "-", color="0.8", linewidth=0.8)
            model_ax.scatter(stroke[:, 0], stroke[:, 1], s=4, c=np.arange(len(stroke)), cmap="viridis")
            model_ax.scatter(stroke[-1:, 0], stroke[-1:, 1], s=14, c="red")
        raw_ax.set_title(f"as written ({ink.num_points} points)", fontsize=9)
        model_ax.set_title(f"{titles[row] if titles else ''}  [{sum(len(s) for s in points.strokes)} resampled points]",
                           fontsize=9)
        for ax in (raw_ax, model_ax):
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    output = Path(output)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def draw_inks(inks: list, output: str | Path, titles: list[str] | None = None, columns: int = 1,
              height_in: float = 0.9) -> Path:
    """The inks in a grid of `columns`, each drawn as written (y up unless it says y_down), at one scale: a writing
    height of the normalised ink the synthesis network writes is `height_in` inches. PNG (or any format matplotlib
    infers from `output`'s suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(inks) // columns)
    spans = [np.ptp(np.concatenate([np.asarray(s)[:, :2] for s in ink.strokes if len(s)]), axis=0) for ink in inks]
    width = min(max(span[0] for span in spans), 16.0) + 0.6  # a runaway ink is shrunk into a cell, not the page grown
    height = min(max(span[1] for span in spans), 4.0) + 0.6
    fig, axes = plt.subplots(rows, columns, squeeze=False,
                             figsize=(columns * width * height_in, rows * (height + (0.5 if titles else 0)) * height_in))
    for ax in axes.flat:
        ax.set_axis_off()
    for k, ink in enumerate(inks):
        ax = axes.flat[k]
        sign = -1.0 if ink.y_down else 1.0
        for stroke in ink.strokes:
            stroke = np.asarray(stroke)
            if len(stroke):
                ax.plot(stroke[:, 0], sign * stroke[:, 1], "k-", linewidth=1.2, solid_capstyle="round")
        ax.set_aspect("equal")
        ax.margins(0.05)
        if titles:
            ax.set_title(titles[k], fontsize=8)
    fig.tight_layout()
    output = Path(output)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output


def plot_alignment(feats, feat_shift: float, log_probs, frame_shift: float, symbols: list[str], words,
                   output: str | Path, title: str = "") -> Path:
    """Three rows on one time axis (seconds): the log-mel features, the CTC posteriors of each symbol over the
    model's frames (blank in grey), and the words with their start/end and confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    feats, probs = np.asarray(feats), np.exp(np.asarray(log_probs, dtype=np.float64))
    duration = max(len(feats) * feat_shift, len(probs) * frame_shift)
    fig, (spec_ax, post_ax, word_ax) = plt.subplots(3, 1, figsize=(12, 6.5), sharex=True,
                                                    gridspec_kw={"height_ratios": [2, 2, 0.8]})
    spec_ax.imshow(feats.T, origin="lower", aspect="auto", extent=(0, len(feats) * feat_shift, 0, feats.shape[1]),
                   cmap="magma")
    spec_ax.set(ylabel="mel band", title=title)
    times = (np.arange(len(probs)) + 0.5) * frame_shift
    post_ax.fill_between(times, probs[:, 0], color="0.85", step="mid", label="blank")
    for k in range(1, probs.shape[1]):
        if probs[:, k].max() > 0.2:  # label the symbols the model actually uses
            line, = post_ax.plot(times, probs[:, k], drawstyle="steps-mid", linewidth=1)
            peak = int(probs[:, k].argmax())
            post_ax.text(times[peak], probs[peak, k] + 0.02, symbols[k] if symbols[k] != " " else "␣",
                         color=line.get_color(), ha="center", fontsize=8)
    post_ax.set(ylabel="CTC posterior", ylim=(0, 1.1))
    for word in words:
        for ax in (spec_ax, post_ax):
            ax.axvline(word.start, color="white" if ax is spec_ax else "0.3", linewidth=0.8, linestyle="--")
            ax.axvline(word.end, color="white" if ax is spec_ax else "0.3", linewidth=0.8, linestyle=":")
        word_ax.axvspan(word.start, word.end, color=plt.cm.RdYlGn(word.confidence), alpha=0.6)
        word_ax.text((word.start + word.end) / 2, 0.5, f"{word.text}\n{word.confidence:.2f}", ha="center",
                     va="center", fontsize=8)
    word_ax.set(xlabel="seconds", yticks=[], xlim=(0, duration))
    word_ax.set_ylabel("words\n(confidence)", fontsize=8)
    fig.tight_layout()
    output = Path(output)
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
