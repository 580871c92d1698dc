"""Many-to-one sequence classification on the speech encoder: one label per utterance (e.g. a spoken digit).

    waveform -> Features (CMVN) [-> per-utterance mean removal] [-> SpecAugment] -> Encoder (conv + RNN)
             -> pooling over the valid frames only (masked mean, or additive attention) -> dropout -> linear

Pooling never looks at padding, so a padded batch gives what each utterance alone would. Training is cross-entropy
with AdamW and warm-up + cosine decay; the model with the best dev accuracy (ties: lower dev loss) becomes the
bundle. Manifests are the usual JSONL ones with a `label` field (audio_filepath, duration, label).

    python -m speechrnn.classify train CONF [key=value ...] [--resume]
    python -m speechrnn.classify eval BUNDLE MANIFEST [--out DIR] [--name NAME]
    python -m speechrnn.classify adapt BUNDLE MANIFEST -o ADAPTED [--train-manifest M] [--rounds N ...]

`adapt` is unsupervised adaptation to a new speaker by self-training: the model labels that speaker's recordings
(their labels are never read), then a copy of it is fine-tuned on its training set plus its most confident guesses,
a larger share each round.
"""

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .bundle import atomic_save, load_bundle, save_bundle
from .config import DataConfig, OptimConfig, TrainConfig, from_dict, load_config, to_dict
from .data import AudioDataset, Utterance, read_manifest
from .errors import BundleError, ConfigError, ManifestError, UserError
from .features import FeatureConfig, Features, SpecAugment, SpecAugmentConfig
from .model import Encoder, ModelConfig
from .rnn import RNN_CELLS
from .train import (build_optimizer, init_cmvn, lr_lambda, make_loader, restore_run, rng_state, select_device,
                    start_run)

TASK = "classify"  # bundle["extra"]["task"] of a classifier bundle
POOLINGS = ("mean", "attention")


# --- config ---------------------------------------------------------------------------------------

@dataclass
class ClassifyDataConfig(DataConfig):
    test_manifest: Optional[str] = None  # scored after training when set
    classes: list[str] = field(default_factory=list)  # label order; empty = the sorted labels of the train manifest
    label_field: str = "label"
    # white noise added to each training waveform at an SNR drawn uniformly from [low, high] dB; empty = off
    noise_snr: list[float] = field(default_factory=list)


@dataclass
class ClassifierModelConfig(ModelConfig):
    pooling: str = "mean"  # mean (masked average of the encoder frames) | attention (additive, masked softmax)
    attention_dim: int = 128  # attention pooling's hidden size
    utterance_cmn: bool = True  # subtract each utterance's own feature mean (over its valid frames) after CMVN
    # A CTC recognizer bundle (e.g. AN4's model.pt) whose front-end (features + CMVN) and encoder start this classifier
    # (transfer learning); its features.* and model.{conv_channels,rnn} replace this config's (rnn.dropout stays).
    init_from: Optional[str] = None


@dataclass
class ClassifyOptimConfig(OptimConfig):
    label_smoothing: float = 0.0


@dataclass
class AdaptConfig:
    """Unsupervised adaptation to a new speaker (`adapt`); the bundle carries these as its defaults."""
    rounds: int = 4
    epochs: int = 4
    lr: float = 1.0e-3
    repeat: int = 3


ADAPT_HELP = {"rounds": "self-training rounds; round r uses the most confident r/ROUNDS of each predicted class",
              "epochs": "fine-tuning epochs per round",
              "lr": "peak learning rate of each round's fine-tuning (cosine decay to optim.final_lr_ratio of it)",
              "repeat": "times each pseudo-labelled recording is seen per epoch, next to the labelled training set"}


