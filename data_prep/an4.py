"""Build train/dev/test JSONL manifests for CMU AN4 (census, close-talk microphone).

Reads either layout of the corpus in place:
  A. the cmusphinx/an4 WAV conversion: <src>/etc/an4_{train,test}.{transcription,fileids},
     audio at <src>/wav/an4_clstk/<spk>/<uttid>.wav and <src>/wav/an4test_clstk/<spk>/<uttid>.wav;
  B. the original an4_sphere.tar.gz extracted: the same under <src>/an4/ (or <src> itself),
     with NIST sphere `.sph` audio instead of `.wav`.
With --download DIR (and no --src) it fetches an4_sphere.tar.gz from CMU into DIR and extracts it there.

dev is carved out of the official train set by holding back whole speakers: of the sorted training
speaker ids, indexes 0, N, 2N, ... (N = --dev-every) go to dev. test is the official test set.
"""

import argparse
import re
import sys
import tarfile
import urllib.request
from pathlib import Path, PurePosixPath

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

from tqdm import tqdm

from speechrnn.audio import audio_duration
from speechrnn.data import write_manifest
from speechrnn.errors import AudioError

AN4_URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
AUDIO_SUFFIXES = (".wav", ".sph")
SPLIT_FILES = {"train": "an4_train", "test": "an4_test"}  # official split -> etc/ file stem
MARKERS = {"<s>", "</s>", "<sil>"}
LINE_RE = re.compile(r"^(?P<text>.*?)\s*\((?P<uttid>[^()\s]+)\)\s*$")


def find_an4_root(src: Path) -> Path:
    """The folder holding etc/ and wav/: `src` itself or `src/an4` (the extracted tarball)."""
    for root in (src, src / "an4"):
        if (root / "etc").is_dir():
            return root
    raise PrepError(f"{src}: not an AN4 tree (no etc/ in it or in {src / 'an4'}); "
                    f"pass the folder that holds etc/ and wav/, or use --download")


def parse_transcription(path: Path) -> list[tuple[str, str]]:
    """Lines `<s> WORDS </s> (uttid)` (test lines lack the markers) -> [(uttid, "WORDS"), ...]."""
    if not path.is_file():
        raise PrepError(f"{path}: transcription file not found; the AN4 tree is incomplete")
    utterances = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = LINE_RE.match(line)
        words = [w for w in match["text"].split() if w not in MARKERS] if match else []
        if not words:
            raise PrepError(f"{path}:{number}: expected '<s> WORDS </s> (uttid)', got {line.strip()!r}")
        utterances.append((match["uttid"], " ".join(words)))
    return utterances


def parse_fileids(path: Path) -> dict[str, str]:
    """Lines `an4_clstk/<spk>/<uttid>` -> {uttid: "an4_clstk/<spk>/<uttid>"}."""
    if not path.is_file():
        raise PrepError(f"{path}: fileids file not found; the AN4 tree is incomplete")
    fileids = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            fileids[PurePosixPath(line.strip()).name] = line.strip()
    return fileids


def find_audio(wav_dir: Path, fileid: str) -> Path | None:
    """wav/<fileid>.wav or wav/<fileid>.sph, whichever exists."""
    for suffix in AUDIO_SUFFIXES:
        path = wav_dir / (fileid + suffix)
        if path.is_file():
            return path
    return None


def read_split(root: Path, split: str) -> tuple[list[dict], int]:
    """Manifest entries of one official split and the number of utterances skipped for missing audio."""
    stem = SPLIT_FILES[split]
    transcripts = parse_transcription(root / "etc" / f"{stem}.transcription")
    fileids = parse_fileids(root / "etc" / f"{stem}.fileids")
    wav_dir = root / "wav"
    if not wav_dir.is_dir():
        raise PrepError(f"{wav_dir}: audio folder not found; the AN4 tree is incomplete")
    entries, skipped = [], 0
    for uttid, text in transcripts:
        fileid = fileids.get(uttid)
        if fileid is None:
            print(f"warning: {uttid} is in {stem}.transcription but not in {stem}.fileids; skipped", file=sys.stderr)
            skipped += 1
            continue
        audio = find_audio(wav_dir, fileid)
        if audio is None:
            print(f"warning: {wav_dir / fileid}.wav/.sph not found; utterance {uttid} skipped", file=sys.stderr)
            skipped += 1
            continue
        try:
            duration = audio_duration(audio)
        except AudioError as err:
            print(f"warning: {err}; utterance {uttid} skipped", file=sys.stderr)
            skipped += 1
            continue
        entries.append({"id": uttid, "audio_filepath": str(audio), "duration": round(duration, 4),
                        "text": text, "speaker": PurePosixPath(fileid).parent.name})
    if not entries:
        raise PrepError(f"{wav_dir}: none of the {len(transcripts)} {split} utterances has its audio here")
    return entries, skipped


