#!/usr/bin/env bash
# UNIPEN online handwriting, isolated words (category 6): character CTC with a BiLSTM over pen-stroke features.
#
# Stages (each is skipped when its output already exists):
#   0  data       find the UNIPEN archive (--unipen FILE.tar.gz, or an extracted folder)
#   1  manifests  writer-disjoint train/dev/test manifests + ink stores (md5(writer) % 10: 0 test, 1 dev)
#   2  train      speechrnn train; a killed run continues from exp/TAG/last.pt when started again
#   3  decode     greedy decoding of dev and test; then beam search over the lexicon of the training words, its
#                 word score and open-vocabulary margin (BeamConfig.oov_margin) tuned on dev and stored in the
#                 bundle, on dev and test; per-word results in exp/TAG/decode/
#   4  score      CER and word error (a word is wrong unless every character is right) -> exp/TAG/decode/results.txt
#   5  picture    a few test words as the model sees them, with what it read -> exp/TAG/test_words.png
#   6  language   English beyond the training words (needs ../english_lm: its text and character LM, built there with
#                 this corpus' training transcripts as in-domain text when missing): (a) an open-vocabulary lexicon
#                 of the general-English word list mixed with the training words (`lm wordlist`, share chosen on dev)
#                 and (b) lexicon-free beam search fused with the character LSTM (`tune --char-lm`), each tuned on
#                 dev into its own copy of the bundle (model_openvocab.pt, model_charlm.pt), and (c) both lexicons
#                 with their open-vocabulary fallback reading with the character LM (tune --fallback:
#                 model_lexicon_charlm.pt, model_openvocab_charlm.pt), on dev and test; then the scores again
#                 (stage 4's table with these rows and the words outside train read right)
#   7  lines      lines and words alike: lines of 2-10 words composed from each writer's words (data_prep/ink_lines.py,
#                 writer-disjoint like the words), the model of stages 2-6 fine-tuned on words + lines with a space
#                 token (conf/lines.yaml) into exp/lines; its orientation probe (speechrnn orientation); its int8
#                 copy model_int8.pt (what ships), which all that follows decodes: greedy
#                 decoding of dev and test words and lines; the training-word lexicon with its open-vocabulary
#                 fallback tuned on dev words + lines; the test words turned
#                 over to y-down with and without saying so (local/flipped.py); scores -> exp/lines/decode/results.txt;
#                 a picture of test lines -> exp/lines/test_lines.png
#   8  writing    handwriting synthesis (text -> pen strokes, conf/synthesis.yaml) trained on the words + lines of
#                 stage 7 into exp/synthesis, and the unconditional network of the same size for comparison
#                 (model.attention=false, exp/synthesis_unconditional); local/synthesis.py: the default bias chosen
#                 on dev words of the general-English list (stored in the bundle), legibility of 1,000 test words
#                 read by the shipped recogniser, NLL per point of test writers' words, style, speed, a picture
#                 -> exp/synthesis/eval/results.json, exp/synthesis/written_words.png
#
# Usage: recipes/unipen/run.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME] [--nproc N] [--unipen PATH]
#                              [--model BUNDLE] [key=value ...]
# --model BUNDLE decodes (stages 3-6) that bundle instead of exp/TAG/model.pt, e.g. the shipped one:
#   recipes/unipen/run.sh --stage 3 --tag pretrained --model ../../speechrnn/pretrained/unipen.pt
# --nproc N trains with N processes (torchrun, DistributedDataParallel; one GPU each when there are GPUs).
# key=value arguments override the training config (e.g. model.rnn.cell=gru train.max_epochs=10).
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=8
synthesis_epochs=  # train.max_epochs of the unconditional network (default: conf/synthesis.yaml's)
conf=conf/default.yaml
model=
char_lm=../english_lm/exp/default/model.pt
shares="0.5 0.9 0.97"  # in-domain shares of the open-vocabulary word LM tried on dev
nproc=1
tag=
unipen=../../../shared/data/unipen/train_r01_v07_cat6.tar.gz
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[unipen $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  [ -e "$unipen" ] || { echo "error: no UNIPEN data at $unipen; pass --unipen FILE.tar.gz or an extracted folder" >&2; exit 1; }
  log "stage 0: using UNIPEN at $unipen"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f exp/data/test.jsonl ]; then
    log "stage 1: manifests exist, skipped"
  else
    log "stage 1: manifests and ink stores"
    if [ -d "$unipen" ]; then source_args=(--src "$unipen"); else source_args=(--archive "$unipen"); fi
    python ../../data_prep/unipen.py "${source_args[@]}" --out exp/data
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

