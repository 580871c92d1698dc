#!/usr/bin/env bash
# bench_decode.py with the ours-vs-pyctcdecode table. pyctcdecode pins numpy<2, so it lives in a throwaway venv
# of its own (made here on first use, outside the repo), never in speechrnn's. Arguments go to bench_decode.py:
#
#   benchmarks/bench_pyctcdecode.sh --bundle recipes/an4/exp/default/model.pt --data recipes/an4/exp/data \
#       --work /tmp/bench_decode --no-parallel
#
# PYCTCDECODE_VENV: where that venv lives (default: $TMPDIR/speechrnn-pyctcdecode-venv). kenlm (needed for an
# ARPA LM) has no wheel on PyPI: pip builds it from its sdist (needs a C++ compiler and cmake; about a minute).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PYCTCDECODE_VENV:-${TMPDIR:-/tmp}/speechrnn-pyctcdecode-venv}"
if ! "$venv/bin/python" -c 'import pyctcdecode, kenlm' >/dev/null 2>&1; then
  echo "setting up $venv with pyctcdecode and kenlm (first run only)" >&2
  python3 -m venv "$venv"
  if ! "$venv/bin/python" -m pip install "pyctcdecode==0.5.0" "kenlm==0.3.0" >"$venv/install.log" 2>&1; then
    tail -n 30 "$venv/install.log" >&2
    echo "error: installing pyctcdecode into $venv failed (full log: $venv/install.log)" >&2
    exit 1
  fi
fi
# shellcheck disable=SC1091
. "$root/tools/activate.sh"
exec python "$root/benchmarks/bench_decode.py" --pyctcdecode "$venv/bin/python" "$@"
