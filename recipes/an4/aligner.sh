#!/usr/bin/env bash
# AN4 word-time aligners. A bidirectional CTC recognizer has heard the whole utterance at every frame; it puts the
# first character at frame 0 (words start ~0.3 s early) and each character on one-frame spikes. Two unidirectional
# models, started from the recognizer's two directions and trained with a label prior and silence at the edges,
# align its text instead: the left-to-right one gives word starts (conf/aligner.yaml), the right-to-left one word
# ends (conf/aligner_end.yaml). Both go into a copy of the recognizer's bundle.
#
# Stages (each is skipped when its output already exists):
#   0  train    conf/aligner.yaml and conf/aligner_end.yaml from --model -> exp/TAG/{start,end}/model.pt; a killed
#               run resumes
#   1  attach   speechrnn add-aligner: --model with both aligners inside -> exp/TAG/recognizer.pt
#   2  check    word times of --model and of exp/TAG/recognizer.pt against two energy boundaries on the test set,
#               with and without the Silero speech check (benchmarks.eval_timestamps --reference trim|vad
#               --veto none|silero) -> exp/TAG/timestamps.txt
#
# Usage: recipes/an4/aligner.sh [--stage N] [--stop-stage M] [--model PATH] [--tag NAME] [key=value ...]
# Needs the recognizer first (default exp/long/model.pt: ./run.sh --conf conf/long.yaml). key=value arguments
# override both aligners' configs (e.g. model.rnn.lookahead=4; use a new --tag). About 6 min per aligner on 2 cores.
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=2
model=exp/long/model.pt
tag=aligner
. ../../tools/parse_options.sh "$@"
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[an4 aligner $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ ! -f "$model" ] || [ ! -f exp/data/test.jsonl ]; then
  echo "error: $model or exp/data/*.jsonl missing; train the recognizer first (./run.sh --conf conf/long.yaml)" >&2
  exit 1
fi

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  for part in start end; do
    conf=conf/aligner.yaml
    [ "$part" = end ] && conf=conf/aligner_end.yaml
    if [ -f "$exp/$part/model.pt" ]; then
      log "stage 0: $exp/$part/model.pt exists, skipped"
    else
      log "stage 0: training the word-$part aligner ($conf) from $model into $exp/$part"
      speechrnn train "$conf" train.init_from="$model" train.exp_dir="$exp/$part" "${overrides[@]}" --resume
    fi
  done
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  log "stage 1: $model with both aligners inside -> $exp/recognizer.pt"
  speechrnn add-aligner "$model" "$exp/start/model.pt" "$exp/end/model.pt" -o "$exp/recognizer.pt"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: word times against energy boundaries, test set"
  for reference in trim vad; do
    for veto in none silero; do
      for bundle in "$model" "$exp/recognizer.pt"; do
        echo "== $bundle, --reference $reference --veto $veto"
        PYTHONPATH="../..${PYTHONPATH:+:$PYTHONPATH}" python -m benchmarks.eval_timestamps --bundle "$bundle" \
          --manifest exp/data/test.jsonl --reference "$reference" --veto "$veto"
      done
    done
  done | tee "$exp/timestamps.txt"
fi
