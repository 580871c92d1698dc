#!/usr/bin/env bash
# FSDD (Free Spoken Digit Dataset): spoken-digit classification, speaker-disjoint, with the speech encoder
# (conv + RNN) and masked pooling (`speechrnn classify`). Each speaker in turn is the test speaker of one fold;
# the model trains on the other three and is selected on a dev slice of *their* recordings (indices 0-4).
#
# Stages (each is skipped when its output already exists):
#   0  data     fold manifests exp/data/<test speaker>/{train,dev,test,test_a,test_b}.jsonl from the FSDD recordings
#               (read in place); with --tts true also synthetic digits from the installed text-to-speech voices
#               (data_prep/tts_digits.py -> exp/tts); with --an4-digits true also the digit words of AN4's training
#               utterances, cut out by forced alignment with the shipped AN4 model (data_prep/an4_digits.py ->
#               exp/an4_digits; the AN4 manifests come from ../an4/run.sh --stop-stage 1 when missing); with either,
#               exp/data/<fold>/train_all.jsonl = train + the extra clips
#   1  train    one model per fold on train_all.jsonl (train.jsonl when both extras are off) ->
#               exp/TAG/<fold>/model.pt; a killed run continues from its last.pt
#   2  eval     each fold's model on its test speaker -> exp/TAG/<fold>/eval/test.summary.json, and on the same
#               recordings with 0.5 s of silence added at both ends and cut to the speech (data_prep/conditions.py
#               -> exp/conditions/<fold>/) -> test_silence_0.5s.summary.json, test_trimmed.summary.json
#   3  adapt    unsupervised speaker adaptation (`speechrnn classify adapt`, self-training): the model adapts to
#               the test speaker's recordings with index 0-24 (test_a, labels unread) and is scored on 25-49
#               (test_b), then the other way round; every recording is scored by a model that never heard it
#               -> exp/TAG/<fold>/eval/adapted_on_{a,b}.summary.json
#   4  summary  per-fold and mean test accuracy, plain and adapted -> exp/TAG/results.txt
#
# Usage: recipes/fsdd/run.sh [--stage N] [--stop-stage M] [--conf conf/X.yaml] [--tag NAME] [--folds "a b"]
#                            [--tts true|false] [--an4-digits true|false] [--fsdd DIR] [key=value ...]
# key=value arguments override the training config, e.g. model.rnn.cell=lstm model.pooling=attention
# train.max_epochs=2 adapt.rounds=2 (use a new --tag for each variant: finished stages are skipped).
# --folds picks some folds (names = test speakers, default: all in exp/data/folds.txt).
# --tts true (default) adds about 7,000 synthetic clips (725 voices of espeak-ng, flite and festival) to each
# fold's training set; it needs Debian's espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k
# festvox-us-slt-hts (installed here when missing and run as root).
# --an4-digits true adds about 1,400 digit words of AN4's 66 training speakers (8 kHz, trimmed to the word; built
# once, in about a minute on one core; it needs the AN4 corpus, ../../../shared/data/an4 or downloaded by
# ../an4/run.sh). Off by default: it did not help (RESULTS.md). --tts false trains on FSDD alone.
# Folds run one after another (about 7 minutes each on one core with --tts true); on 2 cores, run stage 0 alone
# (--stop-stage 0), then two --folds lists side by side: 17 minutes in all (RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")"
stage=0
stop_stage=4
conf=conf/default.yaml
tag=
folds=
tts=true
an4_digits=false
fsdd=../../../shared/data/fsdd
. ../../tools/parse_options.sh "$@"
tag=${tag:-$(basename "$conf" .yaml)}
exp=exp/$tag
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[fsdd $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  if [ -f exp/data/folds.txt ] && [ -f exp/data/"$(head -n1 exp/data/folds.txt)"/test_a.jsonl ]; then
    log "stage 0: fold manifests exist, skipped"
  else
    log "stage 0: fold manifests from $fsdd"
    python ../../data_prep/fsdd.py --src "$fsdd" --out exp/data
  fi
  if [ "$tts" = true ] && [ ! -f exp/tts/tts.jsonl ]; then
    engines="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
    if command -v dpkg >/dev/null; then  # Debian/Ubuntu: the voices are packages of their own
      missing=$(for package in $engines; do dpkg -s "$package" >/dev/null 2>&1 || echo "$package"; done)
    else
      missing=$(for program in espeak-ng flite text2wave; do command -v "$program" >/dev/null || echo "$program"; done)
    fi
    if [ -n "$missing" ]; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "stage 0: installing the text-to-speech engines and voices:" $missing
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
      else
        echo "error: --tts true needs the text-to-speech packages $engines; missing:" $missing \
          "(sudo apt-get install them, or run with --tts false)" >&2
        exit 1
      fi
    fi
    log "stage 0: synthetic digits from the installed voices -> exp/tts (about 2 minutes)"
    python ../../data_prep/tts_digits.py --out exp/tts
  fi
  if [ "$an4_digits" = true ] && [ ! -f exp/an4_digits/an4_digits.jsonl ]; then
    if [ ! -f ../an4/exp/data/train.jsonl ]; then
      log "stage 0: AN4 manifests for the digit cuts (../an4/run.sh --stop-stage 1)"
      ../an4/run.sh --stop-stage 1
    fi
    log "stage 0: digit words cut out of AN4's training utterances -> exp/an4_digits (about a minute)"
    python ../../data_prep/an4_digits.py --manifest ../an4/exp/data/train.jsonl --out exp/an4_digits
  fi
fi
if [ -z "$folds" ]; then
  folds=$(cat exp/data/folds.txt)
fi
extras=()  # manifests of extra training clips, each next to its wav/ folder in exp/
[ "$tts" = true ] && extras+=(tts/tts.jsonl)
[ "$an4_digits" = true ] && extras+=(an4_digits/an4_digits.jsonl)
train_set=train  # what stage 1 trains on: train, or train_all = train + the extras
if [ ${#extras[@]} -gt 0 ]; then
  train_set=train_all
  for extra in "${extras[@]}"; do
    if [ ! -f "exp/$extra" ]; then
      echo "error: exp/$extra is missing; run stage 0 with these --tts/--an4-digits first (or turn it off)" >&2
      exit 1
    fi
  done
  for fold in $folds; do  # the fold's recordings + the extra ones (paths made relative to exp/data/<fold>/)
    { cat "exp/data/$fold/train.jsonl"
      for extra in "${extras[@]}"; do
        sed "s#\"audio_filepath\": \"wav/#\"audio_filepath\": \"../../$(dirname "$extra")/wav/#" "exp/$extra"
      done
    } > "exp/data/$fold/train_all.jsonl"
  done
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  mkdir -p "$exp"
  for fold in $folds; do
    if [ -f "$exp/$fold/model.pt" ]; then
      log "stage 1: $exp/$fold/model.pt exists, skipped"
      continue
    fi
    log "stage 1: fold $fold (test speaker $fold held out), training on exp/data/$fold/$train_set.jsonl into $exp/$fold"
    speechrnn classify train "$conf" data.train_manifest="exp/data/$fold/$train_set.jsonl" \
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
      speechrnn classify eval "$exp/$fold/model.pt" "exp/data/$fold/test.jsonl" --out "$exp/$fold/eval" \
        --name test
    fi
    for condition in silence_0.5s trimmed; do  # the same recordings with 0.5 s of silence added at both ends / cut
      if [ ! -f "$exp/$fold/eval/test_$condition.summary.json" ]; then
        copies=exp/conditions/$fold/$condition
        if [ ! -f "$copies/test_$condition.jsonl" ]; then
          python ../../data_prep/conditions.py --manifest "exp/data/$fold/test.jsonl" --condition "$condition" \
            --out "$copies" --name "test_$condition"
        fi
        speechrnn classify eval "$exp/$fold/model.pt" "$copies/test_$condition.jsonl" --out "$exp/$fold/eval" \
          --name "test_$condition"
      fi
    done
  done
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for fold in $folds; do
    for half in a b; do
      other=$([ "$half" = a ] && echo b || echo a)
      if [ -f "$exp/$fold/eval/adapted_on_$half.summary.json" ]; then
        log "stage 3: fold $fold adapted on test_$half already scored, skipped"
        continue
      fi
      log "stage 3: fold $fold: adapting to test_$half (labels unread), scoring test_$other"
      speechrnn classify adapt "$exp/$fold/model.pt" "exp/data/$fold/test_$half.jsonl" \
        -o "$exp/$fold/adapted_on_$half.pt" --train-manifest "exp/data/$fold/train.jsonl"
      speechrnn classify eval "$exp/$fold/adapted_on_$half.pt" "exp/data/$fold/test_$other.jsonl" \
        --out "$exp/$fold/eval" --name "adapted_on_$half"
    done
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: summary"
  python local/score.py "$exp" $folds | tee "$exp/results.txt"
  log "done: per-utterance results in $exp/<fold>/eval/*.per_utt.jsonl"
fi
