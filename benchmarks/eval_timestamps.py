"""Word timestamps checked against something independent: an energy-based speech/non-speech boundary.

For every utterance of a manifest, the start of the first recognised word and the end of the last one (from
the CTC forced alignment, speechrnn.align) are compared with where the audio's energy first rises above and
last falls below `--top-db` dB under the utterance's peak (librosa.effects.trim, 25 ms frames, 10 ms hop).
Prints the distribution of the differences and the share of utterances within `--tolerance` seconds.

Run:  python benchmarks/eval_timestamps.py --bundle recipes/an4/exp/default/model.pt \
          --manifest recipes/an4/exp/data/test.jsonl [--greedy]
"""

import argparse
import sys

import librosa
import numpy as np
import torch

from speechrnn.data import load_utterances
from speechrnn.recognizer import Recognizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--top-db", type=float, default=30.0, help="energy threshold under the peak (30 dB)")
    parser.add_argument("--tolerance", type=float, default=0.1, help="seconds (0.1)")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding even if the bundle is tuned")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.load(args.bundle, decoding="greedy" if args.greedy else "tuned")
    rate = recognizer.config.features.sample_rate
    utts = load_utterances(args.manifest)
    results = recognizer.transcribe([u.path for u in utts], timestamps=True)
    starts, ends, skipped = [], [], 0
    for utt, result in zip(utts, results):
        if not result.words:
            skipped += 1
            continue
        wav = recognizer.load_input(utt.path).numpy()
        _, (first, last) = librosa.effects.trim(wav, top_db=args.top_db, frame_length=int(0.025 * rate),
                                                hop_length=int(0.01 * rate))
        starts.append(result.words[0].start - first / rate)
        ends.append(result.words[-1].end - last / rate)
    starts, ends = np.array(starts), np.array(ends)
    both = (np.abs(starts) <= args.tolerance) & (np.abs(ends) <= args.tolerance)
    print(f"{len(starts)} utterances with words ({skipped} without); energy boundary at {args.top_db:g} dB under the "
          f"peak; decoding {'greedy' if recognizer.decoder is None else 'tuned beam search'}")
    print(f"{'':18} {'median':>8} {'p10':>8} {'p90':>8} {'mean |d|':>9} {'within':>8}")
    for name, diff in (("first word start", starts), ("last word end", ends)):
        p10, p50, p90 = np.percentile(diff, [10, 50, 90])
        within = np.mean(np.abs(diff) <= args.tolerance)
        print(f"{name:18} {p50:+8.3f} {p10:+8.3f} {p90:+8.3f} {np.abs(diff).mean():9.3f} {100 * within:7.1f}%")
    print(f"both within {1000 * args.tolerance:.0f} ms: {100 * both.mean():.1f} % of utterances "
          f"(differences in seconds: model minus energy boundary)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
