# Sourced by run.sh, test.sh and the recipes: activate the project venv (.venv at the repo root),
# creating it from pyproject.toml the first time and refreshing it when pyproject.toml changes.
# An already active virtualenv/conda env that has speechrnn installed is used as it is.
_speechrnn_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if python3 -c 'import speechrnn, torchaudio' >/dev/null 2>&1 && [ -n "${VIRTUAL_ENV:-}${CONDA_PREFIX:-}" ] \
   && [ "${VIRTUAL_ENV:-}" != "$_speechrnn_root/.venv" ]; then
  return 0
fi
_venv="$_speechrnn_root/.venv"
_stamp="$_venv/.speechrnn-installed"
if [ ! -x "$_venv/bin/python" ]; then
  echo "setting up $_venv (first run only: about a minute, most of it torch)" >&2
  python3 -m venv "$_venv"
fi
# shellcheck disable=SC1091
. "$_venv/bin/activate"
if [ ! -f "$_stamp" ] || [ "$_speechrnn_root/pyproject.toml" -nt "$_stamp" ]; then
  # pip's own chatter goes to a log; it is shown only when the install fails.
  if ! { python -m pip install --upgrade pip && python -m pip install -e "$_speechrnn_root[dev]"; } \
       >"$_venv/install.log" 2>&1; then
    tail -n 30 "$_venv/install.log" >&2
    echo "error: installing speechrnn into $_venv failed (full log: $_venv/install.log)" >&2
    return 1
  fi
  touch "$_stamp"
fi
unset _speechrnn_root _venv _stamp
