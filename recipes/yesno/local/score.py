"""Word errors of yesno decodings (run.sh stage 4), one line per decoding.

Usage: python local/score.py exp/default/decode test_greedy test
"""

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("decode", type=Path, help="folder holding NAME.summary.json for each NAME")
    parser.add_argument("names", nargs="+", help="decodings to report, in this order")
    args = parser.parse_args()
    for name in args.names:
        s = json.loads((args.decode / f"{name}.summary.json").read_text())
        errors = s["word_substitutions"] + s["word_deletions"] + s["word_insertions"]
        print(f"yesno {name}: {errors} word errors / {s['words']} words (WER {100 * s['wer']:.2f} %)")


if __name__ == "__main__":
    main()
