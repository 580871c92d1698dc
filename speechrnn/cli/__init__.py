"""`speechrnn` command line: train | stats | plot | eval | tune | calibrate | transcribe | align | lm | add-aligner |
export | plot-ink | orientation | write | synthesis | classify | tagger | serve | mic.

One parser: each module of this package registers its command group with `add_parsers(commands)`, every command
with `set_defaults(run=handler)`. Handlers import the library (and torch) when they run, never here, so that
`speechrnn --help` and `speechrnn COMMAND --help` answer at once."""

import argparse
import sys

from .. import __version__
from ..errors import UserError
from . import bundle, classify, evaluate, ink, lm, mic, models, serve, tagger, train, transcribe, write
from .examples import add_examples

EPILOG = "Run `speechrnn COMMAND --help` for a command's options. Recipes: recipes/<corpus>/run.sh."
# in --help's order
COMMAND_GROUPS = (models, transcribe, write, train, evaluate, lm, bundle, ink, classify, tagger, serve, mic)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechrnn", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"speechrnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parsers(commands)
    add_examples(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Parse `argv` (default: sys.argv[1:]) and run the command. A UserError is one line on stderr and exit
    status 2; Ctrl-C exits with 130."""
    parser = build_parser()
    args, extras = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    # key=value overrides after an option (`train CONF --resume k=v`): argparse ends a positional list at the option
    if extras and isinstance(getattr(args, "overrides", None), list) and all(
            "=" in extra and not extra.startswith("-") for extra in extras):
        args.overrides += extras
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
