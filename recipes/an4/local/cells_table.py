"""Markdown table of finished AN4 runs (one exp folder per cell): parameters, seconds per epoch, best epoch,
dev and test WER/CER (greedy).

Usage: python local/cells_table.py exp/cell_lstm exp/cell_gru ...
"""

import json
import sys
from pathlib import Path

from speechrnn.bundle import load_model


def main(folders: list[str]) -> None:
    print("| cell | hidden | params | s / epoch | epochs (best) | dev WER / CER | test WER / CER |")
    print("|---|---|---|---|---|---|---|")
    for folder in map(Path, folders):
        model, _, config, extra = load_model(folder / "model.pt")
        rnn = config.model.rnn
        log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]
        seconds = sorted(e["epoch_seconds"] for e in log)[len(log) // 2]
        rates = {name: json.loads((folder / "decode" / f"{name}.summary.json").read_text()) for name in ("dev", "test")}
        params = sum(p.numel() for p in model.parameters())
        print(f"| {rnn.cell} | {rnn.hidden_size} | {params / 1e6:.2f} M | {seconds:.1f} | {len(log)} "
              f"({extra['epoch']}) | " + " | ".join(
                  f"{100 * rates[n]['wer']:.2f} % / {100 * rates[n]['cer']:.2f} %" for n in ("dev", "test")) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
