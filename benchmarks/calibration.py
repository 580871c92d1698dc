"""Word-confidence calibration measured: how often a word said with confidence c is right, on a manifest.

A bundle's words on --manifest (its tuned decoder unless --decoding greedy, word timestamps on): each hypothesis
word's raw confidence (speechrnn/align.py) and whether it is right (aligned equal to a reference word;
speechrnn/calibration.py). Prints the words, their accuracy, the mean confidence and the expected calibration error
(ECE, --bins equal-width bins) of the raw confidences and, where the bundle has a calibration (`speechrnn
calibrate`), of the calibrated ones, with a reliability table (per bin: words, mean confidence, accuracy). The raw
confidences of a calibrated bundle are had by switching its calibration off; the calibrated ones are its map applied
to them, as Recognizer does. Goal on AN4 test (issue 17): calibrated ECE <= 0.05.

Run:  speechrnn calibrate /tmp/an4.pt recipes/an4/exp/data/dev.jsonl --threads 1     # a copy: never the shipped one
      python -m benchmarks.calibration --bundle /tmp/an4.pt --manifest recipes/an4/exp/data/test.jsonl [--out c.json]
"""

import argparse
import json
import sys

import torch

from speechrnn.calibration import BINS, calibrate, expected_calibration_error, manifest_words, reliability_table
from speechrnn.pretrained import default_bundle
from speechrnn.recognizer import Recognizer


def scores(confidences: list[float], outcomes: list[bool], bins: int) -> dict:
    return {"mean_confidence": round(sum(confidences) / max(len(confidences), 1), 4),
            "ece": round(expected_calibration_error(confidences, outcomes, bins), 4),
            "reliability": reliability_table(confidences, outcomes, bins)}


def measure(bundle: str, manifest: str, decoding: str = "tuned", bins: int = BINS) -> dict:
    recognizer = Recognizer.load(bundle, decoding=decoding)
    raw, outcomes, unreadable = manifest_words(recognizer, manifest)  # the calibration switched off
    report = {"bundle": bundle, "manifest": manifest, "decoding": decoding, "words": len(raw),
              "unreadable": unreadable, "accuracy": round(sum(outcomes) / max(len(outcomes), 1), 4),
              "calibration": recognizer.calibration, "raw": scores(raw, outcomes, bins)}
    if recognizer.calibration:
        report["calibrated"] = scores([calibrate(c, recognizer.calibration) for c in raw], outcomes, bins)
    return report


def table(name: str, rows: list[dict]) -> str:
    lines = [f"  {name}:  bin        words  confidence  accuracy"]
    lines += [f"    {r['low']:.1f}-{r['high']:.1f}  {r['words']:>9}  {r['confidence']:>10.3f}  {r['accuracy']:>8.3f}"
              for r in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(default_bundle("audio")))
    parser.add_argument("--manifest", required=True, help="speech manifest (AN4 test)")
    parser.add_argument("--decoding", choices=("tuned", "greedy"), default="tuned")
    parser.add_argument("--bins", type=int, default=BINS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="also write the report here (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = measure(args.bundle, args.manifest, args.decoding, args.bins)
    print(f"{args.manifest}: {report['words']} words, accuracy {100 * report['accuracy']:.2f} %"
          + (f", {report['unreadable']} unreadable utterance(s)" if report["unreadable"] else ""))
    for name in ("raw", "calibrated"):
        if name in report:
            print(f"  {name}: mean confidence {report[name]['mean_confidence']:.4f}, ECE {report[name]['ece']:.4f}")
    if "calibrated" not in report:
        print("  (no calibration in the bundle: run `speechrnn calibrate BUNDLE DEV_MANIFEST`)")
    for name in ("raw", "calibrated"):
        if name in report:
            print(table(name, report[name]["reliability"]))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
