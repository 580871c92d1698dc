"""Greedy vs beam search (speechrnn.decode) on a trained model: test WER and decoding speed.

Computes the model's log-probs for the dev and test manifests once, then decodes them with:

  greedy           best path
  beam             beam search, no LM, lexicon-free
  beam + char LM   lexicon-free, a character n-gram LM (default 6-gram) of the train transcripts
  lexicon + word LM  lexicon of the train words, a word n-gram LM (default 3-gram) of the train transcripts

The LM settings (lm_weight and sil_score for the char LM, lm_weight and word_score for the word LM) are
chosen on dev only (lowest dev WER; ties go to the first setting of the grid); the table reports test at those
settings. Speed is decoding only (the log-probs are computed beforehand): utterances per second for the whole
test set in one decode() call, serial, the median of --repeats timings. A second table times the parallel
options for the beam decoders: serial, a thread pool (one flashlight decoder per thread) and the process pool
of BeamDecoder(workers=N).

Run:  python benchmarks/bench_decode.py --bundle exp/an4/model.pt --data exp/an4/data [--workers 2]
      (--data: a folder with train.jsonl, dev.jsonl, test.jsonl)
"""

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from speechrnn.data import AudioDataset, collate, load_utterances
from speechrnn.decode import BeamConfig, BeamDecoder, greedy_decode, write_lexicon
from speechrnn.lm import write_arpa
from speechrnn.metrics import error_rates
from speechrnn.recognizer import load_model
from speechrnn.text import normalize

CHAR_GRID = {"lm_weight": [0.25, 0.5, 0.75, 1.0, 1.5], "sil_score": [-2.0, -1.0, 0.0, 1.0]}
WORD_GRID = {"lm_weight": [0.25, 0.5, 1.0, 2.0], "word_score": [-1.0, 0.0, 1.0, 2.0]}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True, help="model bundle (model.pt)")
    parser.add_argument("--data", required=True, help="folder with train.jsonl, dev.jsonl, test.jsonl")
    parser.add_argument("--work", help="folder for the LMs and the lexicon (default: a temporary folder)")
    parser.add_argument("--char-order", type=int, default=6)
    parser.add_argument("--word-order", type=int, default=3)
    parser.add_argument("--beam-size", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, help="pool size for the parallel table")
    parser.add_argument("--repeats", type=int, default=3, help="timings per system (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the acoustic model")
    return parser.parse_args()


@torch.no_grad()
def log_probs_of(model, tokenizer, config, manifest: Path, batch_size: int = 16):
    """(refs, log_probs (B, T, V) padded, lens) for every utterance of the manifest, in manifest order."""
    dataset = AudioDataset(load_utterances(manifest), tokenizer, config.features.sample_rate)
    refs, rows, lens = [], [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        out, out_lens = model(batch["inputs"], batch["input_lens"])
        refs += [normalize(t, tokenizer.config) for t in batch["texts"]]
        rows += [out[i, :n] for i, n in enumerate(out_lens.tolist())]
        lens += out_lens.tolist()
    padded = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=0.0).float().contiguous()
    return refs, padded, torch.tensor(lens)


def texts_of(decoder, log_probs, lens) -> list[str]:
    return [hyps[0].text for hyps in decoder.decode(log_probs, lens)]


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, statistics.median(times)


def tune(tokenizer, base: dict, grid: dict, refs, log_probs, lens):
    """The grid setting with the lowest dev WER (first one on ties) and the list of (setting, WER)."""
    (name_a, values_a), (name_b, values_b) = grid.items()
    tried = []
    for a in values_a:
        for b in values_b:
            setting = {name_a: a, name_b: b}
            decoder = BeamDecoder(tokenizer, BeamConfig(**base, **setting))
            tried.append((setting, error_rates(refs, texts_of(decoder, log_probs, lens)).wer))
    best = min(tried, key=lambda item: item[1])  # min keeps the first of equal WERs
    return best[0], tried


