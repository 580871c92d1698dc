"""Hotwords on real posteriors: what boosting a word does to dev WER.

With the bundle's tuned decoder (`speechrnn tune`: lexicon + LM), decodes the dev set
  1. as is;
  2. with words that are never said boosted (--absent, default two words absent from dev): WER must not move much;
  3. for every word the plain decoder got wrong somewhere in dev, with that word boosted: how many of its missed
     occurrences come back, and what happens to WER.

Run:  python benchmarks/eval_hotwords.py --bundle recipes/an4/exp/default/model.pt \
          --manifest recipes/an4/exp/data/dev.jsonl [--boost 5]
"""

import argparse
import sys
from collections import Counter

import torch

from speechrnn.metrics import error_rates
from speechrnn.bundle import load_model
from speechrnn.decode import stored_decoder
from speechrnn.tune import posteriors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--boost", type=float, default=5.0)
    parser.add_argument("--absent", nargs="+", default=["ZEBRA", "QUANTUM"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer, config, extra = load_model(args.bundle)
    refs, log_probs, lens = posteriors(model, tokenizer, config, args.manifest)

    def decode(hotwords: dict) -> list[str]:
        decoder = stored_decoder(extra, tokenizer, workers=2, hotwords=hotwords)
        if decoder is None:
            sys.exit(f"{args.bundle}: no tuned decoder; run `speechrnn tune` (the AN4 recipe's stage 3 does)")
        with decoder:
            return [nbest[0].text for nbest in decoder.decode(log_probs, lens)]

    plain = decode({})
    base = error_rates(refs, plain)
    absent = error_rates(refs, decode({w: args.boost for w in args.absent}))
    print(f"{len(refs)} utterances, boost {args.boost:g}")
    print(f"plain tuned decoder:            WER {100 * base.wer:.2f} %")
    print(f"absent words boosted ({' '.join(args.absent)}): WER {100 * absent.wer:.2f} % "
          f"({100 * (absent.wer - base.wer):+.2f} absolute)")

    missed = Counter()
    for ref, hyp in zip(refs, plain):
        missed.update((Counter(ref.split()) - Counter(hyp.split())).elements())
    print(f"\n{'boosted word':14} {'missed':>7} {'recovered':>10} {'dev WER':>8}")
    for word, count in missed.most_common(10):
        hyps = decode({word: args.boost})
        recovered = sum(min(Counter(h.split())[word], Counter(r.split())[word]) -
                        min(Counter(p.split())[word], Counter(r.split())[word]) for r, h, p in zip(refs, hyps, plain))
        print(f"{word:14} {count:7d} {recovered:10d} {100 * error_rates(refs, hyps).wer:7.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
