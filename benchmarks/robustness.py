"""Robustness: each test set under each condition of `speechrnn.augment.CONDITIONS`, for one or more bundles side
by side (today's shipped one and a new one).

Every input is read at its own rate and resampled to the model's (speechrnn.audio.load_audio); the condition is then
applied at the model's rate (16 kHz for AN4 bundles), and the result is transcribed through `Recognizer` with the
gate on, as users get it. Conditions: 16k (as recorded), 8k (down to 8 kHz and back), mp3_32k, silence_1s (1 s of
digital silence at both ends), white_20db / white_10db (white noise at that SNR), gain_-20db, clipped (the peak
driven 12 dB over full scale).

  AN4 (--an4 MANIFEST): WER % (CER %) per bundle with greedy decoding and with the bundle's tuned decoder (its
      stored beam search; greedy when it has none); references normalised as the tokenizer does.
  FSDD (--fsdd FOLDER of {digit}_{speaker}_{index}.wav, 8 kHz; no bundle trains on it): % of recordings whose
      transcript is the digit's word (ZERO ... NINE) with a digits-only lexicon (beam search over the ten words,
      BeamConfig defaults otherwise) and with the bundle's tuned decoder; then the digits-lexicon share per speaker.
      FSDD is 8 kHz already, so its "16k" row is the recordings as they are ("as recorded (8 kHz)").

"gated" counts the inputs the gate (speechrnn/gate.py) emptied (an empty transcript: every word deleted); "no word"
counts the digits-lexicon transcripts with no word at all (gated ones included). --limit N takes the first N
utterances of the manifest and N recordings of FSDD spread over digits and speakers (index 0 of every digit and
speaker first, then index 1, ...).

Run:  python -m benchmarks.robustness --bundles an4 recipes/an4/exp/robust/model.pt \
          --an4 recipes/an4/exp/data/test.jsonl --fsdd ../shared/data/fsdd/recordings --out robust.md
"""

import argparse
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import torch

from speechrnn.audio import load_audio
from speechrnn.augment import CONDITIONS
from speechrnn.data import read_manifest
from speechrnn.decoder_files import write_lexicon
from speechrnn.errors import UserError
from speechrnn.gate import passes
from speechrnn.metrics import error_rates
from speechrnn.pretrained import MODELS, resolve
from speechrnn.recognizer import Recognizer
from speechrnn.text import normalize

DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
FSDD_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$")


@dataclass
class Item:
    """One test input: its name, where it is read from, its reference text and speaker."""
    name: str
    path: str
    text: str
    speaker: str


def an4_items(manifest: str, limit: int | None) -> list[Item]:
    """The first `limit` (all: None) entries of an AN4 manifest."""
    entries = read_manifest(manifest)[:limit]
    return [Item(e["id"], e["audio_filepath"], e["text"], e.get("speaker", "")) for e in entries]


def fsdd_items(folder: str, limit: int | None) -> list[Item]:
    """FSDD recordings ({digit}_{speaker}_{index}.wav) ordered by (index, speaker, digit), so that the first `limit`
    spread over every digit and speaker."""
    found = []
    for path in Path(folder).glob("*.wav") if Path(folder).is_dir() else ():
        match = FSDD_NAME.match(path.name)
        if match:
            digit, speaker, index = match.groups()
            found.append(((int(index), speaker, int(digit)), Item(path.stem, str(path), DIGITS[int(digit)], speaker)))
    if not found:
        raise UserError(f"{folder}: no FSDD recordings ({{digit}}_{{speaker}}_{{index}}.wav) found; "
                        f"give --fsdd the recordings folder of the Free Spoken Digit Dataset")
    return [item for _, item in sorted(found, key=lambda pair: pair[0])][:limit]


