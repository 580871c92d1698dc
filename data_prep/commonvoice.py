"""Build JSONL manifests for one Common Voice language folder, reading the corpus in place (no conversion).

Layout (as extracted from a Mozilla Common Voice release, e.g. cv-corpus-17.0-2024-03-15/en/):
  <src>/train.tsv, dev.tsv, test.tsv   (and validated.tsv, other.tsv, invalidated.tsv, ...)
  <src>/clips/<path>                   the mp3 clips named in the tsv files' `path` column
The tsv files are tab-separated with a header row and are NOT quote-escaped (a sentence may hold `"`), so they are
read with csv.QUOTE_NONE. Needed columns: client_id, path, sentence; the others (sentence_id, up_votes,
down_votes, age, gender, accents, variant, locale, segment, ...) are ignored.

Output: <out>/<split>.jsonl for each split, one line per clip in tsv order: id (the clip name without .mp3),
audio_filepath (the mp3 in clips/, relative to the manifest folder), duration (seconds, from the file header;
needs libsndfile >= 1.1 for mp3), text (the sentence as in the corpus: mixed case, punctuation kept; only outer
whitespace is removed), speaker (client_id). The manifest is written as the rows come (the tsv is streamed, not
loaded) and replaced atomically at the end; durations are read by a pool of --jobs threads, in tsv order whatever
--jobs is.

A row with a missing or unreadable clip, an empty sentence or the wrong number of columns is reported in one line
(naming the tsv line and the clip), skipped and counted.
"""

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Iterator

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

from tqdm import tqdm

from librispeech import Stats, count_lines, entries, write_streaming
from speechrnn.errors import UserError

DEFAULT_SPLITS = ("train", "dev", "test")
NEEDED = ("client_id", "path", "sentence")


def open_tsv(path: Path):
    """A text handle for csv: utf-8 (a byte-order mark is dropped), universal newlines left to csv."""
    return open(path, encoding="utf-8-sig", newline="")


def tsv_reader(handle):
    return csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)


def read_header(path: Path) -> list[str]:
    """The tsv's column names; PrepError if it is missing, empty or lacks a needed column."""
    if not path.is_file():
        raise PrepError(f"{path}: not found")
    try:
        with open_tsv(path) as handle:
            header = next(tsv_reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise PrepError(f"{path}: not readable as a UTF-8 tsv ({err})") from None
    if not header:
        raise PrepError(f"{path}: empty (no header row)")
    missing = [name for name in NEEDED if name not in header]
    if missing:
        raise PrepError(f"{path}: no column(s) {', '.join(missing)} in its header ({', '.join(header)}); "
                        f"is this a Common Voice clip list?")
    return header


def clip_path(clips: Path, name: str) -> Path:
    """clips/<name>; old releases list names without `.mp3`, so that is tried when the plain name is absent."""
    path = clips / name
    if not Path(name).suffix and not path.exists() and (clips / f"{name}.mp3").exists():
        return clips / f"{name}.mp3"
    return path


def candidates(tsv: Path, header: list[str], clips: Path, stats: Stats, bar: tqdm) -> Iterator[dict]:
    """Rows of `tsv` as manifest entries without duration, streamed; malformed rows are reported and counted."""
    column = {name: header.index(name) for name in NEEDED}
    with open_tsv(tsv) as handle:
        reader = tsv_reader(handle)
        next(reader, None)  # the header
        try:
            for row in reader:
                number = reader.line_num
                if not any(field.strip() for field in row):
                    continue
                problem = None
                if len(row) != len(header):
                    problem = f"{len(row)} columns, the header has {len(header)} (a tab in a field?)"
                elif not row[column["path"]].strip():
                    problem = "empty path"
                elif not row[column["sentence"]].strip():
                    problem = f"empty sentence for {clips / row[column['path']].strip()}"
                if problem:
                    tqdm.write(f"error: {tsv}:{number}: {problem}; row skipped", file=sys.stderr)
                    stats.skipped += 1
                    bar.update(1)
                    continue
                name = row[column["path"]].strip()
                audio = clip_path(clips, name)
                yield {"id": Path(name).stem if Path(name).suffix == ".mp3" else Path(name).name,
                       "audio_filepath": str(audio), "text": row[column["sentence"]].strip(),
                       "speaker": row[column["client_id"]].strip(), "_where": f"{tsv}:{number}"}
        except (csv.Error, UnicodeDecodeError) as err:
            raise PrepError(f"{tsv}:{reader.line_num}: not readable as a UTF-8 tsv ({err}); "
                            f"the rest of the file is not read") from None


def prepare(src: Path, out: Path, splits: list[str] | None = None, jobs: int = 4) -> dict[str, Stats]:
    """Write <out>/<split>.jsonl for each split (default: those of train/dev/test present in `src`); returns the
    statistics by split. All headers are checked before anything is written."""
    started = time.time()
    if not src.is_dir():
        raise PrepError(f"{src}: folder not found")
    clips = src / "clips"
    if not clips.is_dir():
        raise PrepError(f"{clips}: clips folder not found; pass the language folder (e.g. cv-corpus-*/en)")
    if splits is None:
        splits = [name for name in DEFAULT_SPLITS if (src / f"{name}.tsv").is_file()]
        if not splits:
            raise PrepError(f"{src}: none of {', '.join(f'{s}.tsv' for s in DEFAULT_SPLITS)} here; "
                            f"pass the language folder, or name the tsv files with --splits")
    headers = {name: read_header(src / f"{name}.tsv") for name in splits}
    out.mkdir(parents=True, exist_ok=True)
    results, failed = {}, []
    for name in splits:
        tsv = src / f"{name}.tsv"
        stats = Stats()
        path = out / f"{name}.jsonl"
        total = max(count_lines(tsv) - 1, 0)
        try:
            with tqdm(total=total, unit="clip", desc=name, file=sys.stderr) as bar:
                write_streaming(path, entries(candidates(tsv, headers[name], clips, stats, bar), jobs, stats, bar),
                                stats, str(tsv))
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            failed.append(name)
            continue
        results[name] = stats
        print(f"{name}: {stats.written} clips, {len(stats.speakers)} speakers, {stats.seconds / 3600:.2f} h"
              f"{f', {stats.skipped} skipped' if stats.skipped else ''} -> {path}")
    written = sum(s.written for s in results.values())
    skipped = sum(s.skipped for s in results.values())
    print(f"{written} clips in {len(results)} manifest(s), {skipped} skipped, in {time.time() - started:.1f} s")
    if failed:
        raise PrepError(f"split(s) {', '.join(failed)} gave no manifest (see above)")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write Common Voice manifests <split>.jsonl (fields id, audio_filepath, duration, text, "
                    "speaker; the mp3 clips are used in place, paths relative to the manifest folder).",
        epilog="examples:\n"
               "  python data_prep/commonvoice.py --src /data/cv-corpus-17.0-2024-03-15/en --out recipes/cv_en/data\n"
               "  python data_prep/commonvoice.py --src /data/cv/cy --out data --splits train dev test validated "
               "--jobs 8",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True,
                        help="Common Voice language folder holding the .tsv files and clips/")
    parser.add_argument("--out", type=Path, required=True, help="folder to write <split>.jsonl to")
    parser.add_argument("--splits", nargs="+", metavar="NAME",
                        help="tsv files to read, without .tsv (default: those of train dev test present)")
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), metavar="N",
                        help="threads reading audio headers for the durations (default: min(8, CPUs))")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return run(prepare, args.src, args.out, args.splits, args.jobs)


if __name__ == "__main__":
    sys.exit(main())
