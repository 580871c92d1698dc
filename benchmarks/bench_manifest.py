"""Memory and load time of a large manifest: the old way (json.loads of every line into a list of dicts, then a list
of Utterance and lists of token ids) against what speechrnn.data does now (iter_manifest streams; load_utterances
and AudioDataset keep columns: packed strings, float64 durations, token ids flat, one byte each for characters).

A synthetic LibriSpeech-like manifest (default 300,000 lines, ~9 s and ~25 words per line) is written once; each way
is then measured in a fresh process: wall time, growth of the resident set (RSS) while the result is held, and the
bytes Python allocated for the result (tracemalloc: held after loading, and the peak while loading; a second pass,
since tracing slows loading down).

    python benchmarks/bench_manifest.py                    # 300,000 lines, manifest rows and dataset rows
    python benchmarks/bench_manifest.py --lines 50000 --no-dataset
"""

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

# ---------------------------------------------------------------------------------------------- the old way
# speechrnn.data as it was before manifests streamed (commit 4f4085f), kept here to compare against


def old_read_manifest(path, fields=("audio_filepath", "duration", "text")) -> list[dict]:
    from speechrnn.errors import ManifestError

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found (run the recipe's data stage first)")
    entries = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as err:
                raise ManifestError(f"{path}:{number}: not a JSON object ({err.msg}); fix or delete the line") from None
            missing = [f for f in fields if not isinstance(entry, dict) or f not in entry]
            if missing:
                raise ManifestError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
            for key in ("audio_filepath", "ink_filepath"):
                if key in entry and not os.path.isabs(entry[key]):
                    entry[key] = os.path.normpath(os.path.join(os.path.realpath(path.parent), entry[key]))
            entry.setdefault("id", Path(entry.get("audio_filepath", entry.get("ink_filepath", str(number)))).stem)
            entries.append(entry)
    return entries


def old_load_utterances(path) -> list:
    from speechrnn.data import Utterance

    return [Utterance(id=str(e["id"]), path=e["audio_filepath"], duration=float(e["duration"]), text=str(e["text"]),
                      speaker=str(e.get("speaker", ""))) for e in old_read_manifest(path)]


def old_dataset(path, tokenizer) -> dict:
    """What the old AudioDataset held: the Utterance list, token id lists, texts and lengths as Python lists."""
    utterances = old_load_utterances(path)
    input_lengths = [int(u.duration * 16000) for u in utterances]
    return {"utterances": utterances, "tokens": [tokenizer.encode(u.text) for u in utterances],
            "texts": [u.text for u in utterances], "input_lengths": input_lengths,
            "frame_lengths": [n / 160 for n in input_lengths]}


# ---------------------------------------------------------------------------------------------- the ways measured

def tokenizer():
    from speechrnn.text import TextConfig, Tokenizer

    return Tokenizer.build(["ABCDEFGHIJKLMNOPQRSTUVWXYZ' "], TextConfig())


def new_dataset(path, tok):
    from speechrnn.data import AudioDataset, load_utterances

    return AudioDataset(load_utterances(path), tok, 16000)


def count_lines(path) -> int:
    from speechrnn.data import iter_manifest

    return sum(1 for _ in iter_manifest(path))


def new_read_manifest(path) -> list[dict]:
    from speechrnn.data import read_manifest

    return read_manifest(path)


def new_load_utterances(path):
    from speechrnn.data import load_utterances

    return load_utterances(path)


WAYS = {  # name: (what, how to load)
    "old read_manifest": ("list of dicts (json.loads per line)", lambda p, t: old_read_manifest(p)),
    "old load_utterances": ("list of Utterance, via the list of dicts", lambda p, t: old_load_utterances(p)),
    "new iter_manifest": ("streamed pass-through (counts lines)", lambda p, t: count_lines(p)),
    "new read_manifest": ("list of dicts (kept for small manifests)", lambda p, t: new_read_manifest(p)),
    "new load_utterances": ("columnar Utterances", lambda p, t: new_load_utterances(p)),
    "old AudioDataset": ("+ token id lists (tokenizes)", lambda p, t: old_dataset(p, t)),
    "new AudioDataset": ("+ flat uint8 token ids (tokenizes)", lambda p, t: new_dataset(p, t)),
}
PAIRS = [("old read_manifest", "new iter_manifest"), ("old read_manifest", "new read_manifest"),
         ("old load_utterances", "new load_utterances"), ("old AudioDataset", "new AudioDataset")]


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(way: str, manifest: str) -> dict:
    """In this (fresh) process: time and RSS growth of one load, then tracemalloc's held and peak bytes of another."""
    import importlib

    importlib.import_module("speechrnn.data")  # imports torch: not part of any way's time or memory

    load = WAYS[way][1]
    tok = tokenizer()
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    result = load(manifest, tok)
    seconds = time.perf_counter() - started
    rss = rss_bytes() - before
    del result
    gc.collect()
    tracemalloc.start()
    result = load(manifest, tok)
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    return {"seconds": seconds, "rss": rss, "held": held, "peak": peak}


# ---------------------------------------------------------------------------------------------- the manifest

WORDS = ("THE AND OF TO A IN THAT HE WAS IT HIS I WITH AS HAD FOR YOU HER NOT BE BUT AT ON SHE HIM SO ALL THEY BY "
         "WHICH WERE FROM SAID ONE THIS HAVE THERE WHEN NO WHAT WOULD THEM OUT IF UP ME MY LITTLE THOUGHT UPON "
         "AGAIN PRESENTLY SOMETHING HOUSE BEFORE ANSWERED NEVER BEAUTIFUL GREAT DON'T MORNING COUNTRY").split()


def write_synthetic(path: Path, lines: int, seed: int = 0) -> None:
    """LibriSpeech-like lines: speaker/chapter ids, a relative .flac path, 1.5-17 s, ~2.7 words a second."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as out:
        for n in range(lines):
            speaker, chapter = rng.randrange(100, 9000), rng.randrange(1000, 200000)
            uid = f"{speaker}-{chapter}-{n % 10000:04d}"
            duration = round(rng.uniform(1.5, 17.0), 2)
            text = " ".join(rng.choice(WORDS) for _ in range(max(1, round(duration * 2.7))))
            audio = f"../LibriSpeech/train-960/{speaker}/{chapter}/{uid}.flac"
            out.write(json.dumps({"id": uid, "audio_filepath": audio, "duration": duration, "text": text,
                                  "speaker": str(speaker)}) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--no-dataset", action="store_true", help="skip the AudioDataset rows (they tokenize: slow)")
    parser.add_argument("--manifest", help="measure this manifest instead of a synthetic one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.manifest)))
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(args.manifest) if args.manifest else Path(tmp) / "manifests" / "train.jsonl"
        if not args.manifest:
            manifest.parent.mkdir()
            write_synthetic(manifest, args.lines)
        lines = sum(1 for line in open(manifest, encoding="utf-8") if line.strip())
        print(f"manifest: {lines:,} lines, {manifest.stat().st_size / 1e6:.1f} MB"
              f"{' (synthetic, LibriSpeech-like)' if not args.manifest else ''}; python {sys.version.split()[0]}; "
              "one fresh process per row")
        ways = [w for w in WAYS if not (args.no_dataset and w.endswith("AudioDataset"))]
        results = {}
        print(f"{'way':22} {'what':42} {'load s':>7} {'RSS MB':>7} {'held MB':>8} {'peak MB':>8} {'B/line':>7}")
        for way in ways:
            run = subprocess.run([sys.executable, __file__, "--child", way, "--manifest", str(manifest)],
                                 capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if run.returncode:
                sys.stderr.write(run.stderr)
                return 1
            r = results[way] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{way:22} {WAYS[way][0]:42} {r['seconds']:7.2f} {r['rss'] / 1e6:7.1f} {r['held'] / 1e6:8.1f} "
                  f"{r['peak'] / 1e6:8.1f} {r['held'] / lines:7.0f}")
        print("\nold -> new")
        for old, new in PAIRS:
            if old in results and new in results:
                o, n = results[old], results[new]
                print(f"  {old:19} -> {new:19} {o['seconds'] / n['seconds']:4.1f}x faster; held "
                      f"{o['held'] / 1e6:6.1f} -> {n['held'] / 1e6:5.1f} MB, peak {o['peak'] / 1e6:6.1f} -> "
                      f"{n['peak'] / 1e6:5.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
