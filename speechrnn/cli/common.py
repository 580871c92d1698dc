"""What several commands share: registering a command (add_command: its handler's docstring is its description),
the arguments of training and evaluation commands, the --device, --threads and --hotword options.

Nothing here imports torch at module level: building the parser (`speechrnn --help`) must stay fast."""

from ..errors import UserError

HOTWORD_BOOST = 5.0
CUDA_WHEN_PRESENT = "default: cuda when present, else cpu"
TORCH_THREADS = "default: torch's choice"


def add_device_option(parser, default: str | None = None, meaning: str = CUDA_WHEN_PRESENT) -> None:
    parser.add_argument("--device", default=default, help=f"cpu, cuda or cuda:N ({meaning})")


def add_threads_option(parser, default: int = 0, meaning: str = TORCH_THREADS) -> None:
    parser.add_argument("--threads", type=int, default=default, help=f"torch CPU threads ({meaning})")


def set_threads(threads: int) -> None:
    """torch's CPU threads, when given (0: leave torch's choice)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def add_hotword_option(parser) -> None:
    parser.add_argument("--hotword", action="append", metavar="WORD[:BOOST]",
                        help=f"raise WORD's score by BOOST (default {HOTWORD_BOOST:g}, natural-log units) in beam "
                             "search over a lexicon; words missing from the lexicon are added; repeat for several")


def parse_hotwords(items: list[str] | None) -> dict[str, float]:
    """["WORD", "OTHER:2.5"] -> {"WORD": 5.0, "OTHER": 2.5}"""
    hotwords = {}
    for item in items or []:
        word, _, boost = item.partition(":")
        try:
            hotwords[word] = float(boost) if boost else HOTWORD_BOOST
        except ValueError:
            raise UserError(f"--hotword {item!r}: the boost after ':' must be a number, e.g. {word}:3.0") from None
    return hotwords


def add_training_arguments(parser, config_example: str, overrides_example: str, device_default: str) -> None:
    """CONFIG [key=value ...] [--resume | --overwrite] [--device]: the arguments of every training command."""
    parser.add_argument("config", help=f"YAML config ({config_example})")
    parser.add_argument("overrides", nargs="*", help=f"key=value overrides, e.g. {overrides_example}")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from exp_dir/last.pt if it exists")
    again.add_argument("--overwrite", action="store_true",
                       help="replace the earlier run in exp_dir (without it, or --resume, such a folder is refused)")
    add_device_option(parser, meaning=device_default)


def training_config(load_config, args):
    """The config a training command's arguments describe: the YAML file, its overrides and --device."""
    config = load_config(args.config, args.overrides)
    if args.device:
        config.train.device = args.device
    return config


def add_report_arguments(parser, name_default: str | None = None) -> None:
    """-o/--output_dir DIR (old spelling --out) [--name NAME]: where an evaluation writes its reports."""
    parser.add_argument("-o", "--output_dir", "--output-dir", "--out", dest="out", default=".", metavar="DIR",
                        help="folder for the reports (default: current folder)")
    if name_default:
        parser.add_argument("--name", help=f"report name (default: {name_default})")


def add_command(commands, name: str, handler, summary: str, **options):
    """Register command `name`, run by `handler`; the handler's docstring, white space folded, is the description
    its --help shows (unless `options` give one), and `summary` the line `speechrnn --help` lists. `options`: more
    of add_parser's keywords."""
    options.setdefault("description", " ".join(handler.__doc__.split()))
    parser = commands.add_parser(name, help=summary, **options)
    parser.set_defaults(run=handler)
    return parser


def add_positionals(parser, **meanings: str) -> None:
    """Positional arguments, in order: name=help."""
    for name, meaning in meanings.items():
        parser.add_argument(name, help=meaning)


def add_training_command(commands, handler, summary: str, keys: str, config_example: str, overrides_example: str,
                         device_default: str = "default: train.device"):
    """A command that trains from a YAML config (CONFIG [key=value ...] [--resume] [--device]); `keys`, the
    config keys worth knowing, end its --help."""
    parser = add_command(commands, "train", handler, summary, epilog=keys)
    add_training_arguments(parser, config_example, overrides_example, device_default)
    return parser
