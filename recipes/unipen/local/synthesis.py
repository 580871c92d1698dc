"""Measure a handwriting synthesis bundle (run.sh stage 8): legibility, fit, style and speed.

  legibility  words drawn from the general-English word list (../english_lm/exp/text/words.tsv) that are not UNIPEN
              training words, written and read back by the recogniser (greedy, no lexicon): a dev draw chooses the
              default bias (stored in the bundle), a disjoint test draw of 1,000 is scored once at it
  fit         negative log-likelihood per point of the test writers' words, for the bundle (each word read with
              its own text, and with the texts shuffled among the words) and for the unconditional network of the
              same size (--unconditional)
  style       for STYLE_WRITERS test writers: primed with one of the writer's words, the network writes the same
              STYLE_WORDS words; each written word's style features (slant, width per letter, pen lifts per letter,
              height of ascenders and descenders, roundness) are z-scored and given to the nearest writer centroid
              (each writer's own other words): how often that is the primed writer, against the same words written
              unprimed (chance: 1 / STYLE_WRITERS)
  speed       seconds to write one word on one thread (the mean over test words)
  picture     words at two biases and in two primed styles -> --picture

    python local/synthesis.py exp/synthesis/model.pt --unconditional exp/synthesis_unconditional/model.pt \\
        --recognizer unipen --out exp/synthesis/eval --picture exp/synthesis/written_words.png
"""

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from speechrnn.bundle import update_extra
from speechrnn.data import iter_manifest
from speechrnn.ink.features import normalize
from speechrnn.ink.readers import load_ink
from speechrnn.metrics import error_rates
from speechrnn.plot import draw_inks
from speechrnn.recognizer import Recognizer
from speechrnn.tasks.synthesis.data import InkOffsetsDataset
from speechrnn.tasks.synthesis.inference import load_network, load_writer, nll_per_point, write

BIASES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
DEV_WORDS, TEST_WORDS = 300, 1000
COMMON = 20000  # words are drawn from this many most frequent entries of the word list
STYLE_WRITERS, STYLE_WORDS = 10, 12


def word_draws(words_tsv: Path, train_manifest: Path, seed: int = 8) -> tuple[list[str], list[str]]:
    """(dev, test) words: letters only, 3-12 long, among the COMMON most frequent, not a training word (in any case)."""
    train = {str(e["text"]).lower() for e in iter_manifest(train_manifest, fields=("text",))}
    pool = []
    for line in words_tsv.read_text(encoding="utf-8").splitlines()[:COMMON]:
        word = line.split("\t")[0]
        if word.isascii() and word.isalpha() and 3 <= len(word) <= 12 and word.lower() not in train:
            pool.append(word)
    random.Random(seed).shuffle(pool)
    return pool[:DEV_WORDS], pool[DEV_WORDS:DEV_WORDS + TEST_WORDS]


def legibility(writer, recognizer, words: list[str], bias: float, seed: int = 0) -> dict:
    inks = [write(writer, word, bias=bias, seed=seed + k) for k, word in enumerate(words)]
    read = [t.text for t in recognizer.transcribe(inks)]
    rates = error_rates(words, read)
    return {"bias": bias, "cer": rates.cer, "word_error": rates.wer, "words": len(words),
            "examples": list(zip(words[:12], read[:12]))}


def style_features(ink, letters: int) -> np.ndarray:
    """Slant (median angle of down strokes from the vertical), width per letter, pen lifts per letter, the 5th and
    95th percentiles of y (descenders, ascenders) and the mean turning angle, of the ink normalised as the
    recogniser sees it (height 1 about its centre line)."""
    strokes = [s[:, :2] for s in normalize(ink, bool(ink.y_down)).strokes if len(s) > 1]
    points = np.concatenate(strokes)
    segments = np.concatenate([np.diff(s, axis=0) for s in strokes])
    down = segments[segments[:, 1] < -0.05]
    slant = float(np.median(np.arctan2(down[:, 0], -down[:, 1]))) if len(down) else 0.0
    turns = []
    for s in strokes:
        d = np.diff(s, axis=0)
        angles = np.arctan2(d[:, 1], d[:, 0])
        turns.append(np.abs(np.angle(np.exp(1j * np.diff(angles)))))
    turning = float(np.mean(np.concatenate(turns))) if turns else 0.0
    y5, y95 = np.percentile(points[:, 1], [5, 95])
    return np.array([slant, np.ptp(points[:, 0]) / letters, len(strokes) / letters, y5, y95, turning])


