"""Pictures: training curves from the JSONL epoch log."""

import json
from pathlib import Path

from .errors import UserError


def plot_training_log(log_path: str | Path, output: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_path = Path(log_path)
    if not log_path.is_file():
        raise UserError(f"{log_path}: no such training log")
    records = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not records:
        raise UserError(f"{log_path}: the log has no epochs yet")
    epochs = [r["epoch"] for r in records]
    fig, (loss_ax, err_ax) = plt.subplots(1, 2, figsize=(11, 4))
    loss_ax.plot(epochs, [r["train_loss"] for r in records], label="train")
    loss_ax.plot(epochs, [r["dev_loss"] for r in records], label="dev")
    loss_ax.set(xlabel="epoch", ylabel="CTC loss per token", title="loss")
    loss_ax.legend()
    err_ax.plot(epochs, [100 * r["dev_cer"] for r in records], label="dev CER")
    err_ax.plot(epochs, [100 * r["dev_wer"] for r in records], label="dev WER")
    err_ax.set(xlabel="epoch", ylabel="%", title="dev error rates")
    err_ax.set_ylim(bottom=0)
    err_ax.legend()
    for ax in (loss_ax, err_ax):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    output = Path(output) if output else log_path.with_suffix(".png")
    fig.savefig(output, dpi=100)
    plt.close(fig)
    return output