@dataclass
class ClassifyConfig:
    data: ClassifyDataConfig = field(default_factory=ClassifyDataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    use_specaugment: bool = True
    model: ClassifierModelConfig = field(default_factory=ClassifierModelConfig)
    optim: ClassifyOptimConfig = field(default_factory=ClassifyOptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)


def check_choices(config: ClassifyConfig) -> None:
    choices = {"model.rnn.cell": sorted(RNN_CELLS), "features.kind": ["fbank", "mfcc"], "model.pooling": list(POOLINGS)}
    for key, allowed in choices.items():
        value = OmegaConf.select(OmegaConf.structured(config), key)
        if value not in allowed:
            raise ConfigError(f"config: {key}={value!r} is not one of: {', '.join(allowed)}")


def load_classify_config(path: str | Path | None = None, overrides: list[str] = ()) -> ClassifyConfig:
    config = load_config(path, overrides, schema=ClassifyConfig)
    check_choices(config)
    snr = list(config.data.noise_snr)
    if snr and (len(snr) != 2 or snr[0] > snr[1]):
        raise ConfigError(f"config: data.noise_snr={snr} must be [low, high] in dB with low <= high (or [] for off)")
    return config


# --- model ----------------------------------------------------------------------------------------

def valid_mask(lens: torch.Tensor, frames: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) True on the valid frames."""
    return torch.arange(frames, device=lens.device)[None, :] < lens[:, None]


class MeanPooling(nn.Module):
    """Average of each sequence's valid frames. (B, T, D), (B,) -> (B, D) and the weights (B, T) (1/len, 0 on pad)."""

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = valid_mask(lens, x.shape[1])
        weights = mask.float() / lens.clamp(min=1)[:, None].float()  # (B, T)
        x = x.masked_fill(~mask[..., None], 0.0)
        return torch.einsum("bt,btd->bd", weights.to(x.dtype), x), weights


class AttentionPooling(nn.Module):
    """Additive attention: score_t = v . tanh(W h_t + b), softmax over the valid frames only (padding gets weight
    exactly 0), output sum_t w_t h_t. (B, T, D), (B,) -> (B, D) and the weights (B, T)."""

    def __init__(self, dim: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.score = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask = valid_mask(lens, x.shape[1])
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1).float()  # (B, T, D) -> (B, T)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # (B, T), every length >= 1
        x = x.masked_fill(~mask[..., None], 0.0)
        return torch.einsum("bt,btd->bd", weights.to(x.dtype), x), weights


def build_pooling(config: ClassifierModelConfig, dim: int) -> nn.Module:
    if config.pooling == "mean":
        return MeanPooling()
    if config.pooling == "attention":
        return AttentionPooling(dim, config.attention_dim)
    raise ValueError(f"model.pooling={config.pooling!r} is not one of: {', '.join(POOLINGS)}")


def utterance_cmn(feats: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Subtract each utterance's mean over its valid frames; padding stays 0. (B, T, F) -> (B, T, F)."""
    mask = valid_mask(lens, feats.shape[1])[..., None]  # (B, T, 1)
    mean = (feats * mask).sum(1, keepdim=True) / lens.clamp(min=1)[:, None, None]  # (B, 1, F)
    return (feats - mean) * mask


def add_noise(waveforms: torch.Tensor, lens: torch.Tensor, snr_range: list[float]) -> torch.Tensor:
    """White noise on the valid samples at an SNR (dB) drawn per utterance from [low, high]; padding stays 0.
    (B, N) -> (B, N)."""
    mask = valid_mask(lens, waveforms.shape[1])
    power = (waveforms.square() * mask).sum(1) / lens.clamp(min=1)  # (B,) mean power of each waveform
    snr = torch.empty_like(power).uniform_(*snr_range)
    noise_std = (power / 10 ** (snr / 10)).sqrt()[:, None]  # (B, 1)
    return waveforms + torch.randn_like(waveforms) * noise_std * mask


class SequenceClassifier(nn.Module):
    """front-end -> Encoder -> masked pooling -> dropout -> linear. forward() gives logits (B, num_classes)."""

    def __init__(self, num_classes: int, config: ClassifierModelConfig, frontend: nn.Module,
                 specaugment: nn.Module | None = None):
        super().__init__()
        self.config = config
        self.frontend = frontend
        self.specaugment = specaugment
        self.encoder = Encoder(frontend.dim, config)
        self.pooling = build_pooling(config, self.encoder.output_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_dim, num_classes)

    def embed(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N) waveforms -> pooled encoding (B, D), pooling weights (B, T') and encoder lengths (B,)."""
        feats, lens = self.frontend(inputs, input_lens)  # (B, N) -> (B, T, F)
        if self.config.utterance_cmn:
            feats = utterance_cmn(feats, lens)
        if self.specaugment is not None:
            feats = self.specaugment(feats, lens)
        hidden, lens = self.encoder(feats, lens)  # (B, T, F) -> (B, T', H)
        pooled, weights = self.pooling(hidden, lens)  # (B, T', H) -> (B, H)
        return pooled, weights, lens

    def forward(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> torch.Tensor:
        pooled, _, _ = self.embed(inputs, input_lens)
        return self.head(self.dropout(pooled)).float()  # (B, num_classes)


def load_pretrained_encoder(config: ClassifyConfig) -> dict:
    """Read the recognizer bundle model.init_from: copy its feature and encoder settings into `config` and return its
    front-end + encoder weights (frontend.*, encoder.*; the CTC head is dropped)."""
    from .recognizer import load_model

    model, _, speech_config, _ = load_model(config.model.init_from)
    if speech_config.modality != "audio":
        raise ConfigError(f"model.init_from={config.model.init_from}: a {speech_config.modality} model; "
                          "a speech classifier needs an audio recognizer")
    config.features = speech_config.features
    config.model.conv_channels = speech_config.model.conv_channels
    config.model.rnn = replace(speech_config.model.rnn, dropout=config.model.rnn.dropout)
    return {name: value for name, value in model.state_dict().items() if name.startswith(("frontend.", "encoder."))}


def build_classifier(num_classes: int, config: ClassifyConfig, training: bool = False) -> SequenceClassifier:
    specaugment = SpecAugment(config.specaugment) if training and config.use_specaugment else None
    return SequenceClassifier(num_classes, config.model, Features(config.features), specaugment)


# --- data -----------------------------------------------------------------------------------------

class LabelEncoder:
    """Label string -> [class index], the `tokenizer` interface AudioDataset wants (one "token" per utterance)."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.index = {label: i for i, label in enumerate(self.classes)}

    def encode(self, label: str) -> list[int]:
        return [self.index[label]]


def manifest_labels(path: str | Path, label_field: str = "label") -> list[str]:
    return [str(e[label_field]) for e in read_manifest(path, fields=(label_field,))]


def load_labelled(config: ClassifyConfig, manifest: str | Path, classes: list[str], training: bool = False) -> AudioDataset:
    """An AudioDataset whose items' `tokens` are [class index] and `text` the label."""
    return labelled_dataset(config, labelled_entries(config, manifest, classes), classes, training)


def labelled_entries(config: ClassifyConfig, manifest: str | Path, classes: list[str]) -> list[tuple[dict, str]]:
    """(manifest entry, label) pairs; a label outside `classes` is an error."""
    label_field = config.data.label_field
    entries = read_manifest(manifest, fields=("audio_filepath", "duration", label_field))
    unknown = sorted({str(e[label_field]) for e in entries} - set(classes))
    if unknown:
        raise ManifestError(f"{manifest}: label(s) {', '.join(map(repr, unknown[:10]))} not among the model's classes "
                            f"({', '.join(classes)})")
    return [(e, str(e[label_field])) for e in entries]


def labelled_dataset(config: ClassifyConfig, pairs: list[tuple[dict, str]], classes: list[str],
                     training: bool = False) -> AudioDataset:
    """An AudioDataset of (manifest entry, label) pairs; speed perturbation when `training`."""
    utterances = [Utterance(id=str(e["id"]), path=e["audio_filepath"], duration=float(e["duration"]), text=label,
                            speaker=str(e.get("speaker", ""))) for e, label in pairs]
    return AudioDataset(utterances, LabelEncoder(classes), config.features.sample_rate,
                        config.data.speed_perturb if training else (), config.train.seed, config.features.hop_length)


# --- training and evaluation ----------------------------------------------------------------------

@torch.no_grad()
def evaluate(model: SequenceClassifier, loader: DataLoader, device: torch.device, classes: list[str]) -> dict:
    """ids, refs, hyps (label strings), mean cross-entropy and accuracy over `loader`."""
    model.eval()
    ids, refs, hyps, loss_sum = [], [], [], 0.0
    for batch in loader:
        if not batch["ids"]:
            continue
        logits = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        labels = batch["tokens"][:, 0].to(device)
        loss_sum += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        ids += batch["ids"]
        refs += [classes[i] for i in labels.tolist()]
        hyps += [classes[i] for i in logits.argmax(-1).tolist()]
    correct = sum(r == h for r, h in zip(refs, hyps))
    return {"ids": ids, "refs": refs, "hyps": hyps, "loss": loss_sum / max(len(ids), 1),
            "accuracy": correct / max(len(ids), 1), "correct": correct}


def write_report(out: str | Path, name: str, result: dict, classes: list[str], speakers: dict | None = None) -> dict:
    """NAME.per_utt.jsonl (id, ref, hyp, correct[, speaker]) and NAME.summary.json (accuracy, confusion matrix with
    rows = reference, columns = hypothesis, in `classes` order) under `out`. Returns the summary."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"{name}.per_utt.jsonl", "w", encoding="utf-8") as lines:
        for uid, ref, hyp in zip(result["ids"], result["refs"], result["hyps"]):
            row = {"id": uid, "ref": ref, "hyp": hyp, "correct": ref == hyp}
            if speakers:
                row["speaker"] = speakers.get(uid, "")
            lines.write(json.dumps(row) + "\n")
    index = {label: i for i, label in enumerate(classes)}
    confusion = [[0] * len(classes) for _ in classes]
    for ref, hyp in zip(result["refs"], result["hyps"]):
        confusion[index[ref]][index[hyp]] += 1
    summary = {"name": name, "utterances": len(result["ids"]), "correct": result["correct"],
               "accuracy": result["accuracy"], "loss": result["loss"], "classes": classes, "confusion": confusion}
    head = json.dumps({k: v for k, v in summary.items() if k != "confusion"}, indent=1)[:-2]  # without "\n}"
    rows = ",\n  ".join(json.dumps(row) for row in confusion)  # one line per reference class
    (out / f"{name}.summary.json").write_text(f'{head},\n "confusion": [\n  {rows}\n ]\n}}\n')
    return summary


def train_epoch(model: SequenceClassifier, loader: DataLoader, optimizer, scheduler, scaler, config: ClassifyConfig,
                epoch: int, device: torch.device, amp_dtype=None, desc: str = "") -> tuple[float, int, int]:
    """One pass over `loader` with the config's augmentation (speed perturbation in the dataset, white noise,
    SpecAugment from specaugment.start_epoch). Returns (summed loss, correct, utterances)."""
    model.train()
    if model.specaugment is not None:
        model.specaugment.enabled = epoch >= config.specaugment.start_epoch
    loader.batch_sampler.set_epoch(epoch)
    loader.dataset.epoch = epoch
    loss_sum, correct, count = 0.0, 0, 0
    bar = tqdm(loader, desc=desc, unit="batch", file=sys.stderr, dynamic_ncols=True, leave=False,
               disable=not sys.stderr.isatty())  # logs get the caller's epoch line
    for batch in bar:
        if not batch["ids"]:
            continue
        labels = batch["tokens"][:, 0].to(device)
        inputs, input_lens = batch["inputs"].to(device), batch["input_lens"].to(device)
        if config.data.noise_snr:
            inputs = add_noise(inputs, input_lens, config.data.noise_snr)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(inputs, input_lens)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=config.optim.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += float(loss.detach()) * len(labels)
        correct += int((logits.argmax(-1) == labels).sum())
        count += len(labels)
        bar.set_postfix(loss=f"{loss_sum / count:.3f}", acc=f"{correct / count:.3f}", refresh=False)
    bar.close()
    return loss_sum, correct, count


@dataclass
class ClassifyResult:
    best_epoch: int
    best_dev_accuracy: float
    epochs: int
    seconds: float
    bundle: Path


def train(config: ClassifyConfig, resume: bool = False) -> ClassifyResult:
    """Train a SequenceClassifier; writes last.pt/best.pt, train_log.jsonl and the bundle model.pt in exp_dir."""
    device = select_device(config.train.device)
    exp_dir, checkpoint = start_run(config, resume)

    if checkpoint:
        classes = checkpoint["classes"]
    else:
        classes = list(config.data.classes) or sorted(set(manifest_labels(config.data.train_manifest,
                                                                          config.data.label_field)))
    if len(classes) < 2:
        raise UserError(f"{config.data.train_manifest}: classification needs at least 2 classes, found {classes}")
    config.data.classes = classes
    pretrained = load_pretrained_encoder(config) if config.model.init_from and not checkpoint else None
    model = build_classifier(len(classes), config, training=True).to(device)
    if pretrained:
        missing, _ = model.load_state_dict(pretrained, strict=False)  # everything but pooling and head
        assert all(name.startswith(("pooling.", "head.")) for name in missing), missing
        print(f"front-end and encoder from {config.model.init_from}", file=sys.stderr)
    train_set = load_labelled(config, config.data.train_manifest, classes, training=True)
    dev_set = load_labelled(config, config.data.dev_manifest, classes)
    for name, dataset in (("train", train_set), ("dev", dev_set)):
        if not len(dataset):
            raise UserError(f"{getattr(config.data, name + '_manifest')}: no utterances")
    train_loader = make_loader(train_set, config, True, config.train.seed)
    dev_loader = make_loader(dev_set, config, False, 0)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {len(classes)} classes, "
          f"{config.model.rnn.cell} encoder, {config.model.pooling} pooling; train {len(train_set)}, dev {len(dev_set)} "
          f"utterances; device {device}", file=sys.stderr)

    if not checkpoint and not pretrained:
        init_cmvn(model.frontend, config, train_set, device)
    optimizer = build_optimizer(model, config)
    steps_per_epoch = len(train_loader.batch_sampler)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(
        config.optim.warmup_steps, steps_per_epoch * config.train.max_epochs, config.optim.final_lr_ratio))
    use_amp = config.train.amp and device.type == "cuda"
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if use_amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)

    start_epoch, best_key, best_epoch, stale, train_seconds = restore_run(
        checkpoint, exp_dir, model, optimizer, scheduler, train_loader.batch_sampler, scaler)
    log_path = exp_dir / "train_log.jsonl"

    epoch = start_epoch - 1
    for epoch in range(start_epoch, config.train.max_epochs + 1):
        if config.train.patience and stale >= config.train.patience:
            break
        started = time.time()
        loss_sum, correct, count = train_epoch(model, train_loader, optimizer, scheduler, scaler, config, epoch,
                                               device, amp_dtype, f"epoch {epoch}/{config.train.max_epochs}")
        epoch_seconds = time.time() - started
        train_seconds += epoch_seconds
        dev = evaluate(model, dev_loader, device, classes)
        key = (dev["accuracy"], -dev["loss"])  # best dev accuracy; among equals, the lowest dev loss
        improved = key > best_key
        if improved:
            best_key, best_epoch, stale = key, epoch, 0
        else:
            stale += 1
        record = {"epoch": epoch, "train_loss": loss_sum / max(count, 1), "train_accuracy": correct / max(count, 1),
                  "dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"], "lr": scheduler.get_last_lr()[0],
                  "epoch_seconds": round(epoch_seconds, 2), "utts_per_second": round(count / epoch_seconds, 2),
                  "best_epoch": best_epoch}
        with open(log_path, "a") as log:
            log.write(json.dumps(record) + "\n")
        print(f"epoch {epoch}: train loss {record['train_loss']:.3f} acc {100 * record['train_accuracy']:.1f} %, "
              f"dev loss {dev['loss']:.3f} acc {100 * dev['accuracy']:.2f} %, {epoch_seconds:.0f} s"
              f"{' (best)' if improved else ''}", file=sys.stderr)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "scaler": scaler.state_dict(), "sampler": train_loader.batch_sampler.state_dict(), "rng": rng_state(),
                 "epoch": epoch, "best_key": list(best_key), "best_epoch": best_epoch, "stale": stale,
                 "train_seconds": train_seconds, "config": to_dict(config), "classes": classes}
        if improved:  # best before last: a run killed between the two writes still finds best.pt when resumed
            atomic_save(state, exp_dir / "best.pt")
        atomic_save(state, exp_dir / "last.pt")

    best = torch.load(exp_dir / "best.pt", map_location="cpu", weights_only=True)
    bundle_path = exp_dir / "model.pt"
    save_bundle(bundle_path, best["model"], best["config"], {"classes": best["classes"]},
                extra={"task": TASK, "epoch": best["epoch"], "dev_accuracy": best["best_key"][0],
                       "dev_loss": -best["best_key"][1], "train_seconds": best["train_seconds"]})
    print(f"best dev accuracy {100 * best_key[0]:.2f} % at epoch {best_epoch}; bundle written to {bundle_path}",
          file=sys.stderr)
    return ClassifyResult(best_epoch, best_key[0], epoch, train_seconds, bundle_path)


def load_classifier(path: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[SequenceClassifier, list[str], ClassifyConfig, dict]:
    """Bundle -> (classifier in eval mode on `device`, classes, config, bundle extras)."""
    bundle = load_bundle(path)
    extra = bundle.get("extra", {})
    if extra.get("task") != TASK:
        raise BundleError(f"{path}: not a sequence-classifier bundle (a CTC recognizer? use `speechrnn eval`)")
    config = from_dict(bundle["config"], schema=ClassifyConfig)
    classes = list(bundle["tokenizer"]["classes"])
    model = build_classifier(len(classes), config)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), classes, config, extra


def evaluate_manifest(bundle: str | Path, manifest: str | Path, out: str | Path, name: str | None = None,
                      device: str = "auto") -> dict:
    """Score a bundle on a labelled manifest; writes the reports of write_report and returns the summary."""
    device = select_device(device)
    model, classes, config, _ = load_classifier(bundle, device)
    config.data.num_workers = 0
    dataset = load_labelled(config, manifest, classes)
    result = evaluate(model, make_loader(dataset, config, False, 0), device, classes)
    speakers = {u.id: u.speaker for u in dataset.utterances if u.speaker}
    summary = write_report(out, name or Path(manifest).stem, result, classes, speakers)
    summary["unscored"] = len(dataset) - len(result["ids"])
    return summary


# --- unsupervised speaker adaptation (self-training) ----------------------------------------------

@torch.no_grad()
def class_posteriors(model: SequenceClassifier, dataset: AudioDataset, config: ClassifyConfig,
                     device: torch.device) -> dict[str, torch.Tensor]:
    """{utterance id: (C,) class posteriors} for every readable utterance of `dataset`."""
    model.eval()
    posteriors = {}
    for batch in make_loader(dataset, config, False, 0):
        if not batch["ids"]:
            continue
        probs = model(batch["inputs"].to(device), batch["input_lens"].to(device)).softmax(-1).cpu()  # (B, C)
        posteriors.update(zip(batch["ids"], probs))
    return posteriors


def confident_labels(posteriors: dict[str, torch.Tensor], share: float) -> dict[str, int]:
    """The most confident `share` of the utterances predicted as each class: {id: class}. Taking a share per class
    rather than one threshold keeps the classes the model is least sure of from dropping out of the pseudo-labels."""
    by_class: dict[int, list[tuple[float, str]]] = {}
    for uid, probs in posteriors.items():
        score, label = probs.max(dim=0)
        by_class.setdefault(int(label), []).append((float(score), uid))
    chosen = {}
    for label, scored in by_class.items():
        for _, uid in sorted(scored, reverse=True)[: max(1, round(share * len(scored)))]:
            chosen[uid] = label
    return chosen


def adapt(bundle: str | Path, manifest: str | Path, out: str | Path, train_manifest: str | Path | None = None,
          overrides: dict | None = None, device: str = "auto", threads: int = 0) -> dict:
    """Unsupervised adaptation to the recordings of `manifest` (a new speaker, say), whose labels are not read.

    Self-training: in each round the current model labels those recordings, and a copy of the source model is
    fine-tuned on the labelled training set plus the most confident share of them under their predicted labels; the
    share grows each round until all are used. Writes the adapted bundle to `out`; returns a summary of the rounds.
    Score it only on *other* recordings of that speaker: these ones it has now heard. The settings are the bundle's
    `adapt` config with `overrides` ({key: value}) on top; CPU threads `threads`, else the bundle's train.threads."""
    device = select_device(device)
    source, classes, config, extra = load_classifier(bundle, device)
    if threads or config.train.threads:
        torch.set_num_threads(threads or config.train.threads)
    config.adapt = replace(config.adapt, **(overrides or {}))
    settings = config.adapt
    config.data.num_workers = 0
    labelled = labelled_entries(config, train_manifest or config.data.train_manifest, classes)
    unlabelled_entries = read_manifest(manifest, fields=("audio_filepath", "duration"))
    if not unlabelled_entries:
        raise UserError(f"{manifest}: no utterances to adapt to")
    unlabelled = labelled_dataset(config, [(e, classes[0]) for e in unlabelled_entries], classes)  # labels unused
    by_id = {str(e["id"]): e for e in unlabelled_entries}
    torch.manual_seed(config.train.seed)
    model, rounds = source, []
    for round_ in range(1, settings.rounds + 1):
        started = time.time()
        pseudo = confident_labels(class_posteriors(model, unlabelled, config, device), round_ / settings.rounds)
        pairs = labelled + [(by_id[uid], classes[label]) for uid, label in pseudo.items()] * settings.repeat
        student = build_classifier(len(classes), config, training=True).to(device)
        student.load_state_dict(source.state_dict())  # every round starts from the source: no drift
        loader = make_loader(labelled_dataset(config, pairs, classes, training=True), config, True, round_)
        tuned = replace(config, optim=replace(config.optim, lr=settings.lr, warmup_steps=0))
        optimizer = build_optimizer(student, tuned)
        steps = len(loader.batch_sampler) * settings.epochs
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(0, steps, config.optim.final_lr_ratio))
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        for epoch in range(1, settings.epochs + 1):  # numbered past specaugment.start_epoch: SpecAugment on
            train_epoch(student, loader, optimizer, scheduler, scaler, tuned, config.specaugment.start_epoch + epoch,
                        device, desc=f"adapt round {round_}/{settings.rounds} epoch {epoch}/{settings.epochs}")
        model = student.eval()
        rounds.append({"round": round_, "pseudo_labels": len(pseudo), "seconds": round(time.time() - started, 1)})
        print(f"adapt round {round_}/{settings.rounds}: fine-tuned on {len(pseudo)} of {len(unlabelled_entries)} "
              f"recordings under their predicted labels, {rounds[-1]['seconds']:.0f} s", file=sys.stderr)
    save_bundle(out, model.state_dict(), to_dict(config), {"classes": classes},
                extra=dict(extra, adapted_from=str(bundle), adapted_on=str(manifest), adapt_rounds=rounds))
    return {"bundle": str(out), "rounds": rounds}


# --- command line ---------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m speechrnn.classify", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Utterance classification (one label per recording) with the speechrnn encoder: train from a "
                    "YAML config, or score a trained bundle on a labelled manifest.",
        epilog="examples:\n"
               "  python -m speechrnn.classify train recipes/fsdd/conf/default.yaml model.rnn.cell=gru "
               "train.exp_dir=exp/gru\n"
               "  python -m speechrnn.classify eval exp/gru/model.pt data/test.jsonl --out exp/gru/eval\n"
               "Recipe: recipes/fsdd/run.sh (spoken digits, speaker-disjoint folds).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser(
        "train", help="train a classifier from a YAML config", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a sequence classifier. Writes last.pt/best.pt, train_log.jsonl and the bundle model.pt "
                    "under train.exp_dir; best = highest dev accuracy (ties: lower dev loss). With "
                    "data.test_manifest set, the bundle is also scored on it (reports in exp_dir/eval).",
        epilog="keys: data.{train,dev,test}_manifest (JSONL with audio_filepath, duration, label), data.classes, "
               "data.speed_perturb, data.noise_snr ([low, high] dB of white noise on training clips), features.*, specaugment.*, use_specaugment, model.rnn.cell (" + ", ".join(sorted(RNN_CELLS)) +
               "), model.rnn.{hidden_size,num_layers,bidirectional,dropout}, model.conv_channels, model.pooling "
               "(mean | attention), model.utterance_cmn, optim.{lr,warmup_steps,label_smoothing,...}, "
               "train.{exp_dir,max_epochs,patience,seed,device,threads}")
    p.add_argument("config", help="YAML config (e.g. recipes/fsdd/conf/default.yaml)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. model.rnn.cell=gru model.pooling=attention")
    p.add_argument("--resume", action="store_true", help="continue from exp_dir/last.pt if it exists")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: train.device)")
    p = commands.add_parser(
        "eval", help="score a bundle on a labelled manifest",
        description="Classify every utterance of MANIFEST; writes NAME.per_utt.jsonl (id, ref, hyp, correct, speaker) "
                    "and NAME.summary.json (accuracy, confusion matrix) to --out and prints the accuracy.")
    p.add_argument("bundle", help="classifier bundle (exp/.../model.pt)")
    p.add_argument("manifest", help="JSONL manifest with audio_filepath, duration and the label field")
    p.add_argument("--out", default=".", help="folder for the reports (default: current folder)")
    p.add_argument("--name", help="report name (default: the manifest's file name without .jsonl)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p = commands.add_parser(
        "adapt", help="adapt a bundle to a new speaker's unlabelled recordings (self-training)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Unsupervised adaptation: label MANIFEST's recordings with the model, fine-tune a copy of it on "
                    "the labelled training set plus the most confident share of them under the predicted labels, and "
                    "repeat with a growing share (--rounds). MANIFEST's labels, if any, are not read. Writes the "
                    "adapted bundle to -o. Score it on other recordings of that speaker, not on these.",
        epilog="example (FSDD: adapt on half of the held-out speaker, score the other half):\n"
               "  python -m speechrnn.classify adapt exp/default/nicolas/model.pt exp/data/nicolas/test_a.jsonl "
               "-o exp/default/nicolas/adapted_a.pt --train-manifest exp/data/nicolas/train.jsonl\n"
               "  python -m speechrnn.classify eval exp/default/nicolas/adapted_a.pt exp/data/nicolas/test_b.jsonl")
    p.add_argument("bundle", help="classifier bundle to adapt")
    p.add_argument("manifest", help="JSONL manifest of the recordings to adapt to (audio_filepath, duration)")
    p.add_argument("-o", "--out", required=True, help="path of the adapted bundle")
    p.add_argument("--train-manifest", help="labelled training set (default: the bundle's data.train_manifest)")
    for key, value in to_dict(AdaptConfig()).items():
        p.add_argument(f"--{key}", type=type(value), help=f"{ADAPT_HELP[key]} (default: the bundle's adapt.{key}, "
                                                          f"{value} unless set in training)")
    p.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when present, else cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: the bundle's train.threads, else "
                                                          "torch's choice)")
    return parser


def print_summary(summary: dict) -> None:
    print(f"{summary['name']}: accuracy {100 * summary['accuracy']:.2f} % ({summary['correct']}/{summary['utterances']})"
          + (f" ({summary['unscored']} unreadable utterance(s) not scored)" if summary.get("unscored") else ""))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "train":
            config = load_classify_config(args.config, args.overrides)
            if args.device:
                config.train.device = args.device
            result = train(config, resume=args.resume)
            if config.data.test_manifest:
                print_summary(evaluate_manifest(result.bundle, config.data.test_manifest,
                                                Path(config.train.exp_dir) / "eval", "test", config.train.device))
        elif args.command == "adapt":
            overrides = {key: getattr(args, key) for key in ADAPT_HELP if getattr(args, key) is not None}
            adapt(args.bundle, args.manifest, args.out, args.train_manifest, overrides, args.device, args.threads)
            print(f"adapted bundle written to {args.out}")
        else:
            if args.threads:
                torch.set_num_threads(args.threads)
            summary = evaluate_manifest(args.bundle, args.manifest, args.out, args.name, args.device)
            print_summary(summary)
            if summary["unscored"]:
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
