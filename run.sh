#!/usr/bin/env bash
# The main job: the AN4 recipe end to end (data -> manifests + stats -> train -> decode -> score).
# Arguments are passed on to recipes/an4/run.sh (e.g. --stage 2, --conf conf/long.yaml, key=value overrides).
set -euo pipefail
cd "$(dirname "$0")"
exec recipes/an4/run.sh "$@"