def style_test(writer, test_manifest: Path, words: list[str], bias: float) -> dict:
    by_writer = defaultdict(list)
    for entry in iter_manifest(test_manifest, fields=("text",)):
        text = str(entry["text"])
        if text.isalpha() and len(text) >= 4 and all(c in writer.alphabet.index for c in text):
            by_writer[entry["writer"]].append(entry)
    chosen = sorted((w for w, e in by_writer.items() if len(e) >= 25), key=lambda w: (-len(by_writer[w]), w))
    chosen = sorted(chosen[:STYLE_WRITERS])
    real, primes = {}, {}
    for name in chosen:
        entries = by_writer[name]
        primes[name] = entries[0]
        real[name] = np.array([style_features(load_ink(e), len(e["text"])) for e in entries[1:]])
    everything = np.concatenate(list(real.values()))
    mean, std = everything.mean(0), everything.std(0) + 1e-9
    centroids = np.array([((real[n] - mean) / std).mean(0) for n in chosen])  # (W, F)

    def nearest(ink, word) -> int:
        return int(np.argmin(np.linalg.norm(centroids - (style_features(ink, len(word)) - mean) / std, axis=1)))

    primed_hits = plain_hits = total = 0
    own, other = [], []
    for w, name in enumerate(chosen):
        prime = load_ink(primes[name])
        for k, word in enumerate(words):
            primed = write(writer, word, bias=bias, seed=k, style=prime, style_text=str(primes[name]["text"]))
            plain = write(writer, word, bias=bias, seed=k)
            primed_hits += nearest(primed, word) == w
            plain_hits += nearest(plain, word) == w
            z = (style_features(primed, len(word)) - mean) / std
            distances = np.linalg.norm(centroids - z, axis=1)
            own.append(distances[w])
            other.append(np.delete(distances, w).mean())
            total += 1
    return {"writers": chosen, "words": len(words), "primed_top1": primed_hits / total,
            "unprimed_top1": plain_hits / total, "chance": 1 / len(chosen),
            "distance_to_primed_writer": float(np.mean(own)), "distance_to_other_writers": float(np.mean(other))}


def test_nll(bundle: Path, test_manifest: Path, shuffle_texts: bool = False) -> dict:
    """NLL per point of the test inks; with `shuffle_texts` each ink is read with another ink's text (what the
    text is worth to the network: the unconditional baseline without training one)."""
    model, alphabet, config, extra, _ = load_network(bundle)
    dataset = InkOffsetsDataset(test_manifest, alphabet, config.data.spacing, 100000, "test")
    if shuffle_texts:
        random.Random(0).shuffle(dataset.texts)
    return {"bundle": str(bundle), "attention": config.model.attention, "epoch": extra.get("epoch"),
            "texts": "shuffled" if shuffle_texts else "own",
            **nll_per_point(model, dataset)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--unconditional", help="the unconditional bundle of the same size (fit)")
    parser.add_argument("--recognizer", default="unipen", help="handwriting recogniser, read greedy (default: unipen)")
    parser.add_argument("--words", default="../english_lm/exp/text/words.tsv")
    parser.add_argument("--data", default="exp/data")
    parser.add_argument("--out", default="exp/synthesis/eval")
    parser.add_argument("--picture")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out, data = Path(args.out), Path(args.data)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    dev_words, test_words = word_draws(Path(args.words), data / "train.jsonl")
    writer = load_writer(args.bundle)
    recognizer = Recognizer.load(args.recognizer, decoding="greedy")

    dev = [legibility(writer, recognizer, dev_words, bias) for bias in BIASES]
    for row in dev:
        print(f"dev legibility: bias {row['bias']:.1f}: CER {100 * row['cer']:.2f} %, word error "
              f"{100 * row['word_error']:.2f} %", file=sys.stderr)
    best = min(dev, key=lambda row: (round(row["cer"], 4), row["bias"]))
    update_extra(args.bundle, bias=best["bias"])
    writer = load_writer(args.bundle)
    results["dev_legibility"] = dev
    results["bias"] = best["bias"]
    results["test_legibility"] = legibility(writer, recognizer, test_words, best["bias"], seed=1000)
    print(f"test legibility at bias {best['bias']}: CER {100 * results['test_legibility']['cer']:.2f} %",
          file=sys.stderr)

    torch.set_num_threads(1)
    started = time.perf_counter()
    for k, word in enumerate(test_words[:50]):
        write(writer, word, seed=k)
    results["seconds_per_word"] = (time.perf_counter() - started) / 50
    torch.set_num_threads(args.threads)

    results["style"] = style_test(writer, data / "test.jsonl", test_words[:STYLE_WORDS], best["bias"])
    results["nll"] = [test_nll(Path(args.bundle), data / "test.jsonl"),
                      test_nll(Path(args.bundle), data / "test.jsonl", shuffle_texts=True)]
    if args.unconditional:
        results["nll"].append(test_nll(Path(args.unconditional), data / "test.jsonl"))

    if args.picture:
        shown = test_words[:5]
        style_writers = results["style"]["writers"][:2]
        primes = {}
        for entry in iter_manifest(data / "test.jsonl", fields=("text",)):
            if entry["writer"] in style_writers and entry["writer"] not in primes and str(entry["text"]).isalpha() \
                    and len(str(entry["text"])) >= 4:
                primes[entry["writer"]] = entry
        inks, titles = [], []
        for bias in (0.5, 2.0):
            for k, word in enumerate(shown):
                inks.append(write(writer, word, bias=bias, seed=k))
                titles.append(f"{word} (bias {bias:g})")
        for name in style_writers:
            prime = load_ink(primes[name])
            for k, word in enumerate(shown):
                inks.append(write(writer, word, seed=k, style=prime, style_text=str(primes[name]["text"])))
                titles.append(f"{word} (style of {name}: '{primes[name]['text']}')")
        draw_inks(inks, args.picture, titles, columns=5)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "dev_legibility"}, indent=1, default=str))


if __name__ == "__main__":
    main()
