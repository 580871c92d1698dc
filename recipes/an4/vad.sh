#!/usr/bin/env bash
# AN4 speech / non-speech frame tagging (a voice-activity detector) with `speechrnn tagger`: one label per 40 ms
# encoder frame (Tx = Ty), labels from the CTC forced alignment of the AN4 recognizer that ./run.sh trains.
#
# Stages (each is skipped when its output already exists):
#   0  labels   force-align train/dev/test with exp/default/model.pt -> exp/vad_labels/SET.{ctc,energy,refined}.npz
#               and SET.stats.json (how far the alignment's edges are from the signal energy's)
#   1  train    speechrnn tagger train on the refined labels -> exp/TAG/model.pt; a killed run resumes
#   2  eval     test frames against the refined, the raw ctc and the energy labels, with the real-time factor
#               -> exp/TAG/eval/test.{refined,ctc,energy}.summary.json; the same for the untrained baseline
#               speechrnn.vad.EnergyVAD (once) -> exp/vad_energyvad/eval
#   3  summary  -> exp/TAG/results.txt
#
# Usage: recipes/an4/vad.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME] [--ctc-model PATH]
#                           [--threads N] [key=value ...]
# Needs ./run.sh's manifests and model first (./run.sh --stop-stage 2). key=value arguments override the tagger
# config (e.g. model.rnn.bidirectional=false data.train_labels=exp/vad_labels/train.ctc.npz; use a new --tag).
# --threads: torch threads for labels and scoring (the RTF is measured with them); training uses train.threads.
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=3
conf=conf/vad.yaml
tag=
ctc_model=exp/default/model.pt
threads=1
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
labels=exp/vad_labels
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[an4 vad $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ ! -f "$ctc_model" ] || [ ! -f exp/data/test.jsonl ]; then
    echo "error: $ctc_model or exp/data/*.jsonl missing; run ./run.sh --stop-stage 2 first" >&2
    exit 1
  fi
  for set in train dev test; do
    if [ -f "$labels/$set.stats.json" ]; then
      log "stage 0: $set labels exist, skipped"
    else
      log "stage 0: labels of $set from the forced alignment of $ctc_model"
      speechrnn tagger labels "$ctc_model" "exp/data/$set.jsonl" --out "$labels" --name "$set" --threads "$threads"
    fi
  done
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$exp/model.pt" ]; then
    log "stage 1: $exp/model.pt exists, skipped"
  else
    log "stage 1: training into $exp (log: $exp/train_log.jsonl)"
    speechrnn tagger train "$conf" train.exp_dir="$exp" "${overrides[@]}" --resume
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  if [ -f "$exp/eval/test.energy.summary.json" ]; then
    log "stage 2: test already scored, skipped"
  else
    log "stage 2: scoring test against the refined, ctc and energy labels"
    speechrnn tagger eval "$exp/model.pt" exp/data/test.jsonl "$labels"/test.{refined,ctc,energy}.npz \
      --out "$exp/eval" --threads "$threads"
  fi
  if [ ! -f exp/vad_energyvad/eval/test.energy.summary.json ]; then
    log "stage 2: scoring the energy VAD baseline (speechrnn.vad.EnergyVAD, default settings)"
    speechrnn tagger eval energy exp/data/test.jsonl "$labels"/test.{refined,ctc,energy}.npz \
      --out exp/vad_energyvad/eval --threads "$threads"
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: summary"
  python local/vad_summary.py "$exp" "$labels" | tee "$exp/results.txt"
  log "done: per-utterance frames in $exp/eval/test.*.per_utt.jsonl"
fi
