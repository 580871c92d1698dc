"""Synthetic spoken digits from the text-to-speech engines installed on this machine, for FSDD training.

FSDD has only four speakers, so a fold trains on three voices. This script adds many more (synthetic) voices:
every digit word said by each voice of espeak-ng (English accents x voice variants), flite and festival that is
installed, at a few pitches and rates, resampled to --rate, trimmed to the word like FSDD's own clips
(librosa.effects.trim) and written as

    OUT/wav/{digit}_{voice}_{k}.wav      16-bit mono at --rate
    OUT/tts.jsonl                        FSDD-style manifest lines (speaker = the voice, label = the digit)

Engines come from Debian packages (the list ends --help); missing ones are skipped with a warning, none
at all is an error. The output depends only on the installed engines and --seed.
"""

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (data_prep/common.py finds speechrnn, so it comes first)

import librosa
import numpy as np
import soundfile as sf
from tqdm import tqdm

from speechrnn.data import write_manifest

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029"]
ESPEAK_SKIP = {"whisper", "whisperf"}  # unvoiced: no FSDD speaker whispers
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["voice_kal_diphone", "voice_ked_diphone", "voice_cmu_us_slt_arctic_hts"]
PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"  # Debian's


def espeak_variants() -> list[str]:
    listing = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True, check=True).stdout
    names = re.findall(r"!v/(\S+)", listing)  # the File column: !v/adam
    return sorted(set(names) - ESPEAK_SKIP)


def espeak(word: str, wav: Path, voice: str, pitch: int, speed: int) -> list[str]:
    return ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), word]


def flite(word: str, wav: Path, voice: str, pitch: int, speed: int) -> list[str]:
    return ["flite", "-voice", voice, "--setf", f"int_f0_target_mean={pitch}",
            "--setf", f"duration_stretch={175 / speed:.3f}", "-t", word, "-o", str(wav)]


def festival(word: str, wav: Path, voice: str, pitch: int, speed: int) -> list[str]:
    return ["text2wave", "-eval", f"({voice})", "-eval", f"(Parameter.set 'Duration_Stretch {175 / speed:.3f})",
            "-o", str(wav)]


def engine_voices(engine: str, rng: random.Random, per_voice: int) -> list[tuple[str, callable, str, int, int]]:
    """(voice name, command maker, engine voice, pitch, speed) for each synthetic speaker of one engine."""
    if engine == "espeak-ng":
        return [(f"espeak-{accent}-{variant}-{k}", espeak, f"{accent}+{variant}", rng.randint(20, 80),
                 rng.randint(130, 220)) for accent in ESPEAK_ACCENTS for variant in espeak_variants()
                for k in range(per_voice)]
    if engine == "flite":  # few voices: more pitch and rate draws of each
        return [(f"flite-{voice}-{k}", flite, voice, rng.randint(90, 220), rng.randint(130, 220))
                for voice in FLITE_VOICES for k in range(per_voice * 4)]
    return [(f"festival-{voice.split('_')[1]}-{k}", festival, voice, 0, rng.randint(130, 220))
            for voice in FESTIVAL_VOICES for k in range(per_voice * 4)]


ENGINES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}  # engine: the program it runs


def voices(rng: random.Random, per_voice: int, engines: list[str]) -> list[tuple[str, callable, str, int, int]]:
    """Every synthetic speaker of the chosen engines that are installed."""
    found = []
    for engine in engines:
        if shutil.which(ENGINES[engine]):
            found += engine_voices(engine, rng, per_voice)
        else:
            print(f"warning: {engine} not installed ({ENGINES[engine]} not on PATH); skipped", file=sys.stderr)
    return found


def synthesize(out: Path, rate: int = 8000, per_voice: int = 1, seed: int = 0, engines: list[str] = list(ENGINES),
               max_voices: int = 0) -> list[dict]:
    rng = random.Random(seed)
    speakers = voices(rng, per_voice, engines)
    if max_voices:
        speakers = speakers[:max_voices]
    if not speakers:
        raise SystemExit(f"error: none of {', '.join(engines)} is installed; apt-get install {PACKAGES}")
    (out / "wav").mkdir(parents=True, exist_ok=True)
    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for name, engine, voice, pitch, speed in tqdm(speakers, desc="voices", unit="voice", disable=None):
            for digit, word in enumerate(WORDS):
                cmd = engine(word, raw, voice, pitch, speed)
                done = subprocess.run(cmd, input=word if engine is festival else None, capture_output=True, text=True)
                if done.returncode != 0 or not raw.exists():
                    print(f"warning: {name}: {' '.join(cmd)} failed; voice skipped", file=sys.stderr)
                    break
                audio, sr = sf.read(raw, dtype="float32", always_2d=True)
                raw.unlink()
                audio = librosa.resample(audio.mean(axis=1), orig_sr=sr, target_sr=rate)
                audio, _ = librosa.effects.trim(audio, top_db=30, frame_length=200, hop_length=80)
                if audio.size < rate // 20:
                    continue
                audio = 0.5 * audio / max(np.abs(audio).max(), 1e-6)
                wav = out / "wav" / f"{digit}_{name}.wav"
                sf.write(wav, audio, rate, subtype="PCM_16")
                entries.append({"id": wav.stem, "audio_filepath": str(wav.resolve()), "duration":
                                round(len(audio) / rate, 5), "text": word, "label": str(digit), "speaker": name})
    write_manifest(out / "tts.jsonl", entries)
    print(f"{len(entries)} clips from {len({e['speaker'] for e in entries})} synthetic voices -> {out / 'tts.jsonl'}")
    return entries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"engines and voices: apt-get install {PACKAGES}")
    parser.add_argument("--out", type=Path, required=True, help="folder for wav/ and tts.jsonl")
    parser.add_argument("--rate", type=int, default=8000, help="sample rate of the clips (FSDD: 8000)")
    parser.add_argument("--per-voice", type=int, default=1, help="draws of pitch and rate per espeak-ng voice; 4x that for flite and festival (1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pitch and rate draws (0)")
    parser.add_argument("--engines", nargs="+", choices=list(ENGINES), default=list(ENGINES),
                        help="engines to use (default: all three)")
    parser.add_argument("--max-voices", type=int, default=0, help="stop after this many voices (default 0: all)")
    args = parser.parse_args(argv)
    synthesize(args.out, args.rate, args.per_voice, args.seed, args.engines, args.max_voices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
