"""Many-to-many frame tagging (Tx = Ty): speech / non-speech for every encoder frame, a voice-activity detector.

    waveform -> Features (CMVN) -> Encoder (conv, 4x fewer frames: 40 ms at a 10 ms hop; + RNN) -> dropout
             -> linear -> 2 logits (non-speech, speech) per encoder frame

One label per output frame of the encoder, so a tag covers 40 ms (frame i is centred at i * frame_shift seconds).
Training is frame cross-entropy over the valid frames only (padding never counts, and the encoder gives a padded
batch what each utterance alone gets). The model with the best dev frame accuracy (ties: lower dev loss) becomes
the bundle; `TaggerVAD` loads it for the microphone demo and the long-file splitter.

Labels (`labels` command) come from a CTC recognizer with the same frame grid (e.g. AN4's exp/default/model.pt):
the reference transcript is force-aligned to its posteriors (torchaudio.functional.forced_align), and three label
sets are written per manifest, uint8 arrays keyed by utterance id in NAME.{ctc,energy,refined}.npz:

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

    python -m speechrnn.tagger labels CTC_BUNDLE MANIFEST --out DIR --name NAME
    python -m speechrnn.tagger train CONF [key=value ...] [--resume]
    python -m speechrnn.tagger eval BUNDLE MANIFEST LABELS [LABELS ...] [--out DIR]
"""

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .audio import load_audio
from .bundle import atomic_save, load_bundle, save_bundle
from .config import DataConfig, OptimConfig, TrainConfig, from_dict, load_config, to_dict
from .data import AudioDataset, load_utterances
from .errors import AudioError, BundleError, ConfigError, ManifestError, UserError
from .features import FeatureConfig, Features, SpecAugment, SpecAugmentConfig
from .classify import valid_mask
from .model import CTCModel, ModelConfig
from .rnn import RNN_CELLS
from .train import (build_optimizer, init_cmvn, lr_lambda, make_loader, restore_run, rng_state, select_device,
                    start_run)

TASK = "tagger"  # bundle["extra"]["task"] of a frame-tagger bundle
CLASSES = ["non-speech", "speech"]
SHIFT_KEY = "__frame_shift__"  # seconds per frame, stored in every labels .npz next to the utterance ids


# --- labels from a CTC forced alignment -----------------------------------------------------------

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
    from .recognizer import load_model
    from .train import ctc_frames_needed

    config = config or LabelConfig()
    model, tokenizer, speech_config, _ = load_model(bundle, device)
    if speech_config.modality != "audio":
        raise UserError(f"{bundle}: a {speech_config.modality} model; speech labels need an audio recognizer")
    rate = speech_config.features.sample_rate
    frames_in_10s = int(model.output_lengths(torch.tensor([rate * 10]))[0])  # N // hop + 1 frames for N samples
    hop = rate * 10 // (frames_in_10s - 1)  # samples per output frame (the frames are centred at i * hop)
    shift = hop / rate
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


# --- config ---------------------------------------------------------------------------------------

@dataclass
class TaggerDataConfig(DataConfig):
    train_labels: str = "???"  # labels .npz (`tagger labels`) for the train manifest
    dev_labels: str = "???"


