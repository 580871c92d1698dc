"""Markdown table of finished FSDD runs (one exp folder per cell, one subfolder per fold): hidden size, parameters,
median seconds per epoch, test accuracy per fold and the mean. The folds are exp/data/folds.txt's.

Usage: python local/cells_table.py exp/cell_gru exp/cell_lstm ...
"""

import argparse
import json
from pathlib import Path

from speechrnn.tasks.classify.inference import load_classifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="one run folder per cell (run.sh --tag cell_NAME)")
    args = parser.parse_args()
    folds = Path("exp/data/folds.txt").read_text().split()
    print("| cell | hidden | params | s / epoch | " + " | ".join(folds) + " | **mean** |")
    print("|---|---|---|---|" + "---|" * (len(folds) + 1))
    for folder in args.folders:
        model, _, config, _ = load_classifier(folder / folds[0] / "model.pt")
        seconds = []
        for fold in folds:
            log = [json.loads(line) for line in (folder / fold / "train_log.jsonl").read_text().splitlines() if line]
            seconds += [e["epoch_seconds"] for e in log]
        accuracy = [json.loads((folder / fold / "eval" / "test.summary.json").read_text())["accuracy"]
                    for fold in folds]
        params = sum(p.numel() for p in model.parameters())
        print(f"| {config.model.rnn.cell} | {config.model.rnn.hidden_size} | {params / 1e6:.3f} M | "
              f"{sorted(seconds)[len(seconds) // 2]:.1f} | " + " | ".join(f"{100 * a:.1f} %" for a in accuracy)
              + f" | **{100 * sum(accuracy) / len(accuracy):.2f} %** |")


if __name__ == "__main__":
    main()
