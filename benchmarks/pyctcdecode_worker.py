"""pyctcdecode's side of `bench_decode.py --pyctcdecode`: runs in a throwaway venv (pyctcdecode pins numpy<2, so
it is no dependency of speechrnn; `bench_pyctcdecode.sh` makes the venv) and imports only numpy, kenlm and
pyctcdecode, never speechrnn.

    python pyctcdecode_worker.py POSTERIORS.npz

POSTERIORS.npz (written by bench_decode.py): labels (the model's symbols, blank as ""), and per set (dev, test)
`<set>_log_probs` (B, T, V) float32 padded and `<set>_lens` (B,). Then one JSON request per stdin line, one JSON
answer per stdout line:

    {"set": "test", "lm": "word3.arpa" | null, "unigrams": ["WORD", ...] | null, "unk_score_offset": -10.0,
     "alpha": 0.2, "beta": 1.0, "beam_width": 50, "repeats": 1}
    -> {"texts": [...], "seconds": [...], "versions": {...}}

Each request decodes the whole set with `decoder.decode(log_probs[i, :len_i], beam_width=...)`, one utterance
after the other (pyctcdecode's defaults for beam_prune_logp, token_min_logp and lm_score_boundary), `repeats`
times; "seconds" holds each pass's wall time (decoding only: the decoder and the LM are built before timing,
once per distinct (lm, unigrams, unk_score_offset), and alpha/beta are set with reset_params).
"""

import json
import logging
import os
import sys
import time

import numpy as np


def main() -> None:
    import kenlm  # noqa: F401  (fail early, with its own message, when the venv lacks it)
    from pyctcdecode import build_ctcdecoder

    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)  # "Using arpa instead of binary LM file..."
    data = np.load(sys.argv[1])
    labels = [str(s) for s in data["labels"]]
    sets = {name: [data[f"{name}_log_probs"][i, :n] for i, n in enumerate(data[f"{name}_lens"].tolist())]
            for name in ("dev", "test")}
    versions = {name: _version(name) for name in ("pyctcdecode", "kenlm", "numpy")}
    decoders = {}
    for line in sys.stdin:
        request = json.loads(line)
        key = (request.get("lm"), tuple(request["unigrams"]) if request.get("unigrams") is not None else None,
               request.get("unk_score_offset", -10.0))
        if key not in decoders:
            with quiet_stderr():  # KenLM's progress bar while it reads the ARPA file
                decoders[key] = build_ctcdecoder(labels, kenlm_model_path=key[0], unigrams=key[1],
                                                 unk_score_offset=float(key[2]))
        decoder = decoders[key]
        if key[0] is not None:
            decoder.reset_params(alpha=float(request["alpha"]), beta=float(request["beta"]))
        seconds, texts = [], []
        for _ in range(int(request.get("repeats", 1))):
            start = time.perf_counter()
            texts = [decoder.decode(lp, beam_width=int(request["beam_width"])) for lp in sets[request["set"]]]
            seconds.append(time.perf_counter() - start)
        print(json.dumps({"texts": texts, "seconds": seconds, "versions": versions}), flush=True)


class quiet_stderr:
    """File descriptor 2 to /dev/null for the duration (KenLM writes there from C++)."""

    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    main()
