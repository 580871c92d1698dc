"""Summary of a finished AN4 frame-tagger (VAD) run (vad.sh stage 3): the model, the label statistics, and test frame
accuracy and speech precision/recall/F1 of the tagger and of the EnergyVAD baseline against each kind of label.

Usage: python local/vad_summary.py exp/vad exp/vad_labels
"""

import argparse
import json
from pathlib import Path

from speechrnn.bundle import load_bundle

LABELS = ("refined", "ctc", "energy")


def describe_model(exp: Path, labels: Path) -> None:
    bundle = load_bundle(exp / "model.pt")
    extra, config = bundle["extra"], bundle["config"]
    rnn = config["model"]["rnn"]
    stats = json.loads((labels / "test.stats.json").read_text())
    print(f"{exp.name}: {rnn['num_layers']} x {'bi' if rnn['bidirectional'] else 'uni'}directional {rnn['cell']} "
          f"{rnn['hidden_size']}, trained on {Path(config['data']['train_labels']).name}, best epoch {extra['epoch']}, "
          f"{extra['train_seconds']:.0f} s training")
    print(f"test alignment: first token in frame 0-1 in {100 * stats['first_token_in_first_2_frames']:.0f} % of "
          f"utterances, median first token - energy onset {stats['start_minus_energy_onset_s']['median']:+.2f} s; "
          f"raw ctc labels vs energy labels: frame acc {100 * stats['ctc_vs_energy']['accuracy']:.1f} %, "
          f"speech F1 {100 * stats['ctc_vs_energy']['f1']:.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp", type=Path, help="the tagger's folder (model.pt, eval/test.*.summary.json); the "
                                               "EnergyVAD baseline's scores are in its sibling vad_energyvad/")
    parser.add_argument("labels", type=Path, help="the label folder (test.stats.json)")
    args = parser.parse_args()
    exp = args.exp
    describe_model(exp, args.labels)
    for name in LABELS:
        for who, folder in ((exp.name, exp), ("EnergyVAD", exp.parent / "vad_energyvad")):
            s = json.loads((folder / "eval" / f"test.{name}.summary.json").read_text())
            print(f"{who:>10} test vs {name:8}: frame acc {100 * s['accuracy']:.2f} %, speech P "
                  f"{100 * s['precision']:.2f} % R {100 * s['recall']:.2f} % F1 {100 * s['f1']:.2f} % "
                  f"({s['frames']} frames, {s['utterances']} utts); RTF {s['rtf']:.4f} at {s['threads']} thread(s)")


if __name__ == "__main__":
    main()
