"""Accuracy table of a finished FSDD run (run.sh stage 4): per test speaker (fold) the test accuracy, the accuracy
after unsupervised adaptation (when stage 3 ran), dev accuracy, best epoch and training time; then the means and
the worst fold; then, where stage 2 scored them, the accuracy on the same recordings under each test condition
(0.5 s of silence at both ends, cut to the speech).

Usage: python local/score.py exp/default george jackson lucas nicolas theo yweweler
"""

import argparse
import json
from pathlib import Path

from speechrnn.bundle import load_bundle

CONDITIONS = ("silence_0.5s", "trimmed")  # run.sh stage 2's conditioned copies of each test set


def summary(exp: Path, fold: str, name: str) -> dict | None:
    path = exp / fold / "eval" / f"{name}.summary.json"
    return json.loads(path.read_text()) if path.exists() else None


def fold_rows(exp: Path, folds: list[str]) -> tuple[list[tuple], dict]:
    """(fold, test summary, (adapted correct, adapted utterances) or None, bundle extra) per fold; the last bundle."""
    rows = []
    for fold in folds:
        bundle = load_bundle(exp / fold / "model.pt")
        halves = [summary(exp, fold, f"adapted_on_{half}") for half in "ab"]
        adapted = (sum(h["correct"] for h in halves), sum(h["utterances"] for h in halves)) if all(halves) else None
        rows.append((fold, summary(exp, fold, "test"), adapted, bundle["extra"]))
    return rows, bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp", type=Path, help="the run's folder, one subfolder per fold")
    parser.add_argument("folds", nargs="+", help="the folds (test speakers), in table order")
    args = parser.parse_args()
    exp = args.exp
    rows, bundle = fold_rows(exp, args.folds)
    model = bundle["config"]["model"]
    rnn = model["rnn"]
    print(f"{exp.name}: {rnn['cell']} {rnn['num_layers']} x {'bi' if rnn['bidirectional'] else 'uni'}directional "
          f"{rnn['hidden_size']}, {model['pooling']} pooling, trained on "
          f"{Path(bundle['config']['data']['train_manifest']).name}; "
          "FSDD speaker-disjoint (train 3 speakers, test the 4th)")
    print(f"{'test speaker':<14}{'accuracy':>9}{'correct':>10}{'adapted':>9}{'correct':>10}{'dev acc':>9}{'epoch':>7}"
          f"{'train s':>9}")
    for fold, s, adapted, extra in rows:
        adapted_text = (f"{100 * adapted[0] / adapted[1]:>8.2f}%{adapted[0]:>6}/{adapted[1]:<3}" if adapted
                        else f"{'-':>19}")
        print(f"{fold:<14}{100 * s['accuracy']:>8.2f}%{s['correct']:>6}/{s['utterances']:<3}{adapted_text}"
              f"{100 * extra['dev_accuracy']:>8.1f}%{extra['epoch']:>7}{extra['train_seconds']:>9.0f}")
    mean = sum(s["accuracy"] for _, s, _, _ in rows) / len(rows)
    line = f"{'mean':<14}{100 * mean:>8.2f}%{'':10}"
    if all(adapted for _, _, adapted, _ in rows):
        line += f"{100 * sum(a / n for _, _, (a, n), _ in rows) / len(rows):>8.2f}%"
    print(line + f"  over {len(rows)} fold(s); adapted = unsupervised adaptation to the other half of the test speaker")
    worst = min(rows, key=lambda row: row[1]["accuracy"])
    print(f"{'worst fold':<14}{100 * worst[1]['accuracy']:>8.2f}%  ({worst[0]})")
    for condition in CONDITIONS:
        scored = [summary(exp, fold, f"test_{condition}") for fold, *_ in rows]
        if all(scored):
            cells = "  ".join(f"{fold} {100 * s['accuracy']:.2f}%" for (fold, *_), s in zip(rows, scored))
            print(f"{condition:<14}{100 * sum(s['accuracy'] for s in scored) / len(scored):>8.2f}%  mean; {cells}")


if __name__ == "__main__":
    main()
