"""Speaker-disjoint folds of the Free Spoken Digit Dataset (FSDD) for spoken-digit classification.

FSDD files are `recordings/{digit}_{speaker}_{index}.wav` (8 kHz mono). Each speaker in turn is the test speaker of
one fold, named after them; the other speakers train. The dev set, for model selection, comes from the training
speakers only: their recordings with index < --dev-indices (FSDD's own "test" slice, indices 0-4 of 0-49), so the
test speaker is never seen before the final evaluation. Written, for each fold:

    OUT/<test speaker>/train.jsonl   training speakers, index >= --dev-indices
    OUT/<test speaker>/dev.jsonl     training speakers, index <  --dev-indices
    OUT/<test speaker>/test.jsonl    every recording of the test speaker
    OUT/<test speaker>/test_a.jsonl  its recordings with index <  --half (25): unlabelled adaptation data for ...
    OUT/<test speaker>/test_b.jsonl  ... scoring on the other half, and the other way round (run.sh stage 3)
    OUT/folds.txt                    the fold names, one a line

Manifest lines carry id, audio_filepath (relative to the manifest), duration, text (the digit as a word), label
(the digit, "0".."9") and speaker, sorted by (speaker, digit, index): the output depends on nothing but the corpus.
"""

import argparse
import re
import sys
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

from speechrnn.audio import audio_duration
from speechrnn.data import write_manifest
from speechrnn.errors import AudioError

NAME_RE = re.compile(r"^(?P<digit>[0-9])_(?P<speaker>[A-Za-z0-9-]+)_(?P<index>[0-9]+)$")
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def find_recordings(src: Path) -> list[Path]:
    """The FSDD wav files in `src/recordings/` or in `src` itself."""
    folder = src / "recordings" if (src / "recordings").is_dir() else src
    waves = sorted(folder.glob("*.wav"))
    if not waves:
        raise PrepError(f"{src}: no .wav files in it or in {src / 'recordings'}; pass the FSDD folder")
    return waves


def read_corpus(src: Path) -> list[dict]:
    """One manifest entry per recording, sorted by (speaker, digit, index); bad names and files are reported."""
    entries = []
    for wave in find_recordings(src):
        match = NAME_RE.match(wave.stem)
        if not match:
            print(f"warning: {wave}: not an FSDD name ({{digit}}_{{speaker}}_{{index}}.wav); skipped", file=sys.stderr)
            continue
        try:
            duration = audio_duration(wave)
        except AudioError as err:
            print(f"warning: {err}; skipped", file=sys.stderr)
            continue
        digit = match["digit"]
        entries.append({"id": wave.stem, "audio_filepath": str(wave), "duration": round(duration, 5),
                        "text": WORDS[int(digit)], "label": digit, "speaker": match["speaker"],
                        "index": int(match["index"])})
    entries.sort(key=lambda e: (e["speaker"], int(e["label"]), e["index"]))
    return entries


def make_folds(entries: list[dict], dev_indices: int = 5, half: int = 25) -> dict[str, dict[str, list[dict]]]:
    """{test speaker: {"train", "dev", "test": entries}}, leave-one-speaker-out."""
    speakers = sorted({e["speaker"] for e in entries})
    if len(speakers) < 2:
        raise PrepError(f"speaker-disjoint folds need at least 2 speakers, found {len(speakers)}: {speakers}")
    folds = {}
    for held_out in speakers:
        rest = [e for e in entries if e["speaker"] != held_out]
        test = [e for e in entries if e["speaker"] == held_out]
        folds[held_out] = {"train": [e for e in rest if e["index"] >= dev_indices],
                           "dev": [e for e in rest if e["index"] < dev_indices], "test": test,
                           "test_a": [e for e in test if e["index"] < half], "test_b": [e for e in test if e["index"] >= half]}
        if not folds[held_out]["train"] or not folds[held_out]["dev"]:
            raise PrepError(f"fold {held_out}: --dev-indices {dev_indices} leaves an empty train or dev set")
        if not folds[held_out]["test_a"] or not folds[held_out]["test_b"]:
            raise PrepError(f"fold {held_out}: --half {half} leaves an empty test half")
    return folds


def prepare(src: Path, out: Path, dev_indices: int = 5, half: int = 25) -> dict[str, dict[str, list[dict]]]:
    entries = read_corpus(src)
    if not entries:
        raise PrepError(f"{src}: no usable FSDD recordings (see the warnings above)")
    folds = make_folds(entries, dev_indices, half)
    for name, splits in folds.items():
        for split, split_entries in splits.items():
            write_manifest(out / name / f"{split}.jsonl", split_entries)
        counts = ", ".join(f"{split} {len(s)} ({'+'.join(sorted({e['speaker'] for e in s}))})"
                           for split, s in splits.items())
        print(f"fold {name}: {counts} -> {out / name}")
    (out / "folds.txt").write_text("".join(name + "\n" for name in folds))
    return folds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Writes OUT/<test speaker>/{train,dev,test}.jsonl and OUT/folds.txt; "
                    "dev = the training speakers' recordings with index < --dev-indices.",
        epilog="example:\n  python data_prep/fsdd.py --src ../shared/data/fsdd --out recipes/fsdd/exp/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True, help="FSDD folder holding recordings/*.wav (or that folder)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the fold manifests to")
    parser.add_argument("--dev-indices", type=int, default=5,
                        help="recordings of the training speakers with index below this form dev (default 5: 10%%)")
    parser.add_argument("--half", type=int, default=25,
                        help="the test speaker's recordings with index below this form test_a, the rest test_b (25)")
    args = parser.parse_args(argv)
    return run(prepare, args.src, args.out, args.dev_indices, args.half)


if __name__ == "__main__":
    sys.exit(main())
