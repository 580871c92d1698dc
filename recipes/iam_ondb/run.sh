#!/usr/bin/env bash
# IAM On-Line Handwriting Database (IAM-OnDB), text lines, task t1 split: character CTC with a BiLSTM over pen-stroke
# features, started from the shipped UNIPEN handwriting model. For users with their own licensed copy (register and
# download at fki.tic.heia-fr.ch: lineStrokes-all.tar.gz and ascii-all.tar.gz, extracted into one folder, and the
# task t1 lists trainset.txt, testset_v.txt, testset_t.txt, testset_f.txt); nothing is downloaded here.
#
# Stages (each is skipped when its output already exists):
#   0  data       check --src: lineStrokes/ and ascii/ in it, and the t1 split lists (there or in --splits)
#   1  manifests  train/dev/test manifests + ink stores in EXP/data (data_prep/iam_ondb.py): train = trainset,
#                 dev = testset_v + testset_t, test = testset_f; without any lists a md5 split of the form ids
#   2  train      speechrnn train from --init (train.init_from); a killed run continues from EXP/TAG/last.pt
#   3  decode     greedy decoding of dev and test; per-line results in EXP/TAG/decode/{dev,test}.per_utt.jsonl
#   4  score      CER and WER of dev and test -> EXP/TAG/decode/results.txt
#
# Usage: recipes/iam_ondb/run.sh --src DIR [--splits DIR] [--stage N] [--stop-stage M] [--conf conf/X.yaml]
#                                [--tag NAME] [--exp DIR] [--init BUNDLE|none] [key=value ...]
# --src DIR     the IAM-OnDB folder holding lineStrokes/ and ascii/ (original/ too, if there: writer ids)
# --splits DIR  the folder of the t1 split lists when they are not in --src
# --exp DIR     where the manifests (DIR/data) and the runs (DIR/TAG) go (default: exp in this recipe's folder)
# --init B      the bundle training starts from (default: ../../speechrnn/pretrained/unipen.pt, the UNIPEN words
#               model; its letters must all occur in the training texts); --init none trains from scratch
# --src, --splits, --exp and --init are read from the folder run.sh is started in; --conf from this recipe's folder.
# key=value arguments override the training config (e.g. train.max_epochs=10 train.threads=2).
# Example: recipes/iam_ondb/run.sh --src ~/corpora/IAM-OnDB
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")"
stage=0
stop_stage=4
conf=conf/default.yaml
tag=
src=
splits=
exp=
init=$(cd ../.. && pwd)/speechrnn/pretrained/unipen.pt
. ../../tools/parse_options.sh "$@"
from_caller() { case "$1" in ""|/*|none) printf '%s' "$1" ;; *) printf '%s/%s' "$caller" "$1" ;; esac; }
src=$(from_caller "$src")
splits=$(from_caller "$splits")
init=$(from_caller "$init")
exp=$(from_caller "$exp")
exp=${exp:-exp}
tag=${tag:-$(basename "$conf" .yaml)}
expdir=$exp/$tag
data=$exp/data
. ../../tools/activate.sh
started=$(date +%s)
log() { echo "[iam_ondb $(date +%H:%M:%S) +$(( $(date +%s) - started ))s] $*" >&2; }

lists=(trainset.txt testset_v.txt testset_t.txt testset_f.txt)
check_source() {  # one error line naming what is missing, or a warning when no t1 lists are there at all
  local how="pass --src DIR, the IAM-OnDB folder with lineStrokes/ and ascii/ (lineStrokes-all.tar.gz and
ascii-all.tar.gz extracted) and the t1 lists ${lists[*]} (or --splits DIR for the lists)"
  how=${how//$'\n'/ }
  [ -n "$src" ] || { echo "error: no IAM-OnDB folder given; $how" >&2; exit 1; }
  [ -d "$src" ] || { echo "error: $src: folder not found; $how" >&2; exit 1; }
  local missing=() absent=() folder=${splits:-$src} name
  for name in lineStrokes ascii; do [ -d "$src/$name" ] || missing+=("$src/$name/"); done
  for name in "${lists[@]}"; do [ -f "$folder/$name" ] || absent+=("$folder/$name"); done
  if [ -n "$splits" ] || [ "${#absent[@]}" -lt "${#lists[@]}" ]; then missing+=("${absent[@]}"); fi  # all or none
  if [ "${#missing[@]}" -gt 0 ]; then
    local joined
    printf -v joined '%s, ' "${missing[@]}"
    echo "error: missing ${joined%, }; $how" >&2; exit 1
  fi
  if [ "${#absent[@]}" -gt 0 ]; then
    echo "warning: no t1 split lists in $src: splitting by md5 of the form ids instead, which is not the t1 split" \
         "(put ${lists[*]} there, or pass --splits DIR)" >&2
  fi
}

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  check_source
  log "stage 0: using IAM-OnDB at $src${splits:+ with the split lists in $splits}"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  if [ -f "$data/test.jsonl" ]; then
    log "stage 1: manifests in $data exist, skipped"
  else
    if [ "$stage" -ge 1 ]; then check_source; fi  # (stage 0 did it when it ran)
    log "stage 1: manifests and ink stores into $data"
    python ../../data_prep/iam_ondb.py --root "$src" --out "$data" ${splits:+--splits "$splits"}
  fi
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  if [ -f "$expdir/model.pt" ]; then
    log "stage 2: $expdir/model.pt exists, skipped"
  else
    init_args=()
    if [ -n "$init" ] && [ "$init" != none ]; then
      [ -f "$init" ] || { echo "error: --init $init: no such bundle; pass --init BUNDLE, or --init none to train from scratch" >&2; exit 1; }
      init_args=(train.init_from="$init")
      log "stage 2: training into $expdir from $init (log: $expdir/train_log.jsonl)"
    else
      log "stage 2: training into $expdir from scratch (log: $expdir/train_log.jsonl)"
    fi
    speechrnn train "$conf" train.exp_dir="$expdir" data.train_manifest="$data/train.jsonl" \
      data.dev_manifest="$data/dev.jsonl" "${init_args[@]}" "${overrides[@]}" --resume
    speechrnn plot "$expdir/train_log.jsonl" -o "$expdir/train_curves.png"
  fi
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  for set in dev test; do
    if [ -f "$expdir/decode/$set.summary.json" ]; then
      log "stage 3: $set already decoded, skipped"
    else
      log "stage 3: greedy decoding of $set"
      speechrnn eval "$expdir/model.pt" "$data/$set.jsonl" --out "$expdir/decode" --name "$set"
    fi
  done
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  log "stage 4: scoring"
  python - "$expdir" <<'EOF' | tee "$expdir/decode/results.txt"
import json, sys
from pathlib import Path

exp = Path(sys.argv[1])
for name in ("dev", "test"):
    s = json.loads((exp / "decode" / f"{name}.summary.json").read_text())
    print(f"{exp.name} {name:4} greedy: CER {100 * s['cer']:.2f} %, WER {100 * s['wer']:.2f} % ({s['utterances']} lines, "
          f"{s['words']} words, {s['chars']} characters; {s['sentence_errors']} lines with any error)")
EOF
  log "done: $expdir/decode/results.txt"
fi
