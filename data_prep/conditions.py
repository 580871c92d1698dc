"""Copies of a manifest's audio under one test condition of speechrnn.augment.CONDITIONS (telephone band, mp3, silence
at the edges, trimmed to the speech, noise, gain, clipping), for scoring a model on them with the usual commands
(`speechrnn eval`, `speechrnn classify eval`). Each file is read at its own rate, the condition applied at that rate
and the result written at it (16-bit wav), so an 8 kHz corpus stays 8 kHz. Written:

    OUT/wav/<id>.wav       the conditioned copy of each utterance
    OUT/<name>.jsonl       the manifest's lines with audio_filepath (relative to it) and duration of the copies

The noise conditions draw from a fixed seed: the output depends only on the input. An unreadable file is reported in
one line and left out; the rest are written.

Usage: python data_prep/conditions.py --manifest exp/data/nicolas/test.jsonl --condition silence_0.5s \\
           --out exp/conditions/nicolas/silence_0.5s [--name test_silence_0.5s]
"""

import argparse
import os
import sys
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)

import soundfile as sf

from speechrnn.audio import load_audio, open_audio
from speechrnn.augment import CONDITIONS
from speechrnn.data import read_manifest, write_manifest
from speechrnn.errors import AudioError


def write_conditioned(manifest: Path, condition: str, out: Path, name: str) -> Path:
    if condition not in CONDITIONS:
        raise PrepError(f"--condition {condition}: not one of {', '.join(CONDITIONS)}")
    transform = CONDITIONS[condition][1]
    entries = read_manifest(manifest, allow_empty=False)
    (out / "wav").mkdir(parents=True, exist_ok=True)
    written, skipped = [], 0
    for entry in entries:
        try:
            with open_audio(entry["audio_filepath"]) as source:
                rate = source.samplerate
            wav = load_audio(entry["audio_filepath"], rate)  # (N,) mono at the file's own rate
        except AudioError as err:
            print(f"error: {err} (utterance {entry.get('id', '?')} skipped)", file=sys.stderr)
            skipped += 1
            continue
        conditioned = transform(wav, rate).clamp(-1.0, 1.0).numpy()
        target = out / "wav" / f"{entry['id']}.wav"
        partial = target.with_suffix(".wav.tmp")
        sf.write(partial, conditioned, rate, subtype="PCM_16", format="WAV")
        os.replace(partial, target)
        written.append({**entry, "audio_filepath": str(target), "duration": round(len(conditioned) / rate, 5)})
    path = out / f"{name}.jsonl"
    write_manifest(path, written)
    print(f"{condition}: {len(written)} of {len(entries)} utterance(s) -> {path}"
          + (f" ({skipped} unreadable, left out)" if skipped else ""), file=sys.stderr)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, required=True, help="JSONL manifest (audio_filepath, duration, ...)")
    parser.add_argument("--condition", required=True, help=f"one of: {', '.join(CONDITIONS)}")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", help="manifest name (default: the condition's)")
    args = parser.parse_args(argv)
    return run(write_conditioned, args.manifest, args.condition, args.out, args.name or args.condition)


if __name__ == "__main__":
    sys.exit(main())
