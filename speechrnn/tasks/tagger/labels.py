"""Speech / non-speech frame labels for the tagger, from a CTC recognizer with the same frame grid (e.g. AN4's
exp/default/model.pt): the reference transcript is force-aligned to its posteriors
(torchaudio.functional.forced_align), and three label sets are written per manifest, uint8 arrays keyed by
utterance id in NAME.{ctc,energy,refined}.npz:

  ctc      silence = blank runs: the leading and trailing ones, and the inner ones of at least min_silence seconds;
           the rest (letters, spaces, short blank runs between spikes) is speech.
  energy   a per-utterance energy detector on the same frames: log energy above floor + max(margin_db,
           ratio * (peak - floor)) (floor/peak = 5th/98th percentile), gaps under min_silence filled, bursts under
           min_speech dropped.
  refined  the energy segments the alignment supports (a ctc-speech frame, not counting frames 0-1, within
           support_window seconds); the others (breaths, clicks away from every aligned token) are silence. The
           edges are the energy detector's: the alignment decides which segments are speech, not where they end.

Why `refined`: the CTC alignment of a BiLSTM is peaky and early. The first letter is mostly put at frame 0-1, well
inside the leading silence, and each letter is one spike followed by blanks over the rest of its sound, so blank
runs cover letter tails as well as pauses. NAME.stats.json measures this for every label run (recipes/an4/RESULTS.md
has the AN4 numbers); `ctc` alone is kept so that a tagger can be trained and scored on it too.

    speechrnn tagger labels CTC_BUNDLE MANIFEST --out DIR --name NAME
"""

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from tqdm import tqdm

from ...align import ctc_frames_needed
from ...audio import load_audio
from ...bundle import load_model
from ...data import load_utterances
from ...errors import AudioError, UserError

SHIFT_KEY = "__frame_shift__"  # seconds per frame, stored in every labels .npz next to the utterance ids


