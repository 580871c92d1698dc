"""Compose lines of handwriting from a word manifest: each writer's words cut into lines of 2-10 words and placed as
a person writes them (speechrnn/ink/compose.py), so a recognizer learns spaces and reads lines and words alike.

For each SPLIT given (default train dev test), from DATA/SPLIT.jsonl (entries with a "writer" field, as
data_prep/unipen.py writes them):
  DATA/SPLIT_lines.jsonl + SPLIT_lines_ink.npz   the composed lines: id, ink_filepath, ink_index, text, writer,
                                                 words (the word entries' ids), num_points
  DATA/SPLIT_mixed.jsonl                         the split's word entries followed by its lines (what a line model
                                                 trains on and is selected by)
Lines never mix writers, so a writer-disjoint word split gives writer-disjoint lines. Every word is used in
`--passes` lines (once each pass, in a new order). The result depends only on the word manifest, the split and
--seed: the order of a writer's words comes from md5(seed, split, writer, pass).
"""

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

from common import PrepError, run  # noqa: E402  (finds speechrnn)

import numpy as np  # noqa: E402

from speechrnn.data import read_manifest  # noqa: E402
from speechrnn.ink import load_ink, write_ink_store  # noqa: E402
from speechrnn.ink.compose import compose_line, line_lengths  # noqa: E402

SPLITS = ("train", "dev", "test")


def writer_rng(seed: int, split: str, writer: str, rep: int) -> np.random.Generator:
    digest = hashlib.md5(f"{seed}/{split}/{writer}/{rep}".encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def compose_split(data: Path, split: str, seed: int, passes: int, shortest: int, longest: int) -> int:
    manifest = data / f"{split}.jsonl"
    if not manifest.is_file():
        raise PrepError(f"{manifest}: word manifest not found; run data_prep/unipen.py --out {data} first")
    entries = read_manifest(manifest, ("text",))
    raw_lines = [line for line in manifest.read_text(encoding="utf-8").splitlines() if line.strip()]
    by_writer: dict[str, list[int]] = {}
    for k, entry in enumerate(entries):
        if "writer" not in entry:
            raise PrepError(f"{manifest}: entry {entry.get('id', k)} has no \"writer\"; lines are composed per writer")
        by_writer.setdefault(str(entry["writer"]), []).append(k)
    inks, lines = [], []
    for writer in sorted(by_writer):
        for rep in range(passes):
            rng = writer_rng(seed, split, writer, rep)
            order = [by_writer[writer][i] for i in rng.permutation(len(by_writer[writer]))]
            at = 0
            for n in line_lengths(len(order), rng, shortest, longest):
                chosen = [entries[i] for i in order[at: at + n]]
                at += n
                if len(chosen) < 2:
                    continue
                ink = compose_line([load_ink(e) for e in chosen], rng)
                lines.append({"id": f"line_{split}_{len(lines):06d}", "ink_filepath": f"{split}_lines_ink.npz",
                              "ink_index": len(inks), "text": ink.text, "writer": writer,
                              "words": [e["id"] for e in chosen], "num_points": ink.num_points})
                inks.append(ink)
    write_ink_store(data / f"{split}_lines_ink.npz", inks)
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    atomic_write(data / f"{split}_lines.jsonl", text)
    atomic_write(data / f"{split}_mixed.jsonl", "".join(line + "\n" for line in raw_lines) + text)
    words = sum(len(line["words"]) for line in lines)
    print(f"{split}: {len(lines)} lines of {words / max(len(lines), 1):.1f} words on average from {len(by_writer)} "
          f"writers -> {data / f'{split}_lines.jsonl'}, {split}_mixed.jsonl ({len(entries)} words + the lines)")
    return len(lines)


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def prepare(data: Path, splits: list[str], seed: int, passes: int, shortest: int, longest: int) -> None:
    started = time.time()
    if not 2 <= shortest <= longest:
        raise PrepError(f"--words {shortest}-{longest}: need 2 <= shortest <= longest")
    for split in splits:
        compose_split(data, split, seed, passes, shortest, longest)
    print(f"done in {time.time() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="example: python data_prep/ink_lines.py --data recipes/unipen/exp/data")
    parser.add_argument("--data", type=Path, required=True, help="folder of the word manifests SPLIT.jsonl")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to compose (train dev test)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the composition (0)")
    parser.add_argument("--passes", type=int, default=1, help="lines each word appears in (1)")
    parser.add_argument("--words", default="2-10", metavar="MIN-MAX", help="words per line (2-10)")
    args = parser.parse_args(argv)
    try:
        shortest, longest = (int(v) for v in args.words.split("-"))
    except ValueError:
        parser.error(f"--words {args.words}: expected MIN-MAX, e.g. 2-10")
    return run(prepare, args.data, args.splits, args.seed, args.passes, shortest, longest)


if __name__ == "__main__":
    sys.exit(main())