def dev_speakers(speakers: set[str], every: int) -> set[str]:
    """Every `every`-th of the sorted speaker ids, starting with the first; none when every <= 0."""
    return set(sorted(speakers)[::every]) if every > 0 else set()


def prepare(src: Path, out: Path, dev_every: int = 10) -> dict[str, list[dict]]:
    """Write train/dev/test.jsonl for the AN4 tree at `src` into `out`; returns the entries by split."""
    root = find_an4_root(src)
    train_all, skipped_train = read_split(root, "train")
    test, skipped_test = read_split(root, "test")
    held_out = dev_speakers({e["speaker"] for e in train_all}, dev_every)
    splits = {
        "train": [e for e in train_all if e["speaker"] not in held_out],
        "dev": [e for e in train_all if e["speaker"] in held_out],
        "test": test,
    }
    for name, entries in splits.items():
        write_manifest(out / f"{name}.jsonl", entries)
        print(summary(name, entries, out / f"{name}.jsonl"))
    if skipped_train + skipped_test:
        print(f"skipped {skipped_train + skipped_test} utterance(s) with missing or unreadable audio "
              f"({skipped_train} train, {skipped_test} test)", file=sys.stderr)
    return splits


def summary(name: str, entries: list[dict], path: Path) -> str:
    hours = sum(e["duration"] for e in entries) / 3600
    speakers = len({e["speaker"] for e in entries})
    return f"{name}: {len(entries)} utterances, {speakers} speakers, {hours:.2f} h -> {path}"


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive into `dest`, refusing members with absolute paths, `..` or links leading out."""
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            for name in (member.name, member.linkname if (member.issym() or member.islnk()) else ""):
                parts = PurePosixPath(name).parts
                if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute() or ".." in parts:
                    raise PrepError(f"{archive}: refusing to extract unsafe member {member.name!r} "
                                    f"(absolute path or '..'); the archive is damaged or not AN4")
        tar.extractall(dest, members=members, filter="data")


def download(dest: Path, url: str = AN4_URL) -> Path:
    """Fetch an4_sphere.tar.gz into `dest` (unless already there) and extract it; returns the AN4 root."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / PurePosixPath(url).name
    if not archive.is_file():
        partial = archive.with_name(archive.name + ".part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=archive.name) as bar:
                    while chunk := response.read(1 << 20):
                        out.write(chunk)
                        bar.update(len(chunk))
        except (OSError, ValueError) as err:  # URLError and socket timeouts are OSErrors
            partial.unlink(missing_ok=True)
            raise PrepError(f"download of {url} failed ({err}); fetch it by hand into {dest} "
                            f"or pass an extracted copy with --src") from None
        partial.replace(archive)
    if not (dest / "an4" / "etc").is_dir():
        try:
            safe_extract(archive, dest)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise PrepError(f"{archive}: not a readable tar.gz ({err}); delete it and download again") from None
    return find_an4_root(dest)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write AN4 manifests train.jsonl, dev.jsonl and test.jsonl (fields id, audio_filepath, "
                    "duration, text, speaker; audio paths relative to the manifest folder).",
        epilog="examples:\n"
               "  python data_prep/an4.py --src ../shared/data/an4 --out recipes/an4/data\n"
               "  python data_prep/an4.py --download downloads --out recipes/an4/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--src", type=Path,
                        help="AN4 folder holding etc/ and wav/ (.wav or .sph audio), or its parent with an4/ in it")
    source.add_argument("--download", type=Path, metavar="DIR",
                        help=f"download {AN4_URL} into DIR (skipped if already there), extract it and use it")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the three manifests to")
    parser.add_argument("--dev-every", type=int, default=10, metavar="N",
                        help="hold out every N-th sorted training speaker, starting with the first, "
                             "as dev (default 10 -> 8 of 74 speakers; 0: no dev set)")
    args = parser.parse_args(argv)

    def fetch_and_prepare():
        prepare(args.src if args.src is not None else download(args.download), args.out, args.dev_every)
    return run(fetch_and_prepare)


if __name__ == "__main__":
    sys.exit(main())
