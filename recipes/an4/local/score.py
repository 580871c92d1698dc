"""WER/CER summary of a finished AN4 run (run.sh stage 4): greedy and with the word LM, dev and test, one line each.

Usage: python local/score.py exp/default
"""

import argparse
import json
from pathlib import Path

SETS = ("dev", "test", "dev_lm", "test_lm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp", type=Path, help="the run's folder, holding decode/NAME.summary.json for each of "
                                               + ", ".join(SETS))
    exp = parser.parse_args().exp
    for name in SETS:
        s = json.loads((exp / "decode" / f"{name}.summary.json").read_text())
        print(f"{exp.name} {name:7}: WER {100 * s['wer']:.2f} % ({s['word_substitutions']} sub, {s['word_deletions']} "
              f"del, {s['word_insertions']} ins / {s['words']} words), CER {100 * s['cer']:.2f} %, "
              f"{s['sentence_errors']}/{s['utterances']} utterances wrong")


if __name__ == "__main__":
    main()
