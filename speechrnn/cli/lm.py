"""`speechrnn lm build | lexicon`: n-gram language models and lexicons for beam search."""

from ..lm import UNITS  # speechrnn.lm imports no torch
from .common import add_command


def cmd_lm_build(args) -> None:
    """Interpolated modified Kneser-Ney n-gram LM (as KenLM's lmplz), written as ARPA text that the CTC beam
    decoder loads. Text is taken as it is: normalise it the way the model's tokenizer does (AN4: upper case)."""
    from ..lm import build_lm

    print(build_lm(args.text, args.output, order=args.order, unit=args.unit))


def cmd_lm_lexicon(args) -> None:
    """One line per distinct word, spelled with the model's characters (flashlight's WORD<TAB>W O R D | format)."""
    from ..bundle import load_bundle
    from ..decoder_files import write_lexicon
    from ..lm import read_sentences
    from ..text import Tokenizer

    tokenizer = Tokenizer.from_dict(load_bundle(args.bundle)["tokenizer"])
    words = [word for sentence in read_sentences(args.text) for word in sentence.split()]
    written, skipped = write_lexicon(words, tokenizer, args.output)
    print(f"wrote {args.output}: {written} words spelled with {args.bundle}'s characters ({skipped} left out)")


def add_parsers(commands) -> None:
    p = commands.add_parser("lm", help="n-gram language models", description="n-gram language models.")
    lm_commands = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")

    p = add_command(lm_commands, "build", cmd_lm_build,
                    "build a modified Kneser-Ney n-gram LM from text, written as ARPA")
    p.add_argument("text", help="training text: one sentence per line, or a JSONL manifest (.jsonl) with \"text\"")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write, e.g. lm.arpa")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default: 3)")
    p.add_argument("--unit", choices=UNITS, default="word",
                   help="word: whitespace tokens; char: characters with | for the space (default: word)")

    p = add_command(lm_commands, "lexicon", cmd_lm_lexicon,
                    "write the lexicon of a text's words for `eval --beam --lexicon`")
    p.add_argument("bundle", help="model bundle whose characters spell the words")
    p.add_argument("text", help="text file (one sentence per line) or JSONL manifest (.jsonl) with \"text\"")
    p.add_argument("-o", "--output", required=True, help="lexicon file to write")