@dataclass
class TaggerConfig:
    data: TaggerDataConfig = field(default_factory=TaggerDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaugment: SpecAugmentConfig = field(default_factory=lambda: SpecAugmentConfig(time_masks=0))
    use_specaugment: bool = False  # frequency masks only (a time mask would hide frames whose labels stay)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def load_tagger_config(path: str | Path | None = None, overrides: list[str] = ()) -> TaggerConfig:
    config = load_config(path, overrides, schema=TaggerConfig)
    choices = {"model.rnn.cell": sorted(RNN_CELLS), "features.kind": ["fbank", "mfcc"]}
    for key, allowed in choices.items():
        value = OmegaConf.select(OmegaConf.structured(config), key)
        if value not in allowed:
            raise ConfigError(f"config: {key}={value!r} is not one of: {', '.join(allowed)}")
    if config.data.speed_perturb:
        raise ConfigError("config: data.speed_perturb changes the number of frames, so the frame labels no longer fit; "
                          "leave it empty for the tagger")
    if config.use_specaugment and config.specaugment.time_masks:
        raise ConfigError("config: specaugment.time_masks must be 0 for the tagger (masked frames keep their labels)")
    return config


# --- model ----------------------------------------------------------------------------------------

class FrameTagger(CTCModel):
    """front-end -> Encoder -> dropout -> linear, the CTC model's layers with a 2-class head. forward() gives logits
    (B, T', 2) and their lengths (B,): one speech / non-speech decision per encoder frame."""

    def __init__(self, config: ModelConfig, frontend: nn.Module, specaugment: nn.Module | None = None):
        super().__init__(len(CLASSES), config, frontend, specaugment)

    forward = CTCModel.logits


def build_tagger(config: TaggerConfig, training: bool = False) -> FrameTagger:
    specaugment = SpecAugment(config.specaugment) if training and config.use_specaugment else None
    return FrameTagger(config.model, Features(config.features), specaugment)


def frame_shift(config: TaggerConfig) -> float:
    """Seconds per output frame: the feature hop, times 4 with the conv front-end."""
    return config.features.hop_length * (4 if config.model.conv_channels > 0 else 1) / config.features.sample_rate


def frame_loss(logits: torch.Tensor, labels: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the valid frames, and their number. (B, T, 2), (B, T), (B,)"""
    mask = valid_mask(lens, logits.shape[1])  # (B, T)
    return nn.functional.cross_entropy(logits[mask], labels[mask], reduction="sum"), int(mask.sum())


# --- data -----------------------------------------------------------------------------------------

class FrameLabels:
    """Utterance id -> its frame labels, in the `tokenizer` role AudioDataset wants (each utterance's `text` is its
    id here), so AudioDataset and collate carry the labels as `tokens` (B, T) with `token_lens` (B,)."""

    def __init__(self, labels: dict[str, np.ndarray]):
        self.labels = labels

    def encode(self, utterance_id: str) -> list[int]:
        return self.labels[utterance_id].tolist()


def load_tagged(config: TaggerConfig, manifest: str | Path, labels_path: str | Path) -> AudioDataset:
    """The manifest's utterances with their frame labels. Utterances without labels (left out by `tagger labels`)
    are skipped with a warning; an empty label sequence, or labels on another frame grid, is an error."""
    labels, shift = read_labels(labels_path)
    if shift is not None and abs(shift - frame_shift(config)) > 1e-6:
        raise ConfigError(f"{labels_path}: labels of {1000 * shift:g} ms frames, but this tagger makes "
                          f"{1000 * frame_shift(config):g} ms frames (features.hop_length, model.conv_channels)")
    utterances, missing = [], []
    for utt in load_utterances(manifest):
        if utt.id not in labels:
            missing.append(utt.id)
            continue
        if len(labels[utt.id]) == 0:
            raise ManifestError(f"{labels_path}: utterance {utt.id} has an empty label sequence (zero frames); "
                                f"remake the labels or drop it from {manifest}")
        if not set(np.unique(labels[utt.id]).tolist()) <= {0, 1}:
            raise ManifestError(f"{labels_path}: utterance {utt.id}: labels must be 0 (non-speech) or 1 (speech)")
        utterances.append(replace(utt, text=utt.id))  # text = id, see FrameLabels
    if missing:
        print(f"warning: {manifest}: {len(missing)} utterance(s) have no labels in {labels_path} and are skipped "
              f"(e.g. {', '.join(missing[:3])})", file=sys.stderr)
    return AudioDataset(utterances, FrameLabels(labels), config.features.sample_rate, (), config.train.seed,
                        config.features.hop_length)


def check_lengths(batch: dict, lens: torch.Tensor) -> None:
    """The tagger's frames per utterance must be the labels' (same audio, same frame grid)."""
    for uid, made, labelled in zip(batch["ids"], lens.tolist(), batch["token_lens"].tolist()):
        if made != labelled:
            raise UserError(f"utterance {uid}: {labelled} frame labels, but the tagger makes {made} frames of its "
                            f"audio; remake the labels from this audio with a model of the same frame rate")


# --- training and evaluation ----------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: FrameTagger, loader: DataLoader, device: torch.device) -> dict:
    """Mean frame cross-entropy, frame accuracy and speech F1 over `loader` (argmax, i.e. threshold 0.5)."""
    model.eval()
    loss_sum, frames, refs, hyps = 0.0, 0, [], []
    for batch in loader:
        if not batch["ids"]:
            continue
        logits, lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        check_lengths(batch, lens)
        labels = batch["tokens"].to(device)
        loss, count = frame_loss(logits, labels, lens)
        loss_sum, frames = loss_sum + float(loss), frames + count
        mask = valid_mask(lens, logits.shape[1])
        refs.append(labels[mask].cpu().numpy())
        hyps.append(logits.argmax(-1)[mask].cpu().numpy())
    return {"loss": loss_sum / max(frames, 1), **frame_scores(refs, hyps)}


@dataclass
class TaggerResult:
    best_epoch: int
    best_dev_accuracy: float
    epochs: int
    seconds: float
    bundle: Path


def train(config: TaggerConfig, resume: bool = False) -> TaggerResult:
    """Train a FrameTagger; writes last.pt/best.pt, train_log.jsonl and the bundle model.pt in exp_dir."""
    device = select_device(config.train.device)
    exp_dir, checkpoint = start_run(config, resume)
    model = build_tagger(config, training=True).to(device)
    train_set = load_tagged(config, config.data.train_manifest, config.data.train_labels)
    dev_set = load_tagged(config, config.data.dev_manifest, config.data.dev_labels)
    for name, dataset in (("train", train_set), ("dev", dev_set)):
        if not len(dataset):
            raise UserError(f"{getattr(config.data, name + '_manifest')}: no utterances with labels")
    train_loader = make_loader(train_set, config, True, config.train.seed)
    dev_loader = make_loader(dev_set, config, False, 0)
    rnn = config.model.rnn
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e3:.0f} k parameters, {rnn.num_layers} x "
          f"{'bi' if rnn.bidirectional else 'uni'}directional {rnn.cell} {rnn.hidden_size}, "
          f"{1000 * frame_shift(config):g} ms frames; train {len(train_set)}, dev {len(dev_set)} utterances; "
          f"device {device}", file=sys.stderr)

    if not checkpoint:
        init_cmvn(model.frontend, config, train_set, device)
    optimizer = build_optimizer(model, config)
    steps_per_epoch = len(train_loader.batch_sampler)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        config.optim.warmup_steps, steps_per_epoch * config.train.max_epochs, config.optim.final_lr_ratio))

    start_epoch, best_key, best_epoch, stale, train_seconds = restore_run(
        checkpoint, exp_dir, model, optimizer, scheduler, train_loader.batch_sampler)
    log_path = exp_dir / "train_log.jsonl"

    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.train.max_epochs + 1):
        if config.train.patience and stale >= config.train.patience:
            break
        started = time.time()
        model.train()
        train_loader.batch_sampler.set_epoch(epoch)
        loss_sum, frames = 0.0, 0
        for batch in tqdm(train_loader, desc=f"epoch {epoch}/{config.train.max_epochs}", unit="batch", file=sys.stderr,
                          dynamic_ncols=True, leave=False, disable=not sys.stderr.isatty()):
            if not batch["ids"]:
                continue
            logits, lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))  # (B, T', 2)
            check_lengths(batch, lens)
            loss, count = frame_loss(logits, batch["tokens"].to(device), lens)
            optimizer.zero_grad(set_to_none=True)
            (loss / count).backward()  # mean over the batch's valid frames
            nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum, frames = loss_sum + float(loss.detach()), frames + count
        epoch_seconds = time.time() - started
        train_seconds += epoch_seconds
        dev = evaluate(model, dev_loader, device)
        key = (dev["accuracy"], -dev["loss"])  # best dev frame accuracy; among equals, the lowest dev loss
        improved = key > best_key
        if improved:
            best_key, best_epoch, stale = key, epoch, 0
        else:
            stale += 1
        record = {"epoch": epoch, "train_loss": loss_sum / max(frames, 1), "dev_loss": dev["loss"],
                  "dev_accuracy": dev["accuracy"], "dev_f1": dev["f1"], "lr": scheduler.get_last_lr()[0],
                  "epoch_seconds": round(epoch_seconds, 2), "best_epoch": best_epoch}
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        print(f"epoch {epoch}: train loss {record['train_loss']:.4f}, dev loss {dev['loss']:.4f} frame acc "
              f"{100 * dev['accuracy']:.2f} % speech F1 {100 * dev['f1']:.2f} %, {epoch_seconds:.0f} s"
              f"{' (best)' if improved else ''}", file=sys.stderr)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "sampler": train_loader.batch_sampler.state_dict(), "rng": rng_state(), "epoch": epoch,
                 "best_key": list(best_key), "best_epoch": best_epoch, "stale": stale, "train_seconds": train_seconds,
                 "config": to_dict(config)}
        if improved:  # best before last: a run killed between the two writes still finds best.pt when resumed
            atomic_save(state, exp_dir / "best.pt")
        atomic_save(state, exp_dir / "last.pt")

    best = torch.load(exp_dir / "best.pt", map_location="cpu", weights_only=True)
    bundle_path = exp_dir / "model.pt"
    save_bundle(bundle_path, best["model"], best["config"], {"classes": CLASSES},
                extra={"task": TASK, "epoch": best["epoch"], "dev_accuracy": best["best_key"][0],
                       "dev_loss": -best["best_key"][1], "train_seconds": best["train_seconds"]})
    print(f"best dev frame accuracy {100 * best_key[0]:.2f} % at epoch {best_epoch}; bundle written to {bundle_path}",
          file=sys.stderr)
    return TaggerResult(best_epoch, best_key[0], epoch, train_seconds, bundle_path)


def load_tagger(path: str | Path, device: torch.device | str = "cpu") -> tuple[FrameTagger, TaggerConfig, dict]:
    """Bundle -> (tagger in eval mode on `device`, config, bundle extras)."""
    bundle = load_bundle(path)
    extra = bundle.get("extra", {})
    if extra.get("task") != TASK:
        raise BundleError(f"{path}: not a frame-tagger bundle (task {extra.get('task', 'ctc')!r})")
    config = from_dict(bundle["config"], schema=TaggerConfig)
    model = build_tagger(config)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), config, extra


# --- voice-activity detection ---------------------------------------------------------------------

class TaggerVAD:
    """A trained tagger as a voice-activity detector: `frame_shift` (seconds per output frame; frame i is centred
    at i * frame_shift) and `speech_probability(samples, rate)` -> (n_frames,) float32 in [0, 1].

    Audio longer than `chunk_seconds` runs in chunks with `context_seconds` of audio on either side whose frames are
    dropped, so memory stays bounded; each chunk starts on the frame grid, so the frames line up exactly."""

    def __init__(self, model: FrameTagger, config: TaggerConfig, device: torch.device | str = "cpu",
                 chunk_seconds: float = 30.0, context_seconds: float = 1.0):
        self.model, self.config, self.device = model, config, torch.device(device)
        self.sample_rate = config.features.sample_rate
        self.frame_shift = frame_shift(config)
        self.hop = round(self.frame_shift * self.sample_rate)  # samples per output frame
        self.chunk = max(1, round(chunk_seconds / self.frame_shift))  # frames
        self.context = round(context_seconds / self.frame_shift)  # frames

    @classmethod
    def load(cls, bundle: str | Path, device: str = "cpu", **options) -> "TaggerVAD":
        model, config, _ = load_tagger(bundle, device)
        return cls(model, config, device, **options)

    @torch.inference_mode()
    def speech_probability(self, samples: np.ndarray, rate: int) -> np.ndarray:
        wav = torch.as_tensor(np.asarray(samples, dtype=np.float32))
        if wav.dim() != 1:
            raise ValueError(f"speech_probability takes mono samples (N,), not an array of shape {tuple(wav.shape)}")
        if len(wav) == 0:
            return np.zeros(0, dtype=np.float32)
        if rate != self.sample_rate:
            wav = AF.resample(wav, rate, self.sample_rate)
        total = int(self.model.output_lengths(torch.tensor([len(wav)]))[0])
        probs = []
        for first in range(0, total, self.chunk):
            last = min(first + self.chunk, total)  # frames [first, last) of this chunk
            begin = max(0, first - self.context)  # audio from frame `begin` on: sample begin * hop
            piece = wav[begin * self.hop: (last + self.context) * self.hop].to(self.device)
            logits, _ = self.model(piece[None], torch.tensor([len(piece)], device=self.device))
            probs.append(logits[0, first - begin: last - begin].softmax(-1)[:, 1].cpu())
        return torch.cat(probs).numpy().astype(np.float32)


def evaluate_manifest(vad_spec: str | Path, manifest: str | Path, labels_paths: list[str | Path], out: str | Path,
                      threshold: float = 0.5, device: str = "cpu") -> list[dict]:
    """Run a VAD over every utterance of `manifest` (one at a time, as the demo does) and score its frames
    (probability >= threshold = speech) against each labels file: out/NAME.summary.json and out/NAME.per_utt.jsonl
    per labels file (NAME = its file name without .npz). Returns the summaries. `vad_spec`: a tagger bundle, or
    "energy" for vad.EnergyVAD, whose frames on another grid are read at the labels' frame centres."""
    from .vad import load_vad

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


# --- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speechrnn tagger", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Frame tagging (one speech / non-speech label per 40 ms encoder frame): make labels from a CTC "
                    "forced alignment, train a tagger from a YAML config, score it (it is also a voice-activity "
                    "detector: speechrnn.tagger.TaggerVAD).",
        epilog="example: recipes/an4/vad.sh (labels from AN4's CTC model, training, scoring on test).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "labels", help="speech / non-speech frame labels from a CTC recognizer's forced alignment",
        description="Force-align each transcript of MANIFEST with CTC_BUNDLE and write OUT/NAME.ctc.npz (silence = "
                    "blank runs), OUT/NAME.energy.npz (energy detector), OUT/NAME.refined.npz (energy segments the "
                    "alignment supports) and OUT/NAME.stats.json (alignment edges against the energy's).")
    p.add_argument("bundle", help="CTC recognizer bundle (e.g. recipes/an4/exp/default/model.pt)")
    p.add_argument("manifest", help="JSONL manifest with audio_filepath, duration, text")
    p.add_argument("--out", required=True, help="folder for the label files")
    p.add_argument("--name", help="file name stem (default: the manifest's file name without .jsonl)")
    defaults = LabelConfig()
    for key, meaning in (("min_silence", "seconds: shorter inner blank runs and energy gaps are speech"),
                         ("min_speech", "seconds: shorter energy bursts are silence"),
                         ("margin_db", "energy threshold = floor + max(MARGIN_DB, RATIO * (peak - floor))"),
                         ("ratio", "see --margin-db"),
                         ("support_window", "seconds: refined keeps energy segments with ctc speech this close")):
        p.add_argument("--" + key.replace("_", "-"), type=float, default=getattr(defaults, key),
                       help=f"{meaning} ({getattr(defaults, key):g})")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p = commands.add_parser(
        "train", help="train a tagger from a YAML config", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a frame tagger. Writes last.pt/best.pt, train_log.jsonl and the bundle model.pt under "
                    "train.exp_dir; best = highest dev frame accuracy (ties: lower dev loss).",
        epilog="keys: data.{train,dev}_manifest, data.{train,dev}_labels (.npz of `tagger labels`), features.*, "
               "model.rnn.cell (" + ", ".join(sorted(RNN_CELLS)) + "), model.rnn.{hidden_size,num_layers,"
               "bidirectional,dropout}, model.conv_channels, optim.*, train.{exp_dir,max_epochs,patience,seed,threads}")
    p.add_argument("config", help="YAML config (e.g. recipes/an4/conf/vad.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.rnn.cell=lstm")
    p.add_argument("--resume", action="store_true", help="continue from exp_dir/last.pt if it exists")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: train.device)")
    p = commands.add_parser(
        "eval", help="score a tagger on a manifest against frame labels",
        description="Tag every utterance of MANIFEST (one at a time, as a VAD would) and score the frames against "
                    "each LABELS file: frame accuracy, speech precision / recall / F1, real-time factor; writes "
                    "NAME.summary.json and NAME.per_utt.jsonl per labels file to --out.")
    p.add_argument("bundle", help="tagger bundle (exp/.../model.pt), or 'energy' to score speechrnn.vad.EnergyVAD")
    p.add_argument("manifest", help="JSONL manifest with audio_filepath, duration")
    p.add_argument("labels", nargs="+", help="labels .npz file(s) of the manifest's utterances")
    p.add_argument("--out", default=".", help="folder for the reports (default: current folder)")
    p.add_argument("--threshold", type=float, default=0.5, help="speech when the probability is at least this (0.5)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "threads", 0):
            torch.set_num_threads(args.threads)
        if args.command == "labels":
            config = LabelConfig(args.min_silence, args.min_speech, args.margin_db, args.ratio, args.support_window)
            name = args.name or Path(args.manifest).stem
            stats = make_labels(args.bundle, args.manifest, args.out, name, config, args.device)
            c = stats["ctc_vs_energy"]
            print(f"{name}: {stats['utterances']} utterances labelled ({len(stats['skipped'])} skipped); first token "
                  f"in frame 0-1 in {100 * stats['first_token_in_first_2_frames']:.0f} %, median first token - energy "
                  f"onset {stats['start_minus_energy_onset_s']['median']:+.2f} s; ctc labels vs energy: frame acc "
                  f"{100 * c['accuracy']:.1f} %, speech F1 {100 * c['f1']:.1f} %; refined vetoed "
                  f"{stats['energy_segments_vetoed']}/{stats['energy_segments']} energy segments")
        elif args.command == "train":
            config = load_tagger_config(args.config, args.overrides)
            if args.device:
                config.train.device = args.device
            train(config, resume=args.resume)
        else:
            summaries = evaluate_manifest(args.bundle, args.manifest, args.labels, args.out, args.threshold,
                                          args.device)
            for s in summaries:
                print(f"{s['name']}: frame accuracy {100 * s['accuracy']:.2f} %, speech precision "
                      f"{100 * s['precision']:.2f} % recall {100 * s['recall']:.2f} % F1 {100 * s['f1']:.2f} % "
                      f"({s['utterances']} utterances, {s['frames']} frames); RTF {s['rtf']:.4f} "
                      f"({s['threads']} thread(s))")
            if any(s["unscored"] for s in summaries):
                print("warning: some utterances were not scored (unreadable, or without labels)", file=sys.stderr)
                return 1
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
