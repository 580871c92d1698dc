"""CER and word error summary of a finished UNIPEN run (run.sh stage 4): greedy and lexicon-constrained, and where
stage 6 ran the open-vocabulary lexicon and the character-LM decoding, dev and test, one line each, with how many
of the words that never occur in the training transcripts were read right; for a lines model (stage 7) also the
composed lines' CER and WER. Reports that are not there are left out.

Usage: python local/score.py exp/default [--train exp/data/train.jsonl]
"""

import argparse
import json
from pathlib import Path

SETS = ("dev", "test", "dev_lexicon", "test_lexicon")
LM_SETS = tuple(f"{split}_{decoder}" for decoder in ("openvocab", "charlm", "lexicon_charlm", "openvocab_charlm")
                for split in ("dev", "test"))  # stage 6, when run
LINE_SETS = tuple(f"{split}_lines{decoder}" for decoder in ("", "_lexicon", "_charlm", "_lexicon_charlm",
                                                               "_openvocab_charlm") for split in ("dev", "test"))


def unseen_right(per_utt: Path, train_words: set[str]) -> tuple[int, int]:
    """(words outside the training transcripts read right, such words) in a per_utt.jsonl report."""
    rows = [json.loads(line) for line in per_utt.read_text().splitlines() if line.strip()]
    unseen = [row for row in rows if row["ref"] not in train_words]
    return sum(row["hyp"] == row["ref"] for row in unseen), len(unseen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp", type=Path, help="the run's folder, holding decode/{dev,test}[_lexicon].summary.json")
    parser.add_argument("--train", type=Path, default=Path("exp/data/train.jsonl"),
                        help="training manifest: its words are the seen ones (default: exp/data/train.jsonl)")
    args = parser.parse_args()
    exp = args.exp
    train_words = {json.loads(line)["text"].replace('"', "") for line in args.train.read_text().splitlines()
                   if line.strip()} if args.train.is_file() else None
    for name in (n for n in SETS + LM_SETS + LINE_SETS if (exp / "decode" / f"{n}.summary.json").is_file()):
        s = json.loads((exp / "decode" / f"{name}.summary.json").read_text())
        if name in LINE_SETS:  # lines of 2-10 words (stage 7): jiwer's word error rate
            print(f"{exp.name} {name:15}: CER {100 * s['cer']:.2f} %, WER {100 * s['wer']:.2f} % "
                  f"({s['utterances']} lines, {s['words']} words)")
            continue
        line = (f"{exp.name} {name:15}: CER {100 * s['cer']:.2f} %, word error "
                f"{100 * s['sentence_errors'] / s['utterances']:.2f} % "
                f"({s['sentence_errors']}/{s['utterances']} words with any character wrong)")
        per_utt = exp / "decode" / f"{name}.per_utt.jsonl"
        if train_words is not None and per_utt.is_file():
            right, unseen = unseen_right(per_utt, train_words)
            line += f"; words outside train read right: {right}/{unseen}"
        print(line)


if __name__ == "__main__":
    main()
