"""Isolated spoken digits cut out of AN4 training utterances by forced alignment, as extra FSDD training data.

AN4's speakers say digits in context ("ENTER SIX TWO FOUR"). Each utterance's reference transcript (never a
recognizer's hypothesis) is force-aligned to a recognizer bundle (default the shipped `an4`) with word times as
`speechrnn transcribe --timestamps` gives them (speechrnn/align.py; starts and ends from the bundle's aligners when
it has them, recognizer.py), and every digit word ZERO ... NINE is cut out with --margin seconds each side (within
the utterance), resampled to --rate and written as

    OUT/wav/<utterance>_<k>_<digit>.wav  16-bit mono at --rate (k: the word's place in the transcript, from 0)
    OUT/an4_digits.jsonl                 FSDD-style manifest lines: id, audio_filepath (relative to it), duration,
                                         text (the digit word, lower case), label ("0".."9"), speaker ("an4-" + AN4's)

OH (AN4's spoken "0" inside numbers) is not FSDD's "zero" and is left out, as are words whose alignment is spread
(too few frames, align.py) or that last under --min-seconds or over --max-seconds (alignment slips). Only AN4's
training split may be cut: a manifest whose file name says dev or test is refused, so that the speakers the AN4
recipe holds out stay unheard by every model trained here. An utterance whose audio cannot be read is reported in
one line and skipped. The output depends only on the manifest, the bundle and the options (one utterance at a time,
in manifest order).
"""

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

from common import PrepError, run  # data_prep/common.py (finds speechrnn, so it comes first)
from fsdd import WORDS  # data_prep/fsdd.py: "zero" ... "nine"

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from speechrnn.audio import load_audio, resample
from speechrnn.data import read_manifest, write_manifest
from speechrnn.errors import AudioError
from speechrnn.output import Span
from speechrnn.recognizer import Recognizer

DIGITS = {word.upper(): str(digit) for digit, word in enumerate(WORDS)}  # "SIX" -> "6"
HELD_OUT_RE = re.compile(r"(^|[^a-z])(dev|test)")  # a manifest name like dev.jsonl, an4_test.jsonl


def check_split(manifest: Path) -> None:
    """PrepError for a manifest whose file name says it holds AN4's dev or test split."""
    match = HELD_OUT_RE.search(manifest.name.lower())
    if match:
        raise PrepError(f"{manifest}: a {match[2]} manifest; only AN4's training split may be cut into digits (the "
                        f"recipe's dev and test speakers stay held out); pass the train manifest")


def word_times(recognizer: Recognizer, wav: torch.Tensor, text: str) -> tuple[list[str], list[Span], bool]:
    """The words of `text` as the tokenizer normalises them, their forced alignment to `wav` (N,) at the model's rate
    (Recognizer.force_align: times in seconds as `transcribe(timestamps=True)` gives them), and whether there were
    too few frames for the text (the alignment is spread)."""
    normalised, words, spread = recognizer.force_align(wav, text)
    return normalised.split(), words, spread


def write_wav(path: Path, audio: np.ndarray, rate: int) -> None:
    """16-bit mono wav, written under a temporary name and renamed: a killed run leaves no half-written clip."""
    tmp = path.with_name(path.name + ".tmp")
    sf.write(tmp, np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def cut_digits(manifest: Path, out: Path, bundle: str = "an4", rate: int = 8000, margin: float = 0.05,
               min_seconds: float = 0.15, max_seconds: float = 1.2) -> list[dict]:
    """Cut the digit words of every utterance in `manifest` into OUT/wav/ and write OUT/an4_digits.jsonl."""
    check_split(manifest)
    entries = read_manifest(manifest, allow_empty=False)
    recognizer = Recognizer.load(bundle, decoding="greedy", gate=False)  # the decoder is unused: only alignments
    model_rate = recognizer.config.features.sample_rate
    (out / "wav").mkdir(parents=True, exist_ok=True)
    clips, skipped, unreadable = [], Counter(), 0
    for entry in tqdm(entries, desc="utterances", unit="utt", disable=None):
        if not any(word in DIGITS for word in entry["text"].upper().split()):
            continue
        try:
            wav = load_audio(entry["audio_filepath"], model_rate)  # (N,)
        except AudioError as err:
            tqdm.write(f"warning: {err}; utterance {entry['id']} skipped", file=sys.stderr)
            unreadable += 1
            continue
        words, spans, spread = word_times(recognizer, wav, entry["text"])
        if len(spans) != len(words):  # cannot happen for a text the tokenizer spells; guards the k of each word
            tqdm.write(f"warning: {entry['id']}: {len(spans)} aligned words for the {len(words)} of "
                       f"{' '.join(words)!r}; utterance skipped", file=sys.stderr)
            unreadable += 1
            continue
        speaker = "an4-" + str(entry.get("speaker") or Path(entry["audio_filepath"]).parent.name)
        for k, (word, span) in enumerate(zip(words, spans)):
            if word not in DIGITS:
                continue
            seconds = span.end - span.start
            reason = ("spread" if spread else "short" if seconds < min_seconds
                      else "long" if seconds > max_seconds else "")
            if reason:
                skipped[reason] += 1
                continue
            first = max(0, round((span.start - margin) * model_rate))
            last = min(len(wav), round((span.end + margin) * model_rate))
            audio = resample(wav[first:last], model_rate, rate, entry["audio_filepath"]).numpy()
            path = out / "wav" / f"{entry['id']}_{k}_{DIGITS[word]}.wav"
            write_wav(path, audio, rate)
            clips.append({"id": path.stem, "audio_filepath": str(path), "duration": round(len(audio) / rate, 5),
                          "text": word.lower(), "label": DIGITS[word], "speaker": speaker})
    write_manifest(out / "an4_digits.jsonl", clips)
    counts = Counter(clip["label"] for clip in clips)
    print("clips per digit: " + ", ".join(f"{digit} {counts[digit]}" for digit in sorted(DIGITS.values())))
    print(f"{len(clips)} clips from {len({clip['speaker'] for clip in clips})} speakers -> {out / 'an4_digits.jsonl'}"
          f"; words skipped: {skipped['spread']} spread, {skipped['short']} under {min_seconds} s, {skipped['long']} "
          f"over {max_seconds} s; {unreadable} utterance(s) unreadable")
    return clips


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  python data_prep/an4_digits.py --manifest recipes/an4/exp/data/train.jsonl "
               "--out recipes/fsdd/exp/an4_digits")
    parser.add_argument("--manifest", type=Path, default=Path("recipes/an4/exp/data/train.jsonl"),
                        help="AN4 training manifest (data_prep/an4.py; default recipes/an4/exp/data/train.jsonl)")
    parser.add_argument("--out", type=Path, required=True, help="folder for wav/ and an4_digits.jsonl")
    parser.add_argument("--bundle", default="an4", help="recognizer bundle that aligns: a file or a shipped name (an4)")
    parser.add_argument("--rate", type=int, default=8000, help="sample rate of the clips (FSDD: 8000)")
    parser.add_argument("--margin", type=float, default=0.05, help="seconds kept on each side of a word (0.05)")
    parser.add_argument("--min-seconds", type=float, default=0.15, help="shorter aligned words are skipped (0.15)")
    parser.add_argument("--max-seconds", type=float, default=1.2, help="longer aligned words are skipped (1.2)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    return run(cut_digits, args.manifest, args.out, args.bundle, args.rate, args.margin, args.min_seconds,
               args.max_seconds)


if __name__ == "__main__":
    sys.exit(main())
