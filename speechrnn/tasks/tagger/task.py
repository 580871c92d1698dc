"""Training a frame tagger through training.loop.fit: frame cross-entropy over the valid frames only (padding never
counts, and the encoder gives a padded batch what each utterance alone gets). The model with the best dev frame
accuracy (ties: lower dev loss) becomes the bundle.

    speechrnn tagger train CONF [key=value ...] [--resume]
"""

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ...config import load_config
from ...data import AudioDataset, load_utterances
from ...datacheck import usable_audio
from ...errors import ConfigError, ManifestError, UserError
from ...features import length_mask
from ...training import AccuracyTask, fit
from ...training.cmvn import init_cmvn
from ...training.loop import FitResult, autocast
from .labels import frame_scores, read_labels
from .model import CLASSES, TASK, FrameTagger, TaggerConfig, build_tagger, frame_loss, frame_shift


def load_tagger_config(path: str | Path | None = None, overrides: list[str] = ()) -> TaggerConfig:
    config = load_config(path, overrides, schema=TaggerConfig)
    if config.data.speed_perturb:
        raise ConfigError("config: data.speed_perturb changes the number of frames, so the frame labels no longer fit; "
                          "leave it empty for the tagger")
    if config.use_specaugment and config.specaugment.time_masks:
        raise ConfigError("config: specaugment.time_masks must be 0 for the tagger (masked frames keep their labels)")
    return config


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
def evaluate(model: FrameTagger, loader, device: torch.device) -> dict:
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
        mask = length_mask(lens, logits.shape[1])
        refs.append(labels[mask].cpu().numpy())
        hyps.append(logits.argmax(-1)[mask].cpu().numpy())
    return {"loss": loss_sum / max(frames, 1), **frame_scores(refs, hyps)}



class TaggerTask(AccuracyTask):
    name = TASK
    accuracy_name = "frame accuracy"

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        config = self.config
        self.model = build_tagger(config, training=True).to(device)
        self.train_set = usable_audio(load_tagged(config, config.data.train_manifest, config.data.train_labels),
                                      config.data, config.data.train_manifest)
        self.dev_set = usable_audio(load_tagged(config, config.data.dev_manifest, config.data.dev_labels),
                                    config.data, config.data.dev_manifest)
        for name, dataset in (("train", self.train_set), ("dev", self.dev_set)):
            if not len(dataset):
                raise UserError(f"{getattr(config.data, name + '_manifest')}: no utterances with labels")

    def describe(self) -> str:
        rnn = self.config.model.rnn
        return (f"model: {sum(p.numel() for p in self.model.parameters()) / 1e3:.0f} k parameters, {rnn.num_layers} x "
                f"{'bi' if rnn.bidirectional else 'uni'}directional {rnn.cell} {rnn.hidden_size}, "
                f"{1000 * self.model.frame_shift:g} ms frames; train {len(self.train_set)}, dev {len(self.dev_set)} "
                "utterances")

    def initialize(self, device: torch.device, main: bool) -> None:
        init_cmvn(self.model.frontend, self.config, self.train_set, device)

    def compute_loss(self, net, batch: dict, device: torch.device, amp_dtype) -> tuple:
        with autocast(device, amp_dtype):
            logits, lens = net(batch["inputs"].to(device), batch["input_lens"].to(device))  # (B, T', 2)
        check_lengths(batch, lens)
        loss, count = frame_loss(logits.float(), batch["tokens"].to(device), lens)
        return loss / count, {"loss": float(loss.detach()), "count": count}  # the mean over the valid frames

    def evaluate(self, loader, device: torch.device) -> dict:
        return evaluate(self.model, loader, device)

    def log_fields(self, sums: dict, dev: dict) -> dict:
        return {"train_loss": sums.get("loss", 0.0) / max(sums.get("count", 0), 1), "dev_loss": dev["loss"],
                "dev_accuracy": dev["accuracy"], "dev_f1": dev["f1"]}

    def epoch_line(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.4f}, dev loss {record['dev_loss']:.4f} frame acc "
                f"{100 * record['dev_accuracy']:.2f} % speech F1 {100 * record['dev_f1']:.2f} %")

    def bundle_vocabulary(self, best: dict) -> dict:
        return {"classes": CLASSES}


def train(config: TaggerConfig, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train a FrameTagger (see training.loop.fit): exp_dir gets last.pt, best.pt, train_log.jsonl and model.pt."""
    return fit(TaggerTask(config), config, resume, overwrite)
