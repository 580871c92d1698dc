"""Build one JSONL manifest per LibriSpeech subset (train-clean-100, dev-clean, ...), reading the corpus in place.

Layout of a subset folder (as extracted from the openslr.org tarballs):
  <subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   lines `<speaker>-<chapter>-<NNNN> WORDS`
  <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<NNNN>.flac
--src is one subset folder, or a folder holding several (e.g. `LibriSpeech/` from the tarballs, or its parent).

Output: <out>/<subset>.jsonl, one line per utterance: id, audio_filepath (the .flac, relative to the manifest
folder), duration (seconds, from the file header), text (as in the corpus: upper case, no punctuation), speaker,
chapter. Lines are sorted by speaker, chapter and utterance id (numerically where the names are numbers), so the
output does not depend on --jobs. The manifest is written as the utterances come (nothing is held per utterance)
and replaced atomically at the end; durations are read by a pool of --jobs threads.

An utterance whose .flac is missing or unreadable, or a transcript line without words, is reported in one line,
skipped and counted; so is a chapter folder without a transcript.
"""

import argparse
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

import soundfile
from tqdm import tqdm

from speechrnn.data import write_manifest

TRANS_SUFFIX = ".trans.txt"
LINE_RE = re.compile(r"^(?P<id>\S+)(?:[ \t]+(?P<text>.*?))?\s*$")