def bundle_labels(bundles: list[str]) -> list[str]:
    """Short column names: a shipped model's name, else the file's stem (its folder's name for a `model.pt`)."""
    labels = []
    for bundle in bundles:
        path = Path(bundle)
        label = bundle if bundle in MODELS and not path.is_file() else path.parent.name if path.stem == "model" \
            else path.stem
        labels.append(label if label not in labels else f"{label}#{len(labels) + 1}")
    return labels


def bundle_line(label: str, bundle: str) -> str:
    path = resolve(bundle)
    where = f"{bundle} (shipped)" if bundle in MODELS and not Path(bundle).is_file() else bundle
    return f"`{label}` = {where}, {path.stat().st_size / 1e6:.1f} MB"


def recognizers(bundle: str, lexicon_folder: str, digits: bool) -> dict[str, Recognizer]:
    """The decoders one bundle is scored with: greedy, tuned and (for FSDD) a beam search over the ten digit words,
    each with the gate on."""
    out = {"greedy": Recognizer.load(bundle, decoding="greedy"), "tuned": Recognizer.load(bundle, decoding="tuned")}
    if digits:
        lexicon = Path(lexicon_folder) / f"digits_{len(list(Path(lexicon_folder).iterdir()))}.txt"
        write_lexicon(DIGITS, out["tuned"].tokenizer, lexicon)
        out["digits"] = Recognizer.load(bundle, decoding="beam", lexicon=str(lexicon))
    return out


def read_set(items: list[Item], rate: int) -> list[torch.Tensor]:
    return [load_audio(item.path, rate, manifest=False) for item in items]


def score_an4(decoders: dict[str, Recognizer], items: list[Item], wavs: list[torch.Tensor]) -> dict:
    refs = [normalize(item.text, decoders["tuned"].tokenizer.config) for item in items]
    out = {}
    for mode in ("greedy", "tuned"):
        results = decoders[mode].transcribe(wavs)
        rates = error_rates(refs, [t.text for t in results])
        out[mode] = (100 * rates.wer, 100 * rates.cer)
        out["gated"] = sum(not passes(t.gate) for t in results)
    return out


def score_fsdd(decoders: dict[str, Recognizer], items: list[Item], wavs: list[torch.Tensor]) -> dict:
    out = {}
    for mode in ("digits", "tuned"):
        results = decoders[mode].transcribe(wavs)
        right = [normalize(t.text, decoders[mode].tokenizer.config) == item.text for t, item in zip(results, items)]
        out[mode] = 100 * sum(right) / len(items)
        if mode == "digits":
            out["gated"] = sum(not passes(t.gate) for t in results)
            out["no word"] = sum(not t.text.strip() for t in results)
            by_speaker = defaultdict(list)
            for ok, item in zip(right, items):
                by_speaker[item.speaker].append(ok)
            out["speakers"] = {s: 100 * sum(oks) / len(oks) for s, oks in sorted(by_speaker.items())}
    return out


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def report(args, labels: list[str], results: dict, sets: dict, seconds: float) -> str:
    lines = ["# Robustness: each test set under each condition", "",
             f"torch {torch.__version__}, {args.threads} thread(s), {date.today()}, run time {seconds:.0f} s; "
             + "; ".join(bundle_line(label, bundle) for label, bundle in zip(labels, args.bundles)), "",
             "Conditions (speechrnn.augment.CONDITIONS, applied at the model's rate after reading): "
             + "; ".join(f"{name}: {CONDITIONS[name][0]}" for name in args.conditions) + "."]
    if "an4" in sets:
        lines += ["", f"## AN4 ({args.an4}, {len(sets['an4'])} utterances): WER % (CER %)", ""]
        header = ["condition"] + [f"{label} {col}" for label in labels for col in ("greedy", "tuned", "gated")]
        rows = []
        for condition in args.conditions:
            row = [condition]
            for label in labels:
                r = results["an4"][label][condition]
                row += [f"{r[m][0]:.2f} ({r[m][1]:.2f})" for m in ("greedy", "tuned")] + [str(r["gated"])]
            rows.append(row)
        lines += table(header, rows)
        lines += ["", "gated: utterances the gate emptied (each counts as all its words deleted)."]
    if "fsdd" in sets:
        speakers = sorted({item.speaker for item in sets["fsdd"]})
        lines += ["", f"## FSDD ({len(sets['fsdd'])} recordings, {len(speakers)} speakers, 8 kHz; never trained "
                      f"on): % read as the right digit word", ""]
        header = ["condition"] + [f"{label} {col}" for label in labels
                                  for col in ("digits lexicon", "tuned", "gated", "no word")]
        name = {"16k": "as recorded (8 kHz)"}
        rows = []
        for condition in args.conditions:
            row = [name.get(condition, condition)]
            for label in labels:
                r = results["fsdd"][label][condition]
                row += [f"{r['digits']:.2f}", f"{r['tuned']:.2f}", str(r["gated"]), str(r["no word"])]
            rows.append(row)
        lines += table(header, rows)
        lines += ["", "digits lexicon: beam search over the ten words ZERO ... NINE; tuned: the bundle's own decoder. "
                      "gated: recordings the gate emptied; no word: digits-lexicon transcripts with no word "
                      "(gated ones included).", "", "Per speaker, digits lexicon (%):", ""]
        header = ["condition"] + [f"{label} {speaker}" for label in labels for speaker in speakers]
        rows = [[name.get(c, c)] + [f"{results['fsdd'][label][c]['speakers'].get(s, 0.0):.2f}"
                                    for label in labels for s in speakers] for c in args.conditions]
        lines += table(header, rows)
    return "\n".join(lines) + "\n"


