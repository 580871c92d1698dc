#!/usr/bin/env bash
# A character language model of English, from text that Debian and PyPI packages ship (data_prep/english_text.py),
# for shallow fusion in CTC beam search (speechrnn tune --char-lm) and text generation (speechrnn lm generate).
#
# Stages (each is skipped when its output already exists):
#   0  text       train/dev/test text and the word list words.tsv -> exp/text (plus --in-domain training manifests)
#   1  train      speechrnn lm train -> exp/TAG/model.pt (the epoch with the lowest dev bits per character)
#   2  score      bits per character on the held-out test text: the RNN LM and a character n-gram of the same
#                 training text (speechrnn lm build --unit char --order N) -> exp/TAG/results.txt
#   3  generate   a few samples (speechrnn lm generate) -> exp/TAG/samples.txt
#
# Usage: recipes/english_lm/run.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME]
#                                  [--in-domain "A.jsonl B.jsonl"] [--ngram-order N] [key=value ...]
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=3
conf=conf/default.yaml
tag=
in_domain=
ngram_order=7  # of 5, 6, 7: the lowest dev bits per character (2.257, 2.121, 2.067)
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[english_lm $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -f exp/text/words.tsv ]; then
    log "stage 0: exp/text exists, skipped"
  else
    log "stage 0: English text from installed packages -> exp/text"
    # shellcheck disable=SC2086
    python ../../data_prep/english_text.py --out exp/text ${in_domain:+--in-domain $in_domain}
  fi
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$exp/model.pt" ]; then
    log "stage 1: $exp/model.pt exists, skipped"
  else
    log "stage 1: training into $exp (log: $exp/train_log.jsonl)"
    speechrnn lm train "$conf" train.exp_dir="$exp" "${overrides[@]}" --resume
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  log "stage 2: bits per character on exp/text/test.txt"
  [ -f "exp/char${ngram_order}.arpa" ] || speechrnn lm build exp/text/train.txt --unit char --order "$ngram_order" \
    -o "exp/char${ngram_order}.arpa"
  { speechrnn lm score "$exp/model.pt" exp/text/test.txt
    speechrnn lm score "exp/char${ngram_order}.arpa" exp/text/test.txt; } | tee "$exp/results.txt"
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  log "stage 3: samples -> $exp/samples.txt"
  for prompt in "The " "A dog " "In the morning "; do
    speechrnn lm generate "$exp/model.pt" --prompt "$prompt" --temperature 0.7 --seed 1 -n 2
  done | tee "$exp/samples.txt"
fi
