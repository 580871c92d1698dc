#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): spoken-digit classification, speaker-disjoint, with the speech encoder
# (conv + RNN) and masked pooling (speechrnn.classify). Each speaker in turn is the test speaker of one fold;
# the model trains on the other three and is selected on a dev slice of *their* recordings (indices 0-4).
#
# Stages (each is skipped when its output already exists):
#   0  data     fold manifests exp/data/<test speaker>/{train,dev,test}.jsonl from the FSDD recordings (read in place)
#   1  train    one model per fold -> exp/TAG/<fold>/model.pt; a killed run continues from its last.pt
#   2  eval     each fold's model on its test speaker -> exp/TAG/<fold>/eval/test.summary.json
#   3  summary  per-fold and mean test accuracy -> exp/TAG/results.txt
#
# Usage: recipes/fsdd/run.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME] [--folds "a b"]
#                            [--fsdd DIR] [key=value ...]
# key=value arguments override the training config, e.g. model.rnn.cell=lstm model.pooling=attention
# train.max_epochs=2 (use a new --tag for each variant: finished stages are skipped).
# --folds picks some folds (names = test speakers, default: all in exp/data/folds.txt).
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=3
conf=conf/default.yaml
tag=
folds=
fsdd=../../../shared/data/fsdd
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[fsdd $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -f exp/data/folds.txt ]; then
    log "stage 0: fold manifests exist, skipped"
  else
    log "stage 0: fold manifests from $fsdd"
    python ../../data_prep/fsdd.py --src "$fsdd" --out exp/data
  fi
fi
if [ -z "$folds" ]; then
  folds=$(cat exp/data/folds.txt)
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  mkdir -p "$exp"
  for fold in $folds; do
    if [ -f "$exp/$fold/model.pt" ]; then
      log "stage 1: $exp/$fold/model.pt exists, skipped"
      continue
    fi
    log "stage 1: fold $fold (test speaker $fold held out), training into $exp/$fold"
    python -m speechrnn.classify train "$conf" data.train_manifest="exp/data/$fold/train.jsonl" \
      data.dev_manifest="exp/data/$fold/dev.jsonl" data.test_manifest=null train.exp_dir="$exp/$fold" \
      "${overrides[@]}" --resume
  done
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  for fold in $folds; do
    if [ -f "$exp/$fold/eval/test.summary.json" ]; then
      log "stage 2: fold $fold already scored, skipped"
    else
      log "stage 2: scoring fold $fold on its test speaker"
      python -m speechrnn.classify eval "$exp/$fold/model.pt" "exp/data/$fold/test.jsonl" --out "$exp/$fold/eval" \
        --name test
    fi
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: summary"
  python - "$exp" $folds <<'PY' | tee "$exp/results.txt"
import json, sys
from pathlib import Path
from speechrnn.bundle import load_bundle
exp, folds = Path(sys.argv[1]), sys.argv[2:]
rows = []
for fold in folds:
    bundle = load_bundle(exp / fold / "model.pt")
    rows.append((fold, json.loads((exp / fold / "eval" / "test.summary.json").read_text()), bundle["extra"]))
model = bundle["config"]["model"]
rnn = model["rnn"]
print(f"{exp.name}: {rnn['cell']} {rnn['num_layers']} x {'bi' if rnn['bidirectional'] else 'uni'}directional "
      f"{rnn['hidden_size']}, {model['pooling']} pooling; FSDD speaker-disjoint (train 3 speakers, test the 4th)")
print(f"{'test speaker':<14}{'accuracy':>9}{'correct':>10}{'dev acc':>9}{'epoch':>7}{'train s':>9}")
for fold, s, extra in rows:
    print(f"{fold:<14}{100 * s['accuracy']:>8.2f}%{s['correct']:>6}/{s['utterances']:<3}"
          f"{100 * extra['dev_accuracy']:>8.1f}%{extra['epoch']:>7}{extra['train_seconds']:>9.0f}")
mean = sum(s["accuracy"] for _, s, _ in rows) / len(rows)
print(f"{'mean':<14}{100 * mean:>8.2f}%  over {len(rows)} fold(s)")
PY
  log "done: per-utterance results in $exp/<fold>/eval/test.per_utt.jsonl"
fi
