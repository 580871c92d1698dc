"""Scoring a voice-activity detector (a tagger bundle, or the energy VAD) against frame labels:
`speechrnn tagger eval`."""

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ...audio import load_audio
from ...data import load_utterances
from ...errors import AudioError, UserError
from ...vad import load_vad
from .labels import frame_scores, read_labels


def evaluate_manifest(vad_spec: str | Path, manifest: str | Path, labels_paths: list[str | Path], out: str | Path,
                      threshold: float = 0.5, device: str = "cpu") -> list[dict]:
    """Run a VAD over every utterance of `manifest` (one at a time, as the demo does) and score its frames
    (probability >= threshold = speech) against each labels file: out/NAME.summary.json and out/NAME.per_utt.jsonl
    per labels file (NAME = its file name without .npz). Returns the summaries. `vad_spec`: a tagger bundle, or
    "energy" for vad.EnergyVAD, whose frames on another grid are read at the labels' frame centres."""
    vad = load_vad(str(vad_spec), device)
    rate = getattr(vad, "sample_rate", 16000)
    references = [(Path(p).name.removesuffix(".npz"), *read_labels(p)) for p in labels_paths]
    probs, audio_seconds, compute_seconds, unreadable = {}, 0.0, 0.0, []
    for utt in load_utterances(manifest):
        try:
            wav = load_audio(utt.path, rate).numpy()
        except AudioError as err:
            print(f"error: {err} (utterance {utt.id} skipped)", file=sys.stderr)
            unreadable.append(utt.id)
            continue
        started = time.perf_counter()
        probs[utt.id] = vad.speech_probability(wav, rate)
        compute_seconds += time.perf_counter() - started
        audio_seconds += len(wav) / rate
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for name, labels, shift in references:
        ids = [uid for uid in probs if uid in labels]
        on_grid = {}
        for uid in ids:
            prob = probs[uid]
            if shift is not None and abs(shift - vad.frame_shift) > 1e-9:  # the VAD frame nearest each label frame
                prob = prob[np.minimum(np.round(np.arange(len(labels[uid])) * shift / vad.frame_shift).astype(int),
                                       len(prob) - 1)]
            if len(labels[uid]) != len(prob):
                raise UserError(f"utterance {uid}: {len(labels[uid])} frame labels in {name}, but the VAD makes "
                                f"{len(prob)} frames; labels and tagger must share the frame grid")
            on_grid[uid] = prob
        hyps = {uid: (on_grid[uid] >= threshold).astype(np.uint8) for uid in ids}
        with open(out / f"{name}.per_utt.jsonl", "w") as lines:
            for uid in ids:
                scores = frame_scores([labels[uid]], [hyps[uid]])
                lines.write(json.dumps({"id": uid, "frames": scores["frames"], "accuracy": round(scores["accuracy"], 4),
                                        "f1": round(scores["f1"], 4), "ref": "".join(map(str, labels[uid])),
                                        "hyp": "".join(map(str, hyps[uid]))}) + "\n")
        summary = {"name": name, "vad": str(vad_spec), "manifest": str(manifest), "threshold": threshold,
                   "utterances": len(ids), "unscored": len(probs) + len(unreadable) - len(ids),
                   **frame_scores([labels[u] for u in ids], [hyps[u] for u in ids]),
                   "audio_seconds": round(audio_seconds, 2), "compute_seconds": round(compute_seconds, 3),
                   "rtf": compute_seconds / max(audio_seconds, 1e-9), "threads": torch.get_num_threads()}
        (out / f"{name}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        summaries.append(summary)
    return summaries

