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
of BeamDecoder(workers=N). RTF (real-time factor) is decoding seconds over the seconds of test audio (the
manifest's durations).

--pyctcdecode PYTHON adds a table that compares ours with pyctcdecode on the same posteriors, the same word ARPA
file and the same beam size. PYTHON is the interpreter of a separate venv that has pyctcdecode and kenlm (it pins
numpy<2, so it is no dependency of speechrnn; benchmarks/bench_pyctcdecode.sh makes that venv and runs this
script). The log-probs are written to an .npz, and benchmarks/pyctcdecode_worker.py decodes them in that venv.
pyctcdecode's alpha and beta are chosen on dev by the same rule and on the same grid as ours: lm_weight /
ln(10) for alpha (pyctcdecode multiplies the LM's natural-log score by alpha, flashlight the log10 score by
lm_weight, so the scales are equal), and word_score for beta (both add it once per word). Both WERs come from
speechrnn.metrics; the timings alternate, one round of each decoder in turn, so that a load on the machine
hits all alike. Ours runs twice: with BeamConfig's default pruning, and with pyctcdecode's (beam_threshold 10 for
its beam_prune_logp -10, token_min_logp -5 as its own).

Run:  python benchmarks/bench_decode.py --bundle exp/an4/model.pt --data exp/an4/data [--workers 2]
      (--data: a folder with train.jsonl, dev.jsonl, test.jsonl)
      benchmarks/bench_pyctcdecode.sh --bundle exp/an4/model.pt --data exp/an4/data   (with pyctcdecode)
"""

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from speechrnn.data import AudioDataset, collate, load_utterances
from speechrnn.decode import BeamConfig, BeamDecoder, greedy_decode
from speechrnn.decoder_files import write_lexicon
from speechrnn.lm import write_arpa
from speechrnn.metrics import error_rates
from speechrnn.bundle import load_model
from speechrnn.text import BLANK, normalize

CHAR_GRID = {"lm_weight": [0.25, 0.5, 0.75, 1.0, 1.5], "sil_score": [-2.0, -1.0, 0.0, 1.0]}
WORD_GRID = {"lm_weight": [0.25, 0.5, 1.0, 2.0], "word_score": [-1.0, 0.0, 1.0, 2.0]}
PYCTCDECODE_PRUNING = {"beam_threshold": 10.0, "token_min_logp": -5.0}  # its beam_prune_logp and token_min_logp


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
    parser.add_argument("--pyctcdecode", metavar="PYTHON",
                        help="python of a venv with pyctcdecode + kenlm: add the ours-vs-pyctcdecode table")
    parser.add_argument("--no-parallel", action="store_true", help="skip the table of parallel decoding")
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
    test_audio = sum(u.duration for u in load_utterances(data / "test.jsonl"))

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
    print(f"{'system':26} {'settings':32} {'dev WER':>8} {'test WER':>9} {'S/D/I':>10} {'CER':>6} {'utt/s':>8} "
          f"{'RTF':>8}")
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
              f"{100 * rates.cer:5.2f}% {len(test_refs) / seconds:8.0f} {seconds / test_audio:8.5f}", flush=True)

    if args.pyctcdecode:
        compare_pyctcdecode(args, tokenizer, systems, work, lexicon, word_lm, (dev_refs, dev_lp, dev_lens),
                            (test_refs, test_lp, test_lens), test_audio)
    if args.no_parallel:
        return
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


class PyctcdecodeWorker:
    """benchmarks/pyctcdecode_worker.py in the other venv: one JSON request per line in, one answer per line out."""

    def __init__(self, python: str, posteriors: Path):
        worker = Path(__file__).with_name("pyctcdecode_worker.py")
        self.process = subprocess.Popen([python, str(worker), str(posteriors)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)

    def decode(self, **request) -> dict:
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            status = self.process.wait()
            sys.exit(f"error: the pyctcdecode worker stopped (exit status {status}); see its message above")
        return json.loads(line)

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def compare_pyctcdecode(args, tokenizer, systems, work: Path, lexicon: Path, word_lm: Path, dev, test,
                        test_audio: float) -> None:
    """Ours against pyctcdecode (in its own venv) on the same posteriors, the same word ARPA file, the same beam."""
    (dev_refs, dev_lp, dev_lens), (test_refs, test_lp, test_lens) = dev, test
    posteriors = work / "posteriors.npz"
    np.savez(posteriors, labels=np.array(["" if s == BLANK else s for s in tokenizer.symbols]),
             dev_log_probs=dev_lp.numpy(), dev_lens=dev_lens.numpy(),
             test_log_probs=test_lp.numpy(), test_lens=test_lens.numpy())
    words = [line.split("\t", 1)[0] for line in lexicon.read_text(encoding="utf-8").splitlines() if line.strip()]
    worker = PyctcdecodeWorker(args.pyctcdecode, posteriors)
    beam = {"beam_width": args.beam_size}
    word_lm_name = f"word {args.word_order}-gram"
    # (row, our system, pyctcdecode's fixed request: "lm" None means no LM, so nothing to tune)
    rows = [
        ("beam, no LM", "beam (no LM)", {"lm": None}),
        (f"train-word lexicon + {word_lm_name}", f"lexicon + {word_lm_name}",
         {"lm": str(word_lm), "unigrams": words, "unk_score_offset": -10.0}),
        ("lexicon-free + LM", f"beam + char {args.char_order}-gram",
         {"lm": str(word_lm), "unigrams": words, "unk_score_offset": 0.0}),
    ]
    print(f"\nours vs pyctcdecode: the same test posteriors, beam {args.beam_size}, the same word ARPA file "
          f"({word_lm.name}); each decoder's LM settings chosen on dev on the same grid; decoding only, serial, "
          f"median of {args.repeats} interleaved rounds; RTF over {test_audio:.1f} s of test audio")
    chosen, versions = {}, {}
    for row, _, request in rows:
        if request["lm"] is None:
            chosen[row] = {}
            continue
        tried = []
        for weight in WORD_GRID["lm_weight"]:
            for word_score in WORD_GRID["word_score"]:
                setting = {"alpha": weight / math.log(10), "beta": word_score}
                answer = worker.decode(set="dev", **beam, **request, **setting)
                tried.append((setting, error_rates(dev_refs, answer["texts"]).wer))
        chosen[row] = min(tried, key=lambda item: item[1])[0]
        listed = ", ".join(f"{s['alpha'] * math.log(10):g} {s['beta']:g}: {100 * w:.2f}" for s, w in tried)
        print(f"pyctcdecode dev WER % ({row}; alpha*ln10 beta): {listed}")

    print(f"{'system':34} {'decoder':13} {'settings':34} {'dev WER':>8} {'test WER':>9} {'S/D/I':>10} "
          f"{'utt/s':>7} {'RTF':>8} {'speed-up':>9}")
    for row, ours_name, request in rows:
        cfg = systems[ours_name]
        decoders = {"ours": BeamDecoder(tokenizer, cfg),
                    "ours (pruned)": BeamDecoder(tokenizer, replace(cfg, **PYCTCDECODE_PRUNING))}
        times = {label: [] for label in (*decoders, "pyctcdecode")}
        texts = {}
        for _ in range(args.repeats):  # one round of each, in turn
            for label, decoder in decoders.items():
                start = time.perf_counter()
                texts[label] = texts_of(decoder, test_lp, test_lens)
                times[label].append(time.perf_counter() - start)
            answer = worker.decode(set="test", repeats=1, **beam, **request, **chosen[row])
            texts["pyctcdecode"], versions = answer["texts"], answer["versions"]
            times["pyctcdecode"] += answer["seconds"]
        dev_texts = {label: texts_of(decoder, dev_lp, dev_lens) for label, decoder in decoders.items()}
        dev_texts["pyctcdecode"] = worker.decode(set="dev", **beam, **request, **chosen[row])["texts"]
        settings = "-" if cfg.lm is None else f"lm_weight {cfg.lm_weight:g}, " + (
            f"word_score {cfg.word_score:g}" if cfg.lexicon else f"sil_score {cfg.sil_score:g}")
        settings = {"ours": settings, "ours (pruned)": settings, "pyctcdecode": "-" if request["lm"] is None else (
            f"alpha {chosen[row]['alpha']:.4g} (={chosen[row]['alpha'] * math.log(10):g}/ln10), "
            f"beta {chosen[row]['beta']:g}")}
        seconds = {label: statistics.median(t) for label, t in times.items()}
        for k, label in enumerate(times):
            dev_rates, rates = error_rates(dev_refs, dev_texts[label]), error_rates(test_refs, texts[label])
            sdi = f"{rates.word_substitutions}/{rates.word_deletions}/{rates.word_insertions}"
            speed = f"{seconds['pyctcdecode'] / seconds[label]:.2f}x" if label != "pyctcdecode" else ""
            print(f"{'' if k else row:34} {label:13} {settings[label]:34} {100 * dev_rates.wer:7.2f}% "
                  f"{100 * rates.wer:8.2f}% {sdi:>10} {len(test_refs) / seconds[label]:7.1f} "
                  f"{seconds[label] / test_audio:8.5f} {speed:>9}", flush=True)
    worker.close()
    print("  speed-up: pyctcdecode's median seconds over ours.\n"
          "  beam, no LM: both lexicon-free, no LM.\n"
          f"  train-word lexicon + {word_lm_name}: ours may only emit words of the lexicon (the {len(words)} "
          f"spellable train words); pyctcdecode gets them as `unigrams` with its default unk_score_offset -10, "
          f"a soft constraint (a word outside them pays -10).\n"
          f"  lexicon-free + LM: any spelling. Ours scores it with the char {args.char_order}-gram (flashlight's "
          f"lexicon-free decoder needs a token LM); pyctcdecode with the {word_lm_name} at unk_score_offset 0 "
          f"(out-of-vocabulary words get the LM's <unk> probability only). Different LMs: compare with care.\n"
          "  " + ", ".join(f"{k} {v}" for k, v in versions.items()) + " with its defaults beam_prune_logp -10, "
          "token_min_logp -5, lm_score_boundary True. ours: BeamConfig's defaults beam_threshold 25, every token "
          "tried per frame; ours (pruned): pyctcdecode's pruning, beam_threshold 10 (the same score units) and "
          "token_min_logp -5, at the LM settings chosen on dev for ours.")


if __name__ == "__main__":
    sys.exit(main())
