"""Build train/test JSONL manifests for the Kaldi "yesno" corpus (openslr resource 1).

Each of the 60 files holds 8 words, spelled in its name: `0_1_1_0_1_0_0_1.wav` is
"NO YES YES NO YES NO NO YES". Split by sorted file name: the first half is train, the rest test.
"""

import argparse
import re
import sys
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

from speechrnn.audio import audio_duration
from speechrnn.data import write_manifest
from speechrnn.errors import AudioError

WORDS = {"0": "NO", "1": "YES"}
NAME_RE = re.compile(r"^[01](_[01])*$")


def label_from_name(stem: str) -> str:
    """`0_1_1_0` -> "NO YES YES NO"."""
    if not NAME_RE.match(stem):
        raise ValueError(f"{stem!r} is not a yesno file name (digits 0/1 joined by '_')")
    return " ".join(WORDS[digit] for digit in stem.split("_"))


def find_waves(src: Path) -> list[Path]:
    """The yesno wav files, sorted by name, in `src/waves_yesno/` or in `src` itself."""
    folder = src / "waves_yesno" if (src / "waves_yesno").is_dir() else src
    waves = sorted(folder.glob("*.wav"), key=lambda p: p.name)
    if not waves:
        raise PrepError(f"{src}: no .wav files in it or in {src / 'waves_yesno'}; pass the yesno corpus folder")
    return waves


def prepare(src: Path, out: Path) -> dict[str, list[dict]]:
    """Write train.jsonl and test.jsonl for the yesno folder `src` into `out`; returns the entries by split."""
    entries = []
    for wave in find_waves(src):
        try:
            entries.append({"id": wave.stem, "audio_filepath": str(wave), "duration": round(audio_duration(wave), 4),
                            "text": label_from_name(wave.stem), "speaker": "yesno"})
        except (ValueError, AudioError) as err:
            print(f"warning: {wave}: {err}; skipped", file=sys.stderr)
    half = len(entries) // 2
    splits = {"train": entries[:half], "test": entries[half:]}
    for name, split in splits.items():
        write_manifest(out / f"{name}.jsonl", split)
        hours = sum(e["duration"] for e in split) / 3600
        print(f"{name}: {len(split)} utterances, {len({e['speaker'] for e in split})} speakers, "
              f"{hours:.2f} h -> {out / f'{name}.jsonl'}")
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write yesno manifests train.jsonl and test.jsonl (first and second half of the files "
                    "sorted by name; fields id, audio_filepath, duration, text, speaker).",
        epilog="example:\n  python data_prep/yesno.py --src ../shared/data/yesno --out recipes/yesno/data",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, required=True,
                        help="folder holding waves_yesno/*.wav, or the waves_yesno folder itself")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the two manifests to")
    args = parser.parse_args(argv)
    return run(prepare, args.src, args.out)


if __name__ == "__main__":
    sys.exit(main())
