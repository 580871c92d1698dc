# Sourced by recipes after they set their defaults (Kaldi's parse_options.sh convention):
#   --name VALUE   sets the recipe variable `name` (dashes become underscores); unknown names are refused
#   key=value      collected in the array `overrides`, passed on to `speechrnn train`
#   -h, --help     prints the recipe's header comment
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$(basename "$0")"; exit 0 ;;
    --*)
      _name=${1#--}; _name=${_name//-/_}
      if [ -z "${!_name+set}" ] || [ $# -lt 2 ]; then
        echo "error: unknown option or missing value: $1 (see $0 --help)" >&2; exit 2
      fi
      printf -v "$_name" '%s' "$2"; shift 2 ;;
    *=*) overrides+=("$1"); shift ;;
    *) echo "error: unexpected argument '$1' (see $0 --help)" >&2; exit 2 ;;
  esac
done
unset _name
