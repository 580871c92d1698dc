"""Decoding speed of shallow fusion: the same lexicon-free prefix beam search (speechrnn.fusion) with a character
n-gram (NgramScorer, an ARPA model of `speechrnn lm build --unit char`) and with the character RNN LM
(CharLMScorer, a `speechrnn lm train` bundle), on the same posteriors at the same beam, one CPU thread.

The posteriors are the recogniser's log-probs of the first --words utterances of a manifest (computed once, not
timed). Each side decodes them in chunks of --chunk utterances (the fused LM advances a chunk's new prefixes in one
batch); the two sides alternate for --rounds rounds so a load on the machine hits both alike. Reported: words per
second for each (median over the rounds), the ratio of the LSTM's time to the n-gram's, and each side's WER and
CER on those words at the given weights. For reference the flashlight-text (C++) lexicon-free decoder with the same
char n-gram is timed too (torchaudio's ctc_decoder, beam of the same size).

Run:  python benchmarks/bench_fusion.py --bundle speechrnn/pretrained/unipen.pt \\
          --manifest recipes/unipen/exp/data/dev.jsonl --char-lm recipes/english_lm/exp/default/model.pt \\
          --ngram recipes/english_lm/exp/char6.arpa [--words 1000] [--beam 16] [--lm-weight 0.5]
"""

import argparse
import math
import statistics
import time

import torch

from speechrnn.bundle import load_model
from speechrnn.decode import BeamConfig, BeamDecoder
from speechrnn.errors import UserError
from speechrnn.fusion import CharLMScorer, FusionConfig, FusionDecoder, NgramScorer
from speechrnn.metrics import error_rates
from speechrnn.tasks.lm.inference import load_lm
from speechrnn.tune import posteriors


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="recogniser bundle")
    parser.add_argument("--manifest", required=True, help="manifest whose first --words utterances are decoded")
    parser.add_argument("--char-lm", required=True, help="character LM bundle (speechrnn lm train)")
    parser.add_argument("--ngram", required=True, help="character n-gram ARPA (speechrnn lm build --unit char)")
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--beam", type=int, default=FusionConfig.beam_size)
    parser.add_argument("--lm-weight", type=float, default=0.5)
    parser.add_argument("--char-bonus", type=float, default=0.0)
    parser.add_argument("--chunk", type=int, default=64, help="utterances decoded together (default: 64)")
    parser.add_argument("--rounds", type=int, default=3)
    return parser.parse_args()


def timed(decoder, log_probs, lens, chunk: int) -> tuple[float, list[str]]:
    started, texts = time.perf_counter(), []
    for start in range(0, len(lens), chunk):
        nbests = decoder.decode(log_probs[start:start + chunk], lens[start:start + chunk])
        texts += [nbest[0].text if nbest else "" for nbest in nbests]
    return time.perf_counter() - started, texts


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    model, tokenizer, config, _ = load_model(args.bundle)
    refs, log_probs, lens = posteriors(model, tokenizer, config, args.manifest)
    refs, log_probs, lens = refs[:args.words], log_probs[:args.words], lens[:args.words]
    setting = FusionConfig(beam_size=args.beam, lm_weight=args.lm_weight, char_bonus=args.char_bonus)
    lm_model, alphabet, _ = load_lm(args.char_lm)
    sides = {"char n-gram (python scorer)": FusionDecoder(tokenizer, NgramScorer(args.ngram, tokenizer), setting),
             "char LSTM (fused, batched)": FusionDecoder(tokenizer, CharLMScorer(lm_model, alphabet, tokenizer),
                                                         setting)}
    seconds = {name: [] for name in sides}
    texts = {}
    for _ in range(args.rounds):
        for name, decoder in sides.items():
            elapsed, texts[name] = timed(decoder, log_probs, lens, args.chunk)
            seconds[name].append(elapsed)
    try:  # KenLM inside flashlight reads orders up to 6
        flashlight = BeamDecoder(tokenizer, BeamConfig(beam_size=args.beam, lm=args.ngram,
                                                       lm_weight=args.lm_weight / math.log(10)))  # its LM: log10
        flash_seconds, flash_texts = timed(flashlight, log_probs, lens, args.chunk)
    except UserError as err:
        flashlight, flash_texts = None, str(err)
    print(f"{len(lens)} utterances of {args.manifest}, beam {args.beam}, lm_weight {args.lm_weight:g}, char_bonus "
          f"{args.char_bonus:g}, 1 thread, median of {args.rounds} rounds")
    for name in sides:
        rates = error_rates(refs, texts[name])
        print(f"  {name:30s} {len(lens) / statistics.median(seconds[name]):8.1f} words/s   WER {100 * rates.wer:.2f} %"
              f"  CER {100 * rates.cer:.2f} %")
    if flashlight is None:
        print(f"  {'char n-gram (flashlight, C++)':30s} not run: {flash_texts}")
    else:
        rates = error_rates(refs, flash_texts)
        print(f"  {'char n-gram (flashlight, C++)':30s} {len(lens) / flash_seconds:8.1f} words/s   WER "
              f"{100 * rates.wer:.2f} %  CER {100 * rates.cer:.2f} %  (one round; reference)")
    names = list(sides)
    ratio = statistics.median(seconds[names[1]]) / statistics.median(seconds[names[0]])
    print(f"time ratio LSTM-fused / n-gram: {ratio:.2f}x")


if __name__ == "__main__":
    main()
