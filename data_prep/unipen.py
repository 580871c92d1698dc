"""Build writer-disjoint train/dev/test manifests of UNIPEN isolated words (train_r01_v07, category 6).

Reads the corpus in place, either the .tar.gz (--archive; streamed twice with tarfile, nothing extracted) or an
extracted folder (--src). The folders `data/` and `include/` are found at any depth, so the category-6 archive
(`data/6/...` at the top) and the full Zenodo archive (`train_r01_v07/data/...`) both work; --category picks the
`data/<category>/` folder (category 7 repeats all of category 6, so do not mix them).

Output in --out:
  {train,dev,test}.jsonl      one word per line: id, ink_filepath, ink_index, text, writer, num_points,
                              num_strokes, source (the .dat file), segment (its index there), quality
  {train,dev,test}_ink.npz    the pen-down ink of each split, read with speechrnn.ink.InkStore (or
                              speechrnn.ink.load_ink(entry)); coordinates as in the corpus (y up, tablet
                              units, exact in float32), time in seconds from the word's first point where the
                              corpus gives it (a T channel or a plausible .POINTS_PER_SECOND), else NaN
The split is by writer id (the .WRITER_ID string, which some contributors share):
md5(writer) % 10 == 0 -> test, == 1 -> dev, else train. Lines are sorted by source file and segment.

Segments that cannot be used (delineation past the pen data, a single point, time running backwards, ...) are
skipped with one line each and counted; a data file whose pen data is missing (data/6/att/att0/41412304.dat
names an include that is not in the archive) is reported and skipped.
"""

import argparse
import hashlib
import os
import posixpath
import re
import sys
import tarfile
import time
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

import numpy as np
from tqdm import tqdm

from speechrnn.data import write_manifest
from speechrnn.ink import Ink, InkError, parse_unipen, write_ink_store

SPLITS = ("train", "dev", "test")
INCLUDE_RE = re.compile(r"^\.INCLUDE[ \t]+(\S+)", re.M)
REASONS = (("past the end", "delineation past the pen data"), ("single point", "a single point"),
           ("no points", "no points"), ("time goes backwards", "time runs backwards"),
           ("not finite", "non-finite coordinates"), ("delineation", "bad delineation"),
           ("cannot parse", "unparsable .SEGMENT line"), ("empty label", "empty label"))


