"""Build train/dev/test manifests of IAM On-Line Handwriting Database (IAM-OnDB) text lines.

Reads a download in place (nothing is extracted or copied); --root holds:
  lineStrokes/   one XML per text line, e.g. lineStrokes/a01/a01-000/a01-000u-01.xml (found at any depth)
  ascii/         one transcription per form, e.g. ascii/a01/a01-000/a01-000u.txt: the k-th line of its `CSR:`
                 block is the text of lineStrokes file <form>-<kk>.xml (k from 01)
  original/      optional: the forms' XML (<Form id=... writerID=...>), used only for the writer ids
and maybe the IAM-OnDB task t1 split lists trainset.txt, testset_v.txt, testset_t.txt, testset_f.txt (form ids,
one per line; --splits names another folder for them).

Output in --out:
  {train,dev,test}.jsonl      one text line per line: id (the lineStrokes file name, e.g. a01-000u-01),
                              ink_filepath, ink_index, text, writer, num_points, num_strokes, form, source (the
                              XML file below --root)
  {train,dev,test}_ink.npz    the ink of each split, read with speechrnn.ink.InkStore (or
                              speechrnn.ink.load_ink(entry)); screen coordinates exactly as in the corpus and
                              time in seconds from the line's first point
IAM-OnDB is y-down (screen coordinates): configs for it must set `ink.flip_y: true`.

Splits: with the t1 lists, train = trainset, dev = testset_v + testset_t (the task's two validation sets), test =
testset_f (its test set); forms in no list are
left out (counted). Without lists the split is md5(form id without its trailing letter, e.g. a01-000 for
a01-000u) % 10: 0 -> test, 1 -> dev, else train; so all lines of a form, and all copies of one text
(a01-000u, a01-000x, ...), are in the same split. This is deterministic but not writer-disjoint.

The writer of a line is the writerID of its form in original/ when that is there, else the form id without its
trailing letter. A line file that cannot be used (not XML, no points, no matching line in its form's CSR block,
...) is reported with one line `error: <file>: <what>` on stderr, skipped and counted; a form named in a split
list that has no lineStrokes files gets one `warning:` line.
"""

import argparse
import hashlib
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

from tqdm import tqdm

from speechrnn.data import write_manifest
from speechrnn.ink import Ink, InkError, read_iam_ascii, read_iam_ondb, write_ink_store

SPLITS = ("train", "dev", "test")
SPLIT_LISTS = (("train", "trainset.txt"), ("dev", "testset_v.txt"), ("dev", "testset_t.txt"),
               ("test", "testset_f.txt"))
LINE_RE = re.compile(r"^(?P<form>.+)-(?P<line>\d+)$")
FORM_TAG_RE = re.compile(r"<Form\b[^>]*>", re.S)
REASONS = (("XML error", "not XML"), ("no <StrokeSet>", "no <StrokeSet>"), ("no points", "no points"),
           ("single point", "a single point"), ("time goes backwards", "time runs backwards"),
           ("not finite", "non-finite coordinates"), ("cannot read", "unreadable file"))


def form_base(form_id: str) -> str:
    """The form id without its trailing letter: a01-000u -> a01-000 (ids without a letter are kept)."""
    return re.sub(r"(?<=\d)[A-Za-z]$", "", form_id)


