#!/usr/bin/env bash
# AN4 (CMU census database): character CTC with a conv + BiLSTM encoder.
#
# Stages (each is skipped when its output already exists):
#   0  data       find the AN4 corpus (--an4 DIR), or download an4_sphere.tar.gz when there is none
#   1  manifests  train/dev/test JSONL manifests (dev = 8 whole training speakers) + global CMVN stats
#   2  train      speechrnn train; a killed run continues from exp/TAG/last.pt when started again
#   3  decode     greedy decoding of dev and test; then beam search with a word 3-gram LM and the lexicon of the
#                 training transcripts, LM weight and word score tuned on dev and stored in the bundle (so
#                 `speechrnn transcribe` uses them); word confidences calibrated on dev (`speechrnn calibrate`);
#                 per-utterance results in exp/TAG/decode/
#   4  score      WER/CER summary of dev and test, greedy and with the LM -> exp/TAG/decode/results.txt
#   5  char LM    (only with --stop-stage 5) the character LSTM LM of English (recipes/english_lm, run when
#                 missing): lexicon-free beam search fused with it, and the stage-3 decoder whose open-vocabulary
#                 fallback reads with it, each tuned on dev into a copy of the bundle (model_charlm.pt,
#                 model_lm_charlm.pt), on dev and test
#
# Usage: recipes/an4/run.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME] [--nproc N] [--an4 DIR] [key=value ...]
# --nproc N trains with N processes (torchrun, DistributedDataParallel; one GPU each when there are GPUs).
# key=value arguments override the training config (e.g. model.rnn.cell=gru train.max_epochs=20).
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=4
conf=conf/default.yaml
nproc=1
tag=
an4=../../../shared/data/an4
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[an4 $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ ! -d "$an4/etc" ] && [ -d exp/download/an4/etc ]; then
  an4=exp/download/an4  # downloaded by an earlier run
fi
if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -d "$an4/etc" ]; then
    log "stage 0: using AN4 at $an4"
  else
    log "stage 0: no AN4 at $an4; downloading an4_sphere.tar.gz into exp/download"
    python ../../data_prep/an4.py --download exp/download --out exp/data
    an4=exp/download/an4
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f exp/data/test.jsonl ] && [ -f exp/data/cmvn.pt ]; then
    log "stage 1: manifests and CMVN stats exist, skipped"
  else
    log "stage 1: manifests and CMVN stats"
    python ../../data_prep/an4.py --src "$an4" --out exp/data
    speechrnn stats "$conf" "${overrides[@]}" -o exp/data/cmvn.pt
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  if [ -f "$exp/model.pt" ]; then
    log "stage 2: $exp/model.pt exists, skipped"
  else
    log "stage 2: training into $exp (log: $exp/train_log.jsonl)"
    if [ "$nproc" -gt 1 ]; then  # DistributedDataParallel: gloo on CPU, NCCL with one GPU per process
      torchrun --standalone --nproc-per-node "$nproc" -m speechrnn train "$conf" train.exp_dir="$exp" \
        "${overrides[@]}" --resume
    else
      speechrnn train "$conf" train.exp_dir="$exp" "${overrides[@]}" --resume
    fi
    speechrnn plot "$exp/train_log.jsonl" -o "$exp/train_curves.png"
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for set in dev test; do
    if [ -f "$exp/decode/$set.summary.json" ]; then
      log "stage 3: $set already decoded, skipped"
    else
      log "stage 3: decoding $set"
      speechrnn eval "$exp/model.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "$set"
    fi
  done
  if [ -f "$exp/decode/test_lm.summary.json" ]; then
    log "stage 3: LM decoding done, skipped"
  else
    log "stage 3: word 3-gram LM and lexicon of the training transcripts; LM weight and word score tuned on dev"
    speechrnn lm build exp/data/train.jsonl -o "$exp/words3.arpa" --order 3
    speechrnn lm lexicon "$exp/model.pt" exp/data/train.jsonl -o "$exp/words.lex"
    speechrnn tune "$exp/model.pt" exp/data/dev.jsonl --lexicon "$exp/words.lex" --lm "$exp/words3.arpa" \
      --beam-threshold 10 --token-min-logp -5  # pyctcdecode's pruning: same dev WER here, several times faster
    speechrnn calibrate "$exp/model.pt" exp/data/dev.jsonl  # word confidences that estimate how often they are right
    for set in dev test; do
      speechrnn eval "$exp/model.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_lm" --tuned
    done
  fi
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: scoring"
  python local/score.py "$exp" | tee "$exp/decode/results.txt"
  log "done: per-utterance results in $exp/decode/{dev,test}.per_utt.jsonl"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  char_lm=../english_lm/exp/default/model.pt
  [ -f "$char_lm" ] || ../english_lm/run.sh --stop-stage 1
  log "stage 5: character-LM decoding (lexicon-free, and as the lexicon decoder's fallback), tuned on dev"
  cp "$exp/model.pt" "$exp/model_charlm.pt"
  speechrnn tune "$exp/model_charlm.pt" exp/data/dev.jsonl --char-lm "$char_lm" --lm-weights 0 0.1 0.25 0.5 0.75 1 \
    --char-bonuses 0 1 2
  cp "$exp/model.pt" "$exp/model_lm_charlm.pt"
  speechrnn tune "$exp/model_lm_charlm.pt" exp/data/dev.jsonl --lexicon "$exp/words.lex" --lm "$exp/words3.arpa" \
    --beam-threshold 10 --token-min-logp -5 --oov-margins inf 2 4 8 16 --fallback "$exp/model_charlm.pt"
  for set in dev test; do
    for name in charlm lm_charlm; do
      speechrnn eval "$exp/model_$name.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_$name" --tuned
    done
  done
fi