def split_of(writer: str) -> str:
    bucket = int(hashlib.md5(writer.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def data_root(parts: list[str], category: str) -> int | None:
    """Index of the `data` folder in a member path `.../data/<category>/.../x.dat`, else None."""
    if not parts[-1].lower().endswith(".dat"):
        return None
    for i in range(len(parts) - 2):
        if parts[i] == "data" and parts[i + 1] == category:
            return i
    return None


def include_key(name: str, root: int, rel: str) -> str:
    """Archive path of `.INCLUDE rel` for the data file `name` whose `data` folder is part `root`."""
    prefix = name.split("/")[:root]
    return posixpath.normpath("/".join(prefix + ["include", rel]))


def clean(name: str) -> str:
    name = posixpath.normpath(name.replace("\\", "/"))
    return name[2:] if name.startswith("./") else name


class Collector:
    """Turns data files into manifest entries + inks, counting what is skipped."""

    def __init__(self, category: str):
        self.category = category
        self.items: dict[str, list[tuple[tuple, dict, Ink]]] = {s: [] for s in SPLITS}
        self.skipped = Counter()  # reason -> segments
        self.failed_files: list[tuple[str, int, str]] = []  # (name, segments, message)
        self.missing_includes: dict[str, set[str]] = defaultdict(set)  # include path -> data files naming it
        self.no_writer: set[str] = set()
        self.ids: set[str] = set()

    def skip(self, err: InkError) -> None:
        message = str(err)
        reason = next((label for key, label in REASONS if key in message), "other")
        self.skipped[reason] += 1
        tqdm.write(f"skipped: {message}", file=sys.stderr)

    def add_file(self, name: str, root: int, text: str, load) -> None:
        """Parse one data file (`name` its archive/folder path, part `root` its `data` folder)."""
        parts = name.split("/")
        rel = parts[root + 2:]  # below data/<category>/
        stem = "_".join(rel)[: -len(".dat")] if rel[-1].lower().endswith(".dat") else "_".join(rel)
        source = "/".join(parts[root:])

        def load_include(path: str) -> str:
            key = include_key(name, root, path)
            try:
                return load(key)
            except (FileNotFoundError, KeyError):
                self.missing_includes[key].add(source)
                raise FileNotFoundError(key) from None

        try:
            for seg in parse_unipen(source, text, load_include, levels=("WORD",), on_error=self.skip,
                                    on_warning=lambda message: None):
                if not seg.label.strip():
                    self.skip(InkError(f"{source} segment {seg.index} (line {seg.line}): empty label"))
                    continue
                writer = seg.writer.strip()
                if not writer:
                    writer = posixpath.join(*rel)
                    self.no_writer.add(source)
                uid = f"{stem}_{seg.index:04d}"
                while uid in self.ids:
                    uid += "+"
                self.ids.add(uid)
                ink = Ink([s.astype(np.float32) for s in seg.ink.strokes], seg.label)
                entry = {"id": uid, "text": seg.label, "writer": writer, "num_points": ink.num_points,
                         "num_strokes": len(ink.strokes), "source": source, "segment": seg.index,
                         "quality": seg.quality}
                self.items[split_of(writer)].append(((source, seg.index), entry, ink))
        except InkError as err:
            segments = len(re.findall(r"^\.SEGMENT\b", text, re.M))
            self.failed_files.append((source, segments, str(err)))
            tqdm.write(f"error: {err}", file=sys.stderr)

    def write(self, out: Path) -> dict[str, list[dict]]:
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for split in SPLITS:
            items = sorted(self.items[split], key=lambda item: item[0])
            store = out / f"{split}_ink.npz"
            write_ink_store(store, [ink for _, _, ink in items], ids=[entry["id"] for _, entry, _ in items])
            entries = []
            for index, (_, entry, _) in enumerate(items):
                entries.append({"id": entry["id"], "ink_filepath": str(store), "ink_index": index,
                                **{k: v for k, v in entry.items() if k != "id"}})
            write_manifest(out / f"{split}.jsonl", entries)
            written[split] = entries
        return written


def read_folder(src: Path, category: str, collector: Collector) -> int:
    """Every data/<category>/**/*.dat under `src`; returns the number of data files."""
    names = []
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = Path(dirpath).relative_to(src).as_posix()
        for filename in sorted(filenames):
            name = clean(posixpath.join(rel, filename))
            root = data_root(name.split("/"), category)
            if root is not None:
                names.append((name, root))
    if not names:
        raise PrepError(f"{src}: no data/{category}/**/*.dat files in it; pass the extracted UNIPEN folder")

    def load(key: str) -> str:
        path = src / key
        if not path.is_file():
            raise FileNotFoundError(key)
        return decode(path.read_bytes())

    for name, root in tqdm(names, unit="file", desc="data files"):
        collector.add_file(name, root, decode((src / name).read_bytes()), load)
    return len(names)


def read_archive(archive: Path, category: str, collector: Collector) -> int:
    """Stream the tar twice: first the data files and the small include files (descriptions, lexica), then
    the pen-data includes, each parsed with the data files naming it as soon as all their includes are in
    hand and dropped after. Returns the number of data files."""
    data: dict[str, tuple[int, str]] = {}  # name -> (root index, text)
    small: dict[str, bytes] = {}  # include files without pen data
    pen: set[str] = set()  # include files with pen data (read again in pass 2)
    try:
        with tarfile.open(archive, "r|*") as tar:
            for member in tqdm(tar, unit=" members", desc="scanning archive", leave=False):
                if not member.isfile():
                    continue
                name = clean(member.name)
                parts = name.split("/")
                root = data_root(parts, category)
                if root is not None:
                    data[name] = (root, decode(tar.extractfile(member).read()))
                elif "include" in parts[:-1]:
                    blob = tar.extractfile(member).read()
                    if b".PEN_DOWN" in blob:
                        pen.add(name)
                    else:
                        small[name] = blob
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise PrepError(f"{archive}: not a readable tar archive ({err})") from None
    if not data:
        raise PrepError(f"{archive}: no data/{category}/**/*.dat members; is this a UNIPEN archive?")

    needs = {name: [include_key(name, root, rel) for rel in INCLUDE_RE.findall(text)]
             for name, (root, text) in data.items()}
    waiting: dict[str, list[str]] = defaultdict(list)  # pen include -> data files still to parse
    refs = Counter()
    ready = []
    for name in sorted(data):
        wanted = [key for key in needs[name] if key in pen]
        for key in wanted:
            waiting[key].append(name)
            refs[key] += 1
        if not wanted:
            ready.append(name)
    texts: dict[str, str] = {}
    pending: dict[str, bytes] = {}

    def load(key: str) -> str:
        if key not in texts:
            if key in small:
                texts[key] = decode(small[key])
            elif key in pending:
                return decode(pending[key])
            else:
                raise FileNotFoundError(key)
        return texts[key]

    done = set()
    bar = tqdm(total=len(data), unit="file", desc="data files")

    def process(name: str) -> None:
        root, text = data[name]
        collector.add_file(name, root, text, load)
        done.add(name)
        bar.update(1)
        for key in needs[name]:
            if key in refs:
                refs[key] -= 1
                if refs[key] == 0:
                    pending.pop(key, None)

    for name in ready:  # no pen-data include (missing, or not in the archive): parsed now, reported there
        process(name)
    if waiting:
        try:
            with tarfile.open(archive, "r|*") as tar:
                for member in tar:
                    name = clean(member.name)
                    if name not in waiting or not member.isfile():
                        continue
                    pending[name] = tar.extractfile(member).read()
                    for dat in waiting.pop(name):
                        if dat not in done and all(k in pending or k not in pen for k in needs[dat]):
                            process(dat)
                    if refs[name] == 0:
                        pending.pop(name, None)
                    if not waiting:
                        break
        except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
            raise PrepError(f"{archive}: not a readable tar archive ({err})") from None
    bar.close()
    return len(data)


def prepare(out: Path, archive: Path | None = None, src: Path | None = None, category: str = "6") -> dict:
    """Write the manifests and ink stores; returns {split: entries}."""
    started = time.time()
    collector = Collector(category)
    if archive is not None:
        if not archive.is_file():
            raise PrepError(f"{archive}: archive not found")
        files = read_archive(archive, category, collector)
    else:
        if not src.is_dir():
            raise PrepError(f"{src}: folder not found")
        files = read_folder(src, category, collector)
    written = collector.write(out)
    for split in SPLITS:
        entries = written[split]
        writers = len({e["writer"] for e in entries})
        points = sum(e["num_points"] for e in entries)
        size = (out / f"{split}_ink.npz").stat().st_size / 1e6
        print(f"{split}: {len(entries)} words, {writers} writers, {points} points "
              f"({points / max(len(entries), 1):.0f} per word) -> {out / f'{split}.jsonl'} "
              f"+ {split}_ink.npz ({size:.1f} MB)")
    if collector.skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in collector.skipped.most_common())
        print(f"skipped {sum(collector.skipped.values())} segment(s): {reasons}")
    for source, segments, message in collector.failed_files:
        print(f"skipped file {source} ({segments} segments): {message}")
    failed = {source for source, _, _ in collector.failed_files}
    for key, names in sorted(collector.missing_includes.items()):
        if names - failed:
            print(f"note: {key} is not in the source; {len(names - failed)} data file(s) include it and were read "
                  f"without it (its headers, e.g. .COORD, unknown: channels taken as X Y)")
    if collector.no_writer:
        print(f"note: {len(collector.no_writer)} data file(s) name no .WRITER_ID; their file name is the writer")
    total = sum(len(v) for v in written.values())
    print(f"{total} words from {files} data files in {time.time() - started:.1f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write UNIPEN word manifests {train,dev,test}.jsonl and ink stores {train,dev,test}_ink.npz "
                    "(writer-disjoint md5 split).",
        epilog="examples:\n"
               "  python data_prep/unipen.py --archive ../shared/data/unipen/train_r01_v07_cat6.tar.gz "
               "--out recipes/unipen/data\n"
               "  python data_prep/unipen.py --src /tmp/train_r01_v07 --out recipes/unipen/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", type=Path, help="UNIPEN .tar.gz (category 6 alone or the full Zenodo one)")
    source.add_argument("--src", type=Path, help="extracted UNIPEN folder (data/ and include/ at any depth)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the manifests and ink stores")
    parser.add_argument("--category", default="6", help="UNIPEN category folder under data/ (default 6: words)")
    args = parser.parse_args(argv)
    return run(prepare, args.out, archive=args.archive, src=args.src, category=args.category)


if __name__ == "__main__":
    sys.exit(main())
