"""CER and word error summary of a finished UNIPEN run (run.sh stage 4): greedy and lexicon-constrained, dev and
test, one line each.

Usage: python local/score.py exp/default
"""

import argparse
import json
from pathlib import Path

SETS = ("dev", "test", "dev_lexicon", "test_lexicon")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp", type=Path, help="the run's folder, holding decode/{dev,test}[_lexicon].summary.json")
    exp = parser.parse_args().exp
    for name in SETS:
        s = json.loads((exp / "decode" / f"{name}.summary.json").read_text())
        print(f"{exp.name} {name:12}: CER {100 * s['cer']:.2f} %, word error "
              f"{100 * s['sentence_errors'] / s['utterances']:.2f} % "
              f"({s['sentence_errors']}/{s['utterances']} words with any character wrong)")


if __name__ == "__main__":
    main()