model=${model:-$exp/model.pt}
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ] && [ "$model" != "$exp/model.pt" ] && [ ! -f "$exp/model.pt" ]; then
  mkdir -p "$exp" && cp "$model" "$exp/model.pt"  # stage 3 stores its tuned decoder in the bundle: a copy
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
  if [ -f "$exp/decode/test_lexicon.summary.json" ]; then
    log "stage 3: lexicon decoding done, skipped"
  else
    log "stage 3: lexicon of the training words; word score and open-vocabulary margin tuned on dev; beam search on dev and test"
    speechrnn lm lexicon "$exp/model.pt" exp/data/train.jsonl -o "$exp/words.lex"
    # open vocabulary: a test word missing from the training lexicon is read without it when the model is sure
    # enough (margin chosen on dev; inf = closed lexicon is in the grid too)
    speechrnn tune "$exp/model.pt" exp/data/dev.jsonl --lexicon "$exp/words.lex" --word-scores -2 0 2 4 \
      --oov-margins inf 4 8 12 16 20 24
    for set in dev test; do
      speechrnn eval "$exp/model.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_lexicon" --tuned
    done
  fi
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: scoring"
  python local/score.py "$exp" | tee "$exp/decode/results.txt"
fi

if [ "$stage" -le 5 ] && [ "$stop_stage" -ge 5 ]; then
  log "stage 5: picture of test words"
  speechrnn plot-ink --manifest exp/data/test.jsonl --first 6 --stride 1511 --bundle "$exp/model.pt" -o "$exp/test_words.png"
  log "done: per-word results in $exp/decode/{dev,test}.per_utt.jsonl"
fi

if [ "$stage" -le 6 ] && [ "$stop_stage" -ge 6 ]; then
  if [ ! -f ../english_lm/exp/text/words.tsv ] || [ ! -f "$char_lm" ]; then
    log "stage 6: English text and character LM (recipes/english_lm, with this corpus' training transcripts)"
    ../english_lm/run.sh --stop-stage 1 --in-domain "$(pwd)/exp/data/train.jsonl"
  fi
  if [ -f "$exp/decode/test_openvocab.summary.json" ]; then
    log "stage 6: open-vocabulary decoding done, skipped"
  else
    log "stage 6: open-vocabulary lexicon (general English + training words); in-domain share, LM weight, margin on dev"
    best_wer=
    for share in $shares; do
      speechrnn lm wordlist "$exp/model.pt" ../english_lm/exp/text/words.tsv --case-variants \
        --in-domain exp/data/train.jsonl --in-domain-share "$share" --lexicon "$exp/open_$share.lex" \
        --arpa "$exp/open_$share.arpa" 2>/dev/null
      cp "$exp/model.pt" "$exp/model_open_$share.pt"
      speechrnn tune "$exp/model_open_$share.pt" exp/data/dev.jsonl --lexicon "$exp/open_$share.lex" \
        --lm "$exp/open_$share.arpa" --lm-weights 1 2 3 --word-scores 0 --oov-margins inf 16 2>"$exp/tune_open_$share.log"
      wer=$(python -c "import torch; print(torch.load('$exp/model_open_$share.pt', weights_only=True)['extra']['decoding']['dev_wer'])")
      log "stage 6: in-domain share $share: dev word error $wer"
      if [ -z "$best_wer" ] || python -c "import sys; sys.exit(not $wer < $best_wer)"; then
        best_wer=$wer; cp "$exp/model_open_$share.pt" "$exp/model_openvocab.pt"; echo "$share" > "$exp/open_share"
      fi
      rm -f "$exp/model_open_$share.pt"
    done
    for set in dev test; do
      speechrnn eval "$exp/model_openvocab.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_openvocab" --tuned
    done
  fi
  if [ -f "$exp/decode/test_charlm.summary.json" ]; then
    log "stage 6: character-LM decoding done, skipped"
  else
    log "stage 6: lexicon-free beam search fused with $char_lm; LM weight and character bonus on dev"
    cp "$exp/model.pt" "$exp/model_charlm.pt"
    speechrnn tune "$exp/model_charlm.pt" exp/data/dev.jsonl --char-lm "$char_lm" 2>"$exp/tune_charlm.log"
    for set in dev test; do
      speechrnn eval "$exp/model_charlm.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_charlm" --tuned
    done
  fi
  if [ -f "$exp/decode/test_openvocab_charlm.summary.json" ]; then
    log "stage 6: lexicon decoding with the character-LM fallback done, skipped"
  else
    log "stage 6: lexicon beam search whose open-vocabulary fallback reads with the character LM (margin on dev)"
    cp "$exp/model.pt" "$exp/model_lexicon_charlm.pt"
    speechrnn tune "$exp/model_lexicon_charlm.pt" exp/data/dev.jsonl --lexicon "$exp/words.lex" --word-scores 0 \
      --oov-margins inf 0 2 4 8 12 16 --fallback "$exp/model_charlm.pt" 2>"$exp/tune_lexicon_charlm.log"
    share=$(cat "$exp/open_share")
    cp "$exp/model.pt" "$exp/model_openvocab_charlm.pt"
    speechrnn tune "$exp/model_openvocab_charlm.pt" exp/data/dev.jsonl --lexicon "$exp/open_$share.lex" \
      --lm "$exp/open_$share.arpa" --lm-weights 1 2 3 --word-scores 0 --oov-margins inf 0 2 4 8 12 16 \
      --fallback "$exp/model_charlm.pt" 2>"$exp/tune_openvocab_charlm.log"
    for set in dev test; do
      for name in lexicon_charlm openvocab_charlm; do
        speechrnn eval "$exp/model_$name.pt" "exp/data/$set.jsonl" --out "$exp/decode" --name "${set}_$name" --tuned
      done
    done
  fi
  python local/score.py "$exp" | tee "$exp/decode/results.txt"