def run(args) -> str:
    unknown = [c for c in args.conditions if c not in CONDITIONS]
    if unknown:
        raise UserError(f"--conditions: unknown {', '.join(unknown)}; choose from {', '.join(CONDITIONS)}")
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: give at least 1 (or leave it out for every input)")
    if not args.an4 and not args.fsdd:
        raise UserError("nothing to score: give --an4 MANIFEST and/or --fsdd FOLDER")
    torch.set_num_threads(args.threads)
    started = time.time()
    sets = {}
    if args.an4:
        sets["an4"] = an4_items(args.an4, args.limit)
    if args.fsdd:
        sets["fsdd"] = fsdd_items(args.fsdd, args.limit)
    labels = bundle_labels(args.bundles)
    results = {name: {label: {} for label in labels} for name in sets}
    with tempfile.TemporaryDirectory(prefix="robustness-") as folder:
        for label, bundle in zip(labels, args.bundles):
            decoders = recognizers(bundle, folder, "fsdd" in sets)
            rate = decoders["tuned"].config.features.sample_rate
            waves = {name: read_set(items, rate) for name, items in sets.items()}
            for condition in args.conditions:
                change = CONDITIONS[condition][1]
                for name, items in sets.items():
                    tic = time.time()
                    wavs = [change(wav, rate).float().contiguous() for wav in waves[name]]
                    score = score_an4 if name == "an4" else score_fsdd
                    results[name][label][condition] = score(decoders, items, wavs)
                    print(f"{label} {condition} {name}: {len(items)} inputs, {time.time() - tic:.1f} s",
                          file=sys.stderr, flush=True)
    return report(args, labels, results, sets, time.time() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", nargs="+", default=["an4"], help="bundle files or shipped names (default: an4)")
    parser.add_argument("--an4", help="an AN4 manifest (e.g. recipes/an4/exp/data/test.jsonl)")
    parser.add_argument("--fsdd", help="the FSDD recordings folder ({digit}_{speaker}_{index}.wav)")
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), help=f"of {', '.join(CONDITIONS)}")
    parser.add_argument("--limit", type=int, help="the first N inputs of each set (a quick run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="also write the markdown here")
    args = parser.parse_args(argv)
    try:
        text = run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