def thread_pool_decode(decoders, log_probs, lens):
    """Each thread decodes a contiguous share of the batch with its own decoder (flashlight's are stateful)."""
    shares = [range(len(lens))[k::len(decoders)] for k in range(len(decoders))]
    with ThreadPoolExecutor(len(decoders)) as pool:
        parts = list(pool.map(lambda k: decoders[k].decode(log_probs[list(shares[k])], lens[list(shares[k])]),
                              range(len(decoders))))
    out = [None] * len(lens)
    for share, part in zip(shares, parts):
        for i, hyps in zip(share, part):
            out[i] = hyps
    return out


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_decode_"))
    work.mkdir(parents=True, exist_ok=True)
    model, tokenizer, config, _ = load_model(args.bundle)

    start = time.perf_counter()
    dev_refs, dev_lp, dev_lens = log_probs_of(model, tokenizer, config, data / "dev.jsonl")
    test_refs, test_lp, test_lens = log_probs_of(model, tokenizer, config, data / "test.jsonl")
    print(f"log-probs: dev {len(dev_refs)}, test {len(test_refs)} utterances "
          f"({time.perf_counter() - start:.1f} s, computed once)")

    train = [normalize(u.text, tokenizer.config) for u in load_utterances(data / "train.jsonl")]
    char_lm, word_lm = work / f"char{args.char_order}.arpa", work / f"word{args.word_order}.arpa"
    lexicon = work / "lexicon.txt"
    write_arpa(char_lm, train, args.char_order, "char")
    write_arpa(word_lm, train, args.word_order, "word")
    written, skipped = write_lexicon((w for s in train for w in s.split()), tokenizer, lexicon)
    print(f"from {len(train)} train transcripts: {char_lm.name}, {word_lm.name}, lexicon of {written} words")

    beam = {"beam_size": args.beam_size}
    char_base = {**beam, "lm": str(char_lm)}
    word_base = {**beam, "lm": str(word_lm), "lexicon": str(lexicon)}
    char_best, char_tried = tune(tokenizer, char_base, CHAR_GRID, dev_refs, dev_lp, dev_lens)
    word_best, word_tried = tune(tokenizer, word_base, WORD_GRID, dev_refs, dev_lp, dev_lens)
    for name, tried in (("char LM", char_tried), ("lexicon + word LM", word_tried)):
        listed = ", ".join(" ".join(f"{v:g}" for v in s.values()) + f": {100 * w:.2f}" for s, w in tried)
        print(f"dev WER % ({name}; {' '.join(tried[0][0])}): {listed}")

    systems = {
        "greedy": None,
        "beam (no LM)": BeamConfig(**beam),
        f"beam + char {args.char_order}-gram": BeamConfig(**char_base, **char_best),
        "lexicon (no LM)": BeamConfig(**beam, lexicon=str(lexicon)),
        f"lexicon + word {args.word_order}-gram": BeamConfig(**word_base, **word_best),
    }
    print(f"\ntest set, {len(test_refs)} utterances; settings chosen on dev; speed: decoding only, serial, "
          f"median of {args.repeats}")
    print(f"{'system':26} {'settings':32} {'dev WER':>8} {'test WER':>9} {'S/D/I':>10} {'CER':>6} {'utt/s':>8}")
    for name, cfg in systems.items():
        if cfg is None:
            decode = lambda lp, lens: [tokenizer.decode(ids) for ids in greedy_decode(lp, lens)]  # noqa: E731
            settings = "-"
        else:
            decoder = BeamDecoder(tokenizer, cfg)
            decode = lambda lp, lens, d=decoder: texts_of(d, lp, lens)  # noqa: E731
            settings = ", ".join(f"{k} {getattr(cfg, k):g}" for k in ("lm_weight", "sil_score", "word_score")
                                 if cfg.lm is not None and (k == "lm_weight" or getattr(cfg, k)))
        dev = error_rates(dev_refs, decode(dev_lp, dev_lens))
        hyps, seconds = timed(lambda: decode(test_lp, test_lens), args.repeats)
        rates = error_rates(test_refs, hyps)
        sdi = f"{rates.word_substitutions}/{rates.word_deletions}/{rates.word_insertions}"
        print(f"{name:26} {settings or '-':32} {100 * dev.wer:7.2f}% {100 * rates.wer:8.2f}% {sdi:>10} "
              f"{100 * rates.cer:5.2f}% {len(test_refs) / seconds:8.0f}", flush=True)

    print(f"\nparallel decoding of the test set ({args.workers} workers), utt/s, median of {args.repeats}; "
          f"the process pool is started before timing (start-up shown apart)")
    print(f"{'system':26} {'serial':>8} {'threads':>8} {'processes':>10} {'pool start s':>13}  same results")
    for name in ("beam (no LM)", f"beam + char {args.char_order}-gram", f"lexicon + word {args.word_order}-gram"):
        cfg = systems[name]
        serial = BeamDecoder(tokenizer, cfg)
        threads = [BeamDecoder(tokenizer, cfg) for _ in range(args.workers)]
        with BeamDecoder(tokenizer, cfg, workers=args.workers) as processes:
            start = time.perf_counter()
            processes.decode(test_lp[:args.workers * 2], test_lens[:args.workers * 2])  # starts the pool
            pool_start = time.perf_counter() - start
            rates, results = {}, {}
            for label, fn in (("serial", lambda: serial.decode(test_lp, test_lens)),
                              ("threads", lambda: thread_pool_decode(threads, test_lp, test_lens)),
                              ("processes", lambda: processes.decode(test_lp, test_lens))):
                results[label], seconds = timed(fn, args.repeats)
                rates[label] = len(test_refs) / seconds
        same = all([[(h.text, h.score) for h in hyps] for hyps in results[label]] ==
                   [[(h.text, h.score) for h in hyps] for hyps in results["serial"]] for label in results)
        print(f"{name:26} {rates['serial']:8.0f} {rates['threads']:8.0f} {rates['processes']:10.0f} "
              f"{pool_start:13.2f}  {same}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
