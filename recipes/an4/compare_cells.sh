#!/usr/bin/env bash
# The RNN family on AN4: each cell bidirectional, its hidden size chosen so the model has the default LSTM's
# parameter count (within 1 %), trained and greedy-decoded with conf/default.yaml by run.sh (tags cell_<name>);
# the comparison table goes to exp/cells.md (and into RESULTS.md by hand).
#
# Usage: recipes/an4/compare_cells.sh [--cells "lstm gru elman jordan indrnn"] [--conf conf/X.yaml] [key=value ...]
set -euo pipefail
cd "$(dirname "$0")"
cells="lstm gru elman jordan indrnn"
conf=conf/default.yaml
. ../../tools/parse_options.sh "$@"
. ../../tools/activate.sh
folders=()
for cell in $cells; do
  read -r hidden params reference < <(python ../../tools/match_hidden.py "$conf" "$cell")
  echo "[cells] $cell: hidden $hidden, $params parameters (reference $reference)" >&2
  ./run.sh --stop-stage 2 --conf "$conf" --tag "cell_$cell" model.rnn.cell="$cell" model.rnn.hidden_size="$hidden" \
    "${overrides[@]}"
  for set in dev test; do
    [ -f "exp/cell_$cell/decode/$set.summary.json" ] || speechrnn eval "exp/cell_$cell/model.pt" \
      "exp/data/$set.jsonl" --out "exp/cell_$cell/decode" --name "$set"
  done
  folders+=("exp/cell_$cell")
done
python local/cells_table.py "${folders[@]}" | tee exp/cells.md
