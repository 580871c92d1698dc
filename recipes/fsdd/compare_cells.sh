#!/usr/bin/env bash
# The RNN family on FSDD (many-to-one): each cell bidirectional, its hidden size chosen so the classifier has the
# default GRU model's parameter count (at most that, within 1 %), every speaker-disjoint fold trained and scored by
# run.sh (tags cell_<name>); the comparison table goes to exp/cells.md (and into RESULTS.md by hand).
#
# Usage: recipes/fsdd/compare_cells.sh [--cells "gru lstm elman jordan indrnn"] [--conf conf/X.yaml] [--tts true|false]
#                                      [key=value ...]
# --tts is run.sh's (default false here: the tables in RESULTS.md train on FSDD alone, without the AN4 digits).
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
  ./run.sh --conf "$conf" --tag "cell_$cell" --tts "$tts" --an4-digits false --stop-stage 2 \
    model.rnn.cell="$cell" model.rnn.hidden_size="$hidden" "${overrides[@]}"
  folders+=("exp/cell_$cell")
done
python local/cells_table.py "${folders[@]}" | tee exp/cells.md
