"""Classifier inference, no trainer needed: load a bundle, read labelled manifests, score, report.

    speechrnn classify eval BUNDLE MANIFEST [--out DIR] [--name NAME]
"""

import json
from pathlib import Path

import torch
from torch import nn

from ...bundle import load_bundle, load_weights
from ...config import from_dict
from ...data import AudioDataset, Utterance, make_loader, read_manifest
from ...device import select_device
from ...errors import BundleError, ManifestError
from .model import TASK, ClassifyConfig, SequenceClassifier, build_classifier, upgrade_config


class LabelEncoder:
    """Label string -> [class index], the `tokenizer` interface AudioDataset wants (one "token" per utterance)."""

    def __init__(self, classes: list[str]):
        self.classes = list(classes)
        self.index = {label: i for i, label in enumerate(self.classes)}

    def encode(self, label: str) -> list[int]:
        return [self.index[label]]


def manifest_labels(path: str | Path, label_field: str = "label") -> list[str]:
    return [str(e[label_field]) for e in read_manifest(path, fields=(label_field,), allow_empty=False)]


def load_labelled(config: ClassifyConfig, manifest: str | Path, classes: list[str], training: bool = False) -> AudioDataset:
    """An AudioDataset whose items' `tokens` are [class index] and `text` the label."""
    return labelled_dataset(config, labelled_entries(config, manifest, classes), classes, training)


def labelled_entries(config: ClassifyConfig, manifest: str | Path, classes: list[str]) -> list[tuple[dict, str]]:
    """(manifest entry, label) pairs; a label outside `classes` is an error."""
    label_field = config.data.label_field
    entries = read_manifest(manifest, fields=("audio_filepath", "duration", label_field), allow_empty=False)
    unknown = sorted({str(e[label_field]) for e in entries} - set(classes))
    if unknown:
        raise ManifestError(f"{manifest}: label(s) {', '.join(map(repr, unknown[:10]))} not among the model's classes "
                            f"({', '.join(classes)})")
    return [(e, str(e[label_field])) for e in entries]


def labelled_dataset(config: ClassifyConfig, pairs: list[tuple[dict, str]], classes: list[str],
                     training: bool = False) -> AudioDataset:
    """An AudioDataset of (manifest entry, label) pairs; speed perturbation and augmentation when `training`."""
    utterances = [Utterance(id=str(e["id"]), path=e["audio_filepath"], duration=float(e["duration"]), text=label,
                            speaker=str(e.get("speaker", ""))) for e, label in pairs]
    return AudioDataset(utterances, LabelEncoder(classes), config.features.sample_rate,
                        config.data.speed_perturb if training else (), config.train.seed, config.features.hop_length,
                        config.data.augment if training else None, config.data.trim_edges)



@torch.no_grad()
def evaluate(model: SequenceClassifier, loader, device: torch.device, classes: list[str]) -> dict:
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



def load_classifier(path: str | Path, device: torch.device | str = "cpu"
                    ) -> tuple[SequenceClassifier, list[str], ClassifyConfig, dict]:
    """Bundle -> (classifier in eval mode on `device`, classes, config, bundle extras)."""
    bundle = load_bundle(path)
    extra = bundle.get("extra", {})
    if extra.get("task") != TASK:
        raise BundleError(f"{path}: not a sequence-classifier bundle (a CTC recognizer? use `speechrnn eval`)")
    config = from_dict(upgrade_config(bundle["config"]), schema=ClassifyConfig)
    classes = list(bundle["tokenizer"]["classes"])
    model = build_classifier(len(classes), config)
    load_weights(model, bundle["state_dict"], path)
    return model.to(device).eval(), classes, config, extra


def evaluate_manifest(bundle: str | Path, manifest: str | Path, out: str | Path, name: str | None = None,
                      device: str = "auto", trim_edges: bool = False) -> dict:
    """Score a bundle on a labelled manifest; writes the reports of write_report and returns the summary.
    `trim_edges`: cut each recording to its speech first (as data.trim_edges does, also for a bundle without it)."""
    device = select_device(device)
    model, classes, config, _ = load_classifier(bundle, device)
    config.data.num_workers = 0
    config.data.trim_edges = config.data.trim_edges or trim_edges
    dataset = load_labelled(config, manifest, classes)
    result = evaluate(model, make_loader(dataset, config, False, 0), device, classes)
    speakers = {u.id: u.speaker for u in dataset.utterances if u.speaker}
    summary = write_report(out, name or Path(manifest).stem, result, classes, speakers)
    summary["unscored"] = len(dataset) - len(result["ids"])
    return summary



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


