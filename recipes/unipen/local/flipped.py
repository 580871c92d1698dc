"""Which way is up, measured: a manifest's inks read through a bundle as UNIPEN's files give them (y up, as the
reader states), turned over into screen coordinates (y down) with the ink saying so (Ink.y_down), and turned over
saying nothing (the recognizer decides, speechrnn/orientation.py). Prints CER, word error (jiwer WER) and the share of inputs with any character
wrong for each way; writes OUT/<name>_<way>.{per_utt.jsonl,summary.json}.

Usage: python local/flipped.py exp/lines/model.pt exp/data/test.jsonl --out exp/lines/decode --name test [--greedy]
"""

import argparse
import time

import numpy as np

from speechrnn.data import INK_FIELDS, read_manifest
from speechrnn.ink import Ink, load_ink
from speechrnn.metrics import write_report
from speechrnn.recognizer import Recognizer

CHUNK = 256  # inks decoded together


def turned_over(ink: Ink, say: bool) -> Ink:
    """The ink mirrored top to bottom, as a y-down source writes it; `say`: it states y_down, else nothing."""
    return Ink([np.asarray(s) * np.array([1.0, -1.0, 1.0][: np.shape(s)[1]]) for s in ink.strokes], ink.text,
               y_down=True if say else None)


def stated_up(ink: Ink) -> Ink:
    ink.y_down = False  # what data_prep/unipen.py's reader states of UNIPEN's tablets
    return ink


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("manifest")
    parser.add_argument("--out", required=True, help="folder for the per-input reports")
    parser.add_argument("--name", required=True, help="report name prefix, e.g. test")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding (default: the bundle's tuned decoder)")
    args = parser.parse_args()
    recognizer = Recognizer.load(args.bundle, decoding="greedy" if args.greedy else "tuned")
    entries = read_manifest(args.manifest, INK_FIELDS)
    refs = [recognizer.tokenizer.decode(recognizer.tokenizer.encode(e["text"])) for e in entries]
    ways = {"yup_stated": stated_up, "ydown_stated": lambda ink: turned_over(ink, True),
            "ydown_unstated": lambda ink: turned_over(ink, False)}
    for way, transform in ways.items():
        started, hyps = time.time(), []
        for start in range(0, len(entries), CHUNK):
            inks = [transform(load_ink(entry)) for entry in entries[start:start + CHUNK]]
            hyps += [t.text for t in recognizer.transcribe(inks)]
        rates = write_report(args.out, f"{args.name}_{way}", [e["id"] for e in entries], refs, hyps)
        print(f"{args.name} {way:15}: CER {100 * rates.cer:.2f} %, WER {100 * rates.wer:.2f} %, "
              f"{100 * rates.sentence_errors / rates.utterances:.2f} % of {rates.utterances} inputs with any character "
              f"wrong ({time.time() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