def natural_key(name: str) -> tuple:
    """Numbers in numeric order (19 before 103), other names after them in string order."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def subdirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))


def is_subset(folder: Path) -> bool:
    """A folder holding <speaker>/<chapter>/*.trans.txt (checked on the first few speakers only)."""
    for speaker in subdirs(folder)[:5]:
        for chapter in subdirs(speaker)[:5]:
            if any(chapter.glob("*" + TRANS_SUFFIX)):
                return True
    return False


def find_subsets(src: Path, only: list[str] | None = None) -> list[Path]:
    """`src` itself if it is a subset folder, else the subset folders in it (or in src/LibriSpeech)."""
    if not src.is_dir():
        raise PrepError(f"{src}: folder not found")
    if is_subset(src):
        found = [src]
    else:
        found = [p for p in subdirs(src) if is_subset(p)]
        if not found and (src / "LibriSpeech").is_dir():
            found = [p for p in subdirs(src / "LibriSpeech") if is_subset(p)]
    if not found:
        raise PrepError(f"{src}: no LibriSpeech subset here (expected <subset>/<speaker>/<chapter>/*{TRANS_SUFFIX}, "
                        f"e.g. dev-clean/84/121123/84-121123{TRANS_SUFFIX}); pass a subset folder or its parent")
    if only:
        names = {p.resolve().name: p for p in found}
        missing = [name for name in only if name not in names]
        if missing:
            raise PrepError(f"{src}: subset(s) {', '.join(missing)} not found; found {', '.join(sorted(names))}")
        found = [names[name] for name in only]
    return found


def transcript_files(subset: Path) -> list[Path]:
    """Every <speaker>/<chapter>/*.trans.txt, in speaker then chapter order; chapters lacking one are reported."""
    files = []
    for speaker in subdirs(subset):
        for chapter in subdirs(speaker):
            expected = chapter / f"{speaker.name}-{chapter.name}{TRANS_SUFFIX}"
            found = [expected] if expected.is_file() else sorted(chapter.glob("*" + TRANS_SUFFIX))
            if found:
                files.extend(found)
            else:
                flacs = sum(1 for _ in chapter.glob("*.flac"))
                tqdm.write(f"error: {expected}: transcript not found; chapter skipped ({flacs} .flac files)",
                           file=sys.stderr)
    return files


def count_lines(path: Path) -> int:
    """Non-blank lines of a text file, read as bytes without keeping them (for the progress bar total)."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.strip())
    except OSError:  # reported when the file is read for real
        return 0


def audio_info(path: Path) -> tuple[float | None, str]:
    """(duration in seconds, "") from the header, or (None, why not). Runs in the worker threads."""
    try:
        if not path.is_file():
            return None, "not found"
        if path.stat().st_size == 0:
            return None, "empty file"
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        detail = re.sub(r"^Error opening .*?: ", "", str(err)).strip()
        if "does not exist" in detail:  # what libsndfile says of an existing file it cannot parse (mp3)
            detail = "corrupt, or not in a format libsndfile knows"
        return None, f"not readable as audio ({detail})"
    if info.frames <= 0 or info.samplerate <= 0:
        return None, "holds no samples (truncated?)"
    return info.frames / info.samplerate, ""


def ordered_map(fn: Callable, items: Iterable, jobs: int, window: int = 256) -> Iterator[tuple]:
    """(item, fn(item)) in input order, with up to `window` items in flight on `jobs` threads (soundfile
    releases the GIL while libsndfile reads). Items are taken from `items` lazily, so a stream stays a stream."""
    if jobs <= 1:
        for item in items:
            yield item, fn(item)
        return
    pool = ThreadPoolExecutor(max_workers=jobs)
    pending: deque = deque()
    try:
        for item in items:
            pending.append((item, pool.submit(fn, item)))
            if len(pending) >= max(window, 2 * jobs):
                first, future = pending.popleft()
                yield first, future.result()
        while pending:
            first, future = pending.popleft()
            yield first, future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class Stats:
    def __init__(self):
        self.written = 0
        self.skipped = 0
        self.seconds = 0.0
        self.speakers: set[str] = set()


def utterances(files: list[Path], stats: Stats, bar: tqdm) -> Iterator[dict]:
    """Candidate utterances of a subset, in output order; bad transcript lines are reported and counted."""
    for trans in files:
        chapter_dir = trans.parent
        speaker, chapter = chapter_dir.parent.name, chapter_dir.name
        try:
            text_lines = trans.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as err:
            tqdm.write(f"error: {trans}: not readable as UTF-8 text ({err}); chapter skipped", file=sys.stderr)
            lost = count_lines(trans)
            stats.skipped += lost
            bar.update(lost)
            continue
        lines, seen = [], set()
        for number, line in enumerate(text_lines, 1):
            if not line.strip():
                continue
            match = LINE_RE.match(line.strip())
            problem = None
            if not match or not match["text"]:
                problem = f"expected '<utterance id> WORDS', got {line.strip()!r}; skipped"
            elif match["id"] in seen:
                problem = f"utterance {match['id']} listed twice; second one skipped"
            if problem:
                tqdm.write(f"error: {trans}:{number}: {problem}", file=sys.stderr)
                stats.skipped += 1
                bar.update(1)
                continue
            seen.add(match["id"])
            lines.append((match["id"], match["text"], number))
        lines.sort(key=lambda item: [natural_key(part) for part in item[0].split("-")])
        for uid, text, number in lines:
            yield {"id": uid, "audio_filepath": str(chapter_dir / f"{uid}.flac"), "text": text,
                   "speaker": speaker, "chapter": chapter, "_where": f"{trans}:{number}"}


def entries(candidates: Iterable[dict], jobs: int, stats: Stats, bar: tqdm) -> Iterator[dict]:
    """Candidates with "duration" added after "audio_filepath", in input order. A candidate whose audio is missing
    or unreadable is reported in one line (naming the file and, from its optional "_where" key, where it was
    listed), skipped and counted. Shared with commonvoice.py."""
    for candidate, (duration, problem) in ordered_map(lambda c: audio_info(Path(c["audio_filepath"])),
                                                      candidates, jobs):
        bar.update(1)
        where = candidate.pop("_where", "")
        if duration is None:
            tqdm.write(f"error: {candidate['audio_filepath']}: {problem}; utterance {candidate['id']}"
                       f"{f' ({where})' if where else ''} skipped", file=sys.stderr)
            stats.skipped += 1
            continue
        stats.written += 1
        stats.seconds += duration
        stats.speakers.add(candidate.get("speaker", ""))
        entry = {}
        for key, value in candidate.items():
            entry[key] = value
            if key == "audio_filepath":
                entry["duration"] = round(duration, 4)
        yield entry


def write_streaming(path: Path, stream: Iterable[dict], stats: Stats, where: str) -> None:
    """write_manifest from a generator; the temporary file is removed if the stream fails or yields nothing."""
    def checked():
        yield from stream
        if stats.written == 0:
            raise PrepError(f"{where}: no usable utterance (see the errors above); {path} not written")

    try:
        write_manifest(path, checked())
    except BaseException:
        path.with_suffix(path.suffix + ".tmp").unlink(missing_ok=True)
        raise


def prepare_subset(subset: Path, out: Path, jobs: int) -> Stats:
    name = subset.resolve().name
    files = transcript_files(subset)
    if not files:
        raise PrepError(f"{subset}: no {TRANS_SUFFIX} files in <speaker>/<chapter>/ folders")
    total = sum(count_lines(f) for f in files)
    stats = Stats()
    path = out / f"{name}.jsonl"
    with tqdm(total=total, unit="utt", desc=name, file=sys.stderr) as bar:
        write_streaming(path, entries(utterances(files, stats, bar), jobs, stats, bar), stats, str(subset))
    print(f"{name}: {stats.written} utterances, {len(stats.speakers)} speakers, {stats.seconds / 3600:.2f} h"
          f"{f', {stats.skipped} skipped' if stats.skipped else ''} -> {path}")
    return stats


def prepare(src: Path, out: Path, jobs: int = 4, subsets: list[str] | None = None) -> dict[str, Stats]:
    """Write <out>/<subset>.jsonl for each subset found at `src`; returns the statistics by subset name.
    A subset with no usable utterance is reported and the others are still written; then PrepError is raised."""
    started = time.time()
    found = find_subsets(src, subsets)
    out.mkdir(parents=True, exist_ok=True)
    results, failed = {}, []
    for subset in found:
        try:
            results[subset.resolve().name] = prepare_subset(subset, out, jobs)
        except PrepError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(subset.resolve().name)
    written = sum(s.written for s in results.values())
    skipped = sum(s.skipped for s in results.values())
    print(f"{written} utterances in {len(results)} manifest(s), {skipped} skipped, in {time.time() - started:.1f} s")
    if failed:
        raise PrepError(f"subset(s) {', '.join(failed)} gave no manifest (see above)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write one LibriSpeech manifest per subset, <subset>.jsonl (fields id, audio_filepath, "
                    "duration, text, speaker, chapter; audio paths relative to the manifest folder; "
                    "the .flac files are read in place).",
        epilog="examples:\n"
               "  python data_prep/librispeech.py --src /data/LibriSpeech --out recipes/librispeech/data\n"
               "  python data_prep/librispeech.py --src /data/LibriSpeech/dev-clean --out data --jobs 8\n"
               "  python data_prep/librispeech.py --src /data/LibriSpeech --subsets dev-clean test-clean --out data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True,
                        help="a LibriSpeech subset folder (e.g. dev-clean/) or a folder holding several")
    parser.add_argument("--out", type=Path, required=True, help="folder to write <subset>.jsonl to")
    parser.add_argument("--subsets", nargs="+", metavar="NAME",
                        help="only these subsets (folder names, e.g. train-clean-100 dev-clean); default: all found")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), metavar="N",
                        help="threads reading audio headers for the durations (default: min(8, CPUs))")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return run(prepare, args.src, args.out, args.jobs, args.subsets)


if __name__ == "__main__":
    sys.exit(main())
