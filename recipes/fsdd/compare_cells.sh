#!/usr/bin/env bash
# The RNN family on FSDD (many-to-one): each cell bidirectional, its hidden size chosen so the classifier has the
# default GRU model's parameter count (at most that, within 1 %), every speaker-disjoint fold trained and scored by
# run.sh (tags cell_<name>); the comparison table goes to exp/cells.md (and into RESULTS.md by hand).
#
# Usage: recipes/fsdd/compare_cells.sh [--cells "gru lstm elman jordan indrnn"] [--conf conf/X.yaml] [--tts true|false]
#                                      [key=value ...]
# --tts is run.sh's (default false here: the tables in RESULTS.md train on FSDD alone).
set -euo pipefail
cd "$(dirname "$0")"
cells="gru lstm elman jordan indrnn"
conf=conf/gru.yaml
tts=false
. ../../tools/parse_options.sh "$@"
. ../../tools/activate.sh
folders=()
for cell in $cells; do
  read -r hidden params reference < <(python ../../tools/match_hidden.py "$conf" "$cell" --classify)
  echo "[cells] $cell: hidden $hidden, $params parameters (reference $reference)" >&2
  ./run.sh --conf "$conf" --tag "cell_$cell" --tts "$tts" --stop-stage 2 model.rnn.cell="$cell" model.rnn.hidden_size="$hidden" "${overrides[@]}"
  folders+=("exp/cell_$cell")
done
python - "${folders[@]}" <<'PY' | tee exp/cells.md
import json, sys
from pathlib import Path
from speechrnn.classify import load_classifier
folds = Path("exp/data/folds.txt").read_text().split()
print("| cell | hidden | params | s / epoch | " + " | ".join(folds) + " | **mean** |")
print("|---|---|---|---|" + "---|" * (len(folds) + 1))
for folder in map(Path, sys.argv[1:]):
    model, _, config, _ = load_classifier(folder / folds[0] / "model.pt")
    seconds = []
    for fold in folds:
        log = [json.loads(line) for line in (folder / fold / "train_log.jsonl").read_text().splitlines() if line]
        seconds += [e["epoch_seconds"] for e in log]
    accuracy = [json.loads((folder / fold / "eval" / "test.summary.json").read_text())["accuracy"] for fold in folds]
    params = sum(p.numel() for p in model.parameters())
    print(f"| {config.model.rnn.cell} | {config.model.rnn.hidden_size} | {params / 1e6:.3f} M | "
          f"{sorted(seconds)[len(seconds) // 2]:.1f} | " + " | ".join(f"{100 * a:.1f} %" for a in accuracy)
          + f" | **{100 * sum(accuracy) / len(accuracy):.2f} %** |")
PY