def hash_split(form_id: str) -> str:
    """md5 of the form's base id % 10: 0 -> test, 1 -> dev, else train."""
    bucket = int(hashlib.md5(form_base(form_id).encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


def warn(message: str) -> None:
    tqdm.write(f"warning: {message}", file=sys.stderr)


def read_split_lists(folder: Path, explicit: bool) -> dict[str, list[tuple[str, str]]] | None:
    """{split: [(form id, 'file:line'), ...]} from the t1 lists in `folder`; None when it has none and
    `explicit` is False (no --splits: fall back to hashing)."""
    present = [name for _, name in SPLIT_LISTS if (folder / name).is_file()]
    if not present:
        if explicit:
            raise PrepError(f"{folder}: no IAM-OnDB split lists (trainset.txt, testset_v.txt, testset_t.txt, "
                            f"testset_f.txt); leave out --splits to split by md5 of the form id")
        return None
    missing = [name for _, name in SPLIT_LISTS if name not in present]
    if missing:
        raise PrepError(f"{folder}: has {', '.join(present)} but not {', '.join(missing)}; "
                        f"give all four IAM-OnDB t1 split lists or none")
    lists: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for split, name in SPLIT_LISTS:
        path = folder / name
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as err:
            raise PrepError(f"{path}: cannot read ({err.strerror or err})") from None
        for number, line in enumerate(lines, 1):
            form = line.strip()
            if form and not form.startswith("#"):
                lists[split].append((form, f"{path}:{number}"))
    return lists


def assign_splits(lists: dict[str, list[tuple[str, str]]], forms: set[str]) -> dict[str, str]:
    """{form id: split} for the forms that have line files. A list entry names a form id (a01-000u); one that
    matches none but is the base of some (a01-000) takes them all. Warns about entries without files and forms
    listed in two splits (the first list wins)."""
    by_base = defaultdict(list)
    for form in forms:
        by_base[form_base(form)].append(form)
    assigned: dict[str, tuple[str, str]] = {}
    for split in SPLITS:
        for entry, where in lists[split]:
            matches = [entry] if entry in forms else sorted(by_base.get(entry, []))
            if not matches:
                warn(f"{where}: form {entry} has no lineStrokes files; nothing of it is in {split}")
                continue
            for form in matches:
                if form in assigned:
                    if assigned[form][0] != split:
                        warn(f"{where}: form {form} is also in {assigned[form][0]} ({assigned[form][1]}); "
                             f"kept in {assigned[form][0]}")
                    continue
                assigned[form] = (split, where)
    return {form: split for form, (split, _) in assigned.items()}


def read_writers(folder: Path) -> dict[str, str]:
    """{form id: writerID} from the <Form id=... writerID=...> elements of the XML files under original/."""
    writers = {}
    if not folder.is_dir():
        return writers
    for path in sorted(folder.rglob("*.xml")):
        try:
            with open(path, "rb") as stream:
                head = stream.read(65536).decode("utf-8", errors="replace")
        except OSError:
            continue
        for tag in FORM_TAG_RE.findall(head):
            form = re.search(r'\bid\s*=\s*"([^"]+)"', tag)
            writer = re.search(r'\bwriterID\s*=\s*"([^"]+)"', tag)
            if form and writer and writer.group(1).strip():
                writers[form.group(1).strip()] = writer.group(1).strip()
    return writers


class Collector:
    """Turns lineStrokes files into manifest entries + inks, counting what is skipped."""

    def __init__(self, root: Path, ascii_files: dict[str, Path], writers: dict[str, str]):
        self.root = root
        self.ascii_files = ascii_files
        self.writers = writers
        self.transcripts: dict[str, list[str] | InkError] = {}
        self.items: dict[str, list[tuple[dict, Ink]]] = {s: [] for s in SPLITS}
        self.skipped = Counter()  # reason -> line files
        self.sources: dict[str, Path] = {}  # id -> line file

    def skip(self, path: Path, message: str, reason: str) -> None:
        self.skipped[reason] += 1
        tqdm.write(f"error: {path}: {message}", file=sys.stderr)

    def transcript(self, form: str) -> list[str]:
        if form not in self.transcripts:
            path = self.ascii_files.get(form)
            if path is None:
                self.transcripts[form] = InkError(f"no {form}.txt under {self.root / 'ascii'}")
            else:
                try:
                    self.transcripts[form] = read_iam_ascii(path)
                except InkError as err:
                    self.transcripts[form] = err
        found = self.transcripts[form]
        if isinstance(found, InkError):
            raise found
        return found

    def add(self, path: Path, form: str, number: int, split: str) -> None:
        uid = path.stem
        if uid in self.sources:
            self.skip(path, f"line id {uid} again (first at {self.sources[uid]})", "duplicate id")
            return
        try:
            lines = self.transcript(form)
        except InkError as err:
            self.skip(path, f"no transcription: {err}", "no transcription")
            return
        if not 1 <= number <= len(lines):
            ascii_path = self.ascii_files[form]
            self.skip(path, f"no line {number} in the CSR block of {ascii_path} (it has {len(lines)})",
                      "no transcription")
            return
        try:
            ink = read_iam_ondb(path)  # checked there (check_ink): two or more finite points, time not backwards
        except InkError as err:
            message = str(err)
            prefix = f"{path}: "
            message = message[len(prefix):] if message.startswith(prefix) else message
            reason = next((label for key, label in REASONS if key in message), "bad ink")
            self.skip(path, message, reason)
            return
        self.sources[uid] = path
        text = lines[number - 1]
        entry = {"id": uid, "text": text, "writer": self.writers.get(form, form_base(form)),
                 "num_points": ink.num_points, "num_strokes": sum(1 for s in ink.strokes if len(s)),
                 "form": form, "source": path.relative_to(self.root).as_posix()}
        self.items[split].append((entry, Ink(ink.strokes, text)))

    def write(self, out: Path) -> dict[str, list[dict]]:
        out.mkdir(parents=True, exist_ok=True)
        written = {}
        for split in SPLITS:
            items = sorted(self.items[split], key=lambda item: item[0]["id"])
            store = out / f"{split}_ink.npz"
            write_ink_store(store, [ink for _, ink in items], ids=[entry["id"] for entry, _ in items])
            entries = []
            for index, (entry, _) in enumerate(items):
                entries.append({"id": entry["id"], "ink_filepath": str(store), "ink_index": index,
                                **{k: v for k, v in entry.items() if k != "id"}})
            write_manifest(out / f"{split}.jsonl", entries)
            written[split] = entries
        return written


def prepare(root: Path, out: Path, splits: Path | None = None) -> dict[str, list[dict]]:
    """Write the manifests and ink stores; returns {split: entries}."""
    started = time.time()
    root = Path(root)
    if not root.is_dir():
        raise PrepError(f"{root}: folder not found")
    strokes_dir, ascii_dir = root / "lineStrokes", root / "ascii"
    for folder in (strokes_dir, ascii_dir):
        if not folder.is_dir():
            raise PrepError(f"{root}: no {folder.name}/ folder in it; --root must hold the lineStrokes/ and ascii/ "
                            f"folders of the IAM-OnDB download")
    line_files = sorted(strokes_dir.rglob("*.xml"))
    if not line_files:
        raise PrepError(f"{strokes_dir}: no .xml files in it; is this IAM-OnDB's lineStrokes folder?")
    ascii_files = {p.stem: p for p in sorted(ascii_dir.rglob("*.txt"))}
    if splits is not None and not Path(splits).is_dir():
        raise PrepError(f"{splits}: folder not found (--splits)")
    lists = read_split_lists(Path(splits) if splits is not None else root, explicit=splits is not None)
    collector = Collector(root, ascii_files, read_writers(root / "original"))

    parsed = []
    for path in line_files:
        match = LINE_RE.match(path.stem)
        if match is None:
            collector.skip(path, "file name is not <form id>-<line number>.xml (e.g. a01-000u-01.xml)",
                           "bad file name")
            continue
        parsed.append((path, match["form"], int(match["line"])))
    forms = {form for _, form, _ in parsed}
    assigned = assign_splits(lists, forms) if lists is not None else {form: hash_split(form) for form in forms}
    unlisted = Counter()
    for path, form, number in tqdm(parsed, unit="line", desc="lineStrokes"):
        split = assigned.get(form)
        if split is None:
            unlisted[form] += 1
            continue
        collector.add(path, form, number, split)
    total = sum(len(items) for items in collector.items.values())
    if total == 0:
        raise PrepError(f"{root}: no usable text lines (see the errors above); nothing written")
    written = collector.write(out)

    how = f"the t1 split lists in {splits if splits is not None else root}" if lists is not None else \
        "md5 of the form id (no split lists)"
    print(f"split by {how}")
    for split in SPLITS:
        entries = written[split]
        writers = len({e["writer"] for e in entries})
        points = sum(e["num_points"] for e in entries)
        size = (out / f"{split}_ink.npz").stat().st_size / 1e6
        print(f"{split}: {len(entries)} lines, {len({e['form'] for e in entries})} forms, {writers} writers, "
              f"{points} points ({points / max(len(entries), 1):.0f} per line) -> {out / f'{split}.jsonl'} "
              f"+ {split}_ink.npz ({size:.1f} MB)")
    if collector.skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in collector.skipped.most_common())
        print(f"skipped {sum(collector.skipped.values())} line file(s): {reasons}")
    if unlisted:
        print(f"note: {sum(unlisted.values())} line file(s) of {len(unlisted)} form(s) in no split list were "
              f"left out")
    print(f"{total} lines from {len(line_files)} lineStrokes files in {time.time() - started:.1f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write IAM-OnDB text-line manifests {train,dev,test}.jsonl and ink stores "
                    "{train,dev,test}_ink.npz from the lineStrokes/ and ascii/ folders of a download.",
        epilog="splits:\n"
               "  with the task t1 lists (trainset.txt, testset_v.txt, testset_t.txt, testset_f.txt in --splits,\n"
               "  default --root): train = trainset, dev = testset_v + testset_t, test = testset_f; forms in no list\n"
               "  are left out. Without them: md5(form id without its trailing letter, e.g. a01-000) % 10:\n"
               "  0 -> test, 1 -> dev, else train (deterministic, a form never straddles splits; not writer-disjoint)\n"
               "\n"
               "IAM-OnDB ink is y-down: configs for it must set ink.flip_y: true.\n"
               "\n"
               "examples:\n"
               "  python data_prep/iam_ondb.py --root ~/corpora/IAM-OnDB --out exp/iam_ondb/data\n"
               "  python data_prep/iam_ondb.py --root /tmp/iamondb --splits /tmp/iamondb/task1 --out /tmp/iam_data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, required=True,
                        help="IAM-OnDB folder with lineStrokes/ and ascii/ (maybe original/ and the split lists)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the manifests and ink stores")
    parser.add_argument("--splits", type=Path, default=None,
                        help="folder with the t1 split lists (default: --root; if it has none there, md5 split)")
    args = parser.parse_args(argv)
    return run(prepare, args.root, args.out, splits=args.splits)


if __name__ == "__main__":
    sys.exit(main())