fi

if [ "$stage" -le 7 ] && [ "$stop_stage" -ge 7 ]; then
  lines=exp/lines
  if [ -f exp/data/test_lines.jsonl ]; then
    log "stage 7: composed lines exist, skipped"
  else
    log "stage 7: composing lines of 2-10 words from each writer's words"
    python ../../data_prep/ink_lines.py --data exp/data
  fi
  if [ -f "$lines/model.pt" ]; then
    log "stage 7: $lines/model.pt exists, skipped"
  else
    log "stage 7: fine-tuning $model on words + lines into $lines (log: $lines/train_log.jsonl)"
    speechrnn train conf/lines.yaml train.exp_dir="$lines" train.init_from="$model" "${overrides[@]}" --resume
    speechrnn plot "$lines/train_log.jsonl" -o "$lines/train_curves.png"
    speechrnn orientation "$lines/model.pt" exp/data/train_mixed.jsonl
  fi
  # what ships: the int8 bundle (about 4x smaller); everything below decodes it
  [ -f "$lines/model_int8.pt" ] || speechrnn export "$lines/model.pt" --int8 "$lines/model_int8.pt"
  for set in dev test dev_lines test_lines; do
    [ -f "$lines/decode/$set.summary.json" ] || speechrnn eval "$lines/model_int8.pt" "exp/data/$set.jsonl" \
      --out "$lines/decode" --name "$set"
  done
  if [ -f "$lines/decode/test_lines_lexicon.summary.json" ]; then
    log "stage 7: lexicon decoding done, skipped"
  else
    log "stage 7: training-word lexicon with its open-vocabulary fallback (greedy), tuned on dev words + lines"
    speechrnn lm lexicon "$lines/model_int8.pt" exp/data/train.jsonl -o "$lines/words.lex"
    cp "$lines/model_int8.pt" "$lines/model_lexicon.pt"
    speechrnn tune "$lines/model_lexicon.pt" exp/data/dev_mixed.jsonl --lexicon "$lines/words.lex" \
      --word-scores -2 0 2 --oov-margins inf 8 12 16 2>"$lines/tune_lexicon.log"
    for set in dev test dev_lines test_lines; do
      speechrnn eval "$lines/model_lexicon.pt" "exp/data/$set.jsonl" --out "$lines/decode" --name "${set}_lexicon" --tuned
    done
  fi
  python local/score.py "$lines" | tee "$lines/decode/results.txt"
  log "stage 7: test words turned over to y-down, with and without saying so"
  python local/flipped.py "$lines/model_int8.pt" exp/data/test.jsonl --out "$lines/decode" --name test_greedy --greedy \
    | tee -a "$lines/decode/results.txt"
  python local/flipped.py "$lines/model_lexicon.pt" exp/data/test.jsonl --out "$lines/decode" \
    --name test_lexicon | tee -a "$lines/decode/results.txt"
  speechrnn plot-ink --manifest exp/data/test_lines.jsonl --first 5 --stride 311 --bundle "$lines/model_lexicon.pt" \
    -o "$lines/test_lines.png"
fi

if [ "$stage" -le 8 ] && [ "$stop_stage" -ge 8 ]; then
  for run in synthesis synthesis_unconditional; do
    if [ -f "exp/$run/model.pt" ]; then
      log "stage 8: exp/$run/model.pt exists, skipped"
      continue
    fi
    log "stage 8: training exp/$run (log: exp/$run/train_log.jsonl)"
    extra=()
    if [ "$run" = synthesis_unconditional ]; then
      extra=(model.attention=false ${synthesis_epochs:+train.max_epochs=$synthesis_epochs})
    fi
    speechrnn synthesis train --resume conf/synthesis.yaml train.exp_dir="exp/$run" "${extra[@]}"
  done
  [ -f ../english_lm/exp/text/words.tsv ] || ../english_lm/run.sh --stop-stage 0
  log "stage 8: legibility, fit, style, speed"
  python local/synthesis.py exp/synthesis/model.pt --unconditional exp/synthesis_unconditional/model.pt \
    --recognizer unipen --out exp/synthesis/eval --picture exp/synthesis/written_words.png
fi
