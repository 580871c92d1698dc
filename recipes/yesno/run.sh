#!/usr/bin/env bash
# yesno (openslr 1): 60 files of 8 spoken YES/NO words; train on the first 30, test on the other 30.
# Stages: 0 data check, 1 manifests, 2 train, 3 decode (greedy, and beam search over the lexicon of the training
# words), 4 score. Each stage is skipped when its output exists.
# Usage: recipes/yesno/run.sh [--stage N] [--stop-stage M] [--conf F] [--tag NAME] [--yesno DIR] [key=value ...]
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=4
conf=conf/default.yaml
tag=
yesno=../../../shared/data/yesno
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ -d "$yesno" ] || { echo "error: no yesno corpus at $yesno; pass --yesno DIR (openslr.org/1)" >&2; exit 1; }
fi
if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ] && [ ! -f exp/data/test.jsonl ]; then
  python ../../data_prep/yesno.py --src "$yesno" --out exp/data
fi
if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ] && [ ! -f "$exp/model.pt" ]; then
  speechrnn train "$conf" train.exp_dir="$exp" "${overrides[@]}" --resume
fi
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ] && [ ! -f "$exp/decode/test.summary.json" ]; then
  # Greedy, and beam search constrained to the training words (YES, NO): a closed vocabulary, as Kaldi's
  # yesno grammar is.
  speechrnn eval "$exp/model.pt" exp/data/test.jsonl --out "$exp/decode" --name test_greedy
  speechrnn lm lexicon "$exp/model.pt" exp/data/train.jsonl -o "$exp/words.lex"
  speechrnn eval "$exp/model.pt" exp/data/test.jsonl --out "$exp/decode" --name test --beam 8 --lexicon "$exp/words.lex"
fi
if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  python local/score.py "$exp/decode" test_greedy test | tee "$exp/decode/results.txt"
fi