@dataclass
class LabelConfig:
    min_silence: float = 0.24  # s: an inner blank run (ctc) or energy gap at least this long is silence
    min_speech: float = 0.08  # s: energy bursts shorter than this are dropped
    margin_db: float = 6.0  # energy threshold = floor + max(margin_db, ratio * (peak - floor))
    ratio: float = 0.25
    support_window: float = 0.2  # s: an energy segment is speech (refined) when ctc speech lies this close


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, end)] of the runs of True in a 1-D mask, end exclusive."""
    edges = np.diff(np.concatenate([[0], np.asarray(mask, dtype=np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def ctc_labels(path: np.ndarray, min_silence: int, blank: int = 0) -> np.ndarray:
    """Aligned token id per frame (T,) -> speech 1 / silence 0 (T,) uint8. Silence: the leading and trailing blank
    runs, and inner blank runs of at least `min_silence` frames; shorter blank runs between tokens are speech."""
    labels = np.ones(len(path), dtype=np.uint8)
    for start, end in runs(np.asarray(path) == blank):
        if start == 0 or end == len(path) or end - start >= min_silence:
            labels[start:end] = 0
    return labels


def frame_energy(samples: np.ndarray, num_frames: int, hop: int) -> np.ndarray:
    """Log energy (dB) of frames of `hop` samples centred at i * hop (zero-padded at both ends). -> (num_frames,)"""
    padded = np.pad(samples.astype(np.float64), (hop // 2, num_frames * hop))
    frames = padded[: num_frames * hop].reshape(num_frames, hop)  # (T, hop)
    return 10 * np.log10((frames**2).mean(1) + 1e-10)


def energy_labels(samples: np.ndarray, num_frames: int, hop: int, config: LabelConfig, shift: float) -> np.ndarray:
    """Per-utterance energy speech detector on the frame grid -> (num_frames,) uint8 (see the module docstring)."""
    energy = frame_energy(samples, num_frames, hop)
    floor, peak = np.percentile(energy, 5), np.percentile(energy, 98)
    speech = energy > floor + max(config.margin_db, config.ratio * (peak - floor))
    for start, end in runs(~speech):  # inner gaps shorter than min_silence -> speech
        if start > 0 and end < num_frames and end - start < round(config.min_silence / shift):
            speech[start:end] = True
    for start, end in runs(speech):  # bursts shorter than min_speech -> silence
        if end - start < round(config.min_speech / shift):
            speech[start:end] = False
    return speech.astype(np.uint8)


def refined_labels(energy: np.ndarray, ctc: np.ndarray, window: int, skip: int = 2) -> np.ndarray:
    """The energy segments with a ctc-speech frame inside or within `window` frames of them. (T,), (T,) -> (T,)
    Ctc speech in the first `skip` frames supports nothing: that is where this BiLSTM puts most first letters,
    inside the leading silence (the early-spike artifact), and it would keep a click at the start."""
    support = ctc.astype(np.float64)
    support[:skip] = 0
    near = np.convolve(support, np.ones(2 * window + 1), mode="same") > 0.5  # (T,) dilated support
    out = np.zeros_like(energy)
    for start, end in runs(energy.astype(bool)):
        if near[start:end].any():
            out[start:end] = 1
    return out


def frame_scores(refs: list[np.ndarray], hyps: list[np.ndarray]) -> dict:
    """Frame accuracy and precision / recall / F1 of the speech class over all frames of all utterances."""
    ref = np.concatenate(refs).astype(bool) if refs else np.zeros(0, bool)
    hyp = np.concatenate(hyps).astype(bool) if hyps else np.zeros(0, bool)
    tp, fp, fn = int((ref & hyp).sum()), int((~ref & hyp).sum()), int((ref & ~hyp).sum())
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return {"frames": int(len(ref)), "accuracy": float((ref == hyp).mean()) if len(ref) else 0.0,
            "precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "speech_share_ref": float(ref.mean()) if len(ref) else 0.0,
            "speech_share_hyp": float(hyp.mean()) if len(hyp) else 0.0}


def write_labels(path: str | Path, labels: dict[str, np.ndarray], shift: float) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, **{SHIFT_KEY: np.array(shift)}, **labels)
    tmp.replace(path)


def read_labels(path: str | Path) -> tuple[dict[str, np.ndarray], float | None]:
    """labels .npz -> ({utterance id: (T,) uint8}, seconds per frame or None when the file does not say)."""
    if not Path(path).is_file():
        raise UserError(f"{path}: no such labels file (make it with `speechrnn tagger labels`)")
    try:
        with np.load(path) as data:
            labels = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a labels .npz ({err})") from None
    shift = labels.pop(SHIFT_KEY, None)
    return labels, None if shift is None else float(shift)


def make_labels(bundle: str | Path, manifest: str | Path, out: str | Path, name: str,
                config: LabelConfig | None = None, device: str = "cpu") -> dict:
    """Force-align every utterance of `manifest` with the CTC recognizer `bundle` and write out/NAME.{ctc,energy,
    refined}.npz and out/NAME.stats.json (how far the alignment's edges are from the energy's). Utterances that
    cannot be read or aligned are reported and left out. Returns the stats."""
    config = config or LabelConfig()
    model, tokenizer, speech_config, _ = load_model(bundle, device)
    if speech_config.modality != "audio":
        raise UserError(f"{bundle}: a {speech_config.modality} model; speech labels need an audio recognizer")
    rate = speech_config.features.sample_rate
    shift = model.frame_shift  # seconds per output frame (the frames are centred at i * shift)
    hop = round(shift * rate)  # samples per output frame
    min_silence, window = round(config.min_silence / shift), round(config.support_window / shift)
    sets = {"ctc": {}, "energy": {}, "refined": {}}
    skipped, edges, inner = [], [], [0, 0]
    for utt in tqdm(load_utterances(manifest), desc=f"aligning {name}", unit="utt", disable=None, leave=False):
        tokens = tokenizer.encode(utt.text)
        try:
            wav = load_audio(utt.path, rate)
        except AudioError as err:
            print(f"error: {err} (utterance {utt.id} skipped)", file=sys.stderr)
            skipped.append({"id": utt.id, "why": str(err)})
            continue
        with torch.inference_mode():
            log_probs, lens = model(wav[None].to(device), torch.tensor([len(wav)], device=device))
        log_probs = log_probs[0, : lens[0]].float().cpu()  # (T, V)
        if not tokens or len(log_probs) < ctc_frames_needed(tokens):
            why = ("empty transcript" if not tokens else
                   f"{len(log_probs)} frames are too few for the {len(tokens)} tokens of its transcript")
            print(f"warning: {manifest}: utterance {utt.id} not aligned ({why}), left out", file=sys.stderr)
            skipped.append({"id": utt.id, "why": why})
            continue
        path, _ = AF.forced_align(log_probs[None], torch.tensor([tokens], dtype=torch.int32), blank=0)
        path = path[0].numpy()  # (T,) token id per frame
        ctc = ctc_labels(path, min_silence)
        energy = energy_labels(wav.numpy(), len(path), hop, config, shift)
        sets["ctc"][utt.id], sets["energy"][utt.id] = ctc, energy
        sets["refined"][utt.id] = refined_labels(energy, ctc, window)
        tokens_at = np.flatnonzero(path != 0)
        if energy.any():
            speech = np.flatnonzero(energy)
            edges.append((tokens_at[0], speech[0], tokens_at[-1], speech[-1]))
        for start, end in runs(ctc == 0):  # inner silence runs of the ctc rule: how many lie inside energy speech
            if 0 < start and end < len(ctc):
                inner[0] += 1
                inner[1] += energy[start:end].mean() > 0.5
    for kind, labels in sets.items():
        write_labels(Path(out) / f"{name}.{kind}.npz", labels, shift)
    ids = list(sets["ctc"])
    energy_segments = sum(len(runs(sets["energy"][i].astype(bool))) for i in ids)
    refined_segments = sum(len(runs(sets["refined"][i].astype(bool))) for i in ids)
    edges = np.array(edges, dtype=float).reshape(-1, 4) * shift  # seconds: first token, energy onset, last, offset
    start_gap, end_gap = edges[:, 0] - edges[:, 1], edges[:, 2] - edges[:, 3]
    spread = lambda gap: {"median": float(np.median(gap)) if len(gap) else 0.0,  # noqa: E731
                          "share_over_0.2s": float(np.mean(abs(gap) > 0.2 + 1e-6)) if len(gap) else 0.0}
    stats = {
        "name": name, "bundle": str(bundle), "manifest": str(manifest), "frame_shift": shift,
        "label_config": asdict(config), "utterances": len(ids), "skipped": skipped,
        "speech_share": {kind: float(np.concatenate(list(s.values())).mean()) if s else 0.0
                         for kind, s in sets.items()},
        "first_token_in_first_2_frames": float(np.mean(edges[:, 0] < 2 * shift - 1e-9)) if len(edges) else 0.0,
        "start_minus_energy_onset_s": spread(start_gap), "end_minus_energy_offset_s": spread(end_gap),
        "inner_ctc_silences": inner[0], "inner_ctc_silences_inside_energy_speech": int(inner[1]),
        "energy_segments": energy_segments, "energy_segments_vetoed": energy_segments - refined_segments,
        "ctc_vs_energy": frame_scores([sets["energy"][i] for i in ids], [sets["ctc"][i] for i in ids]),
        "refined_vs_energy": frame_scores([sets["energy"][i] for i in ids], [sets["refined"][i] for i in ids]),
    }
    Path(out, f"{name}.stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    return stats

