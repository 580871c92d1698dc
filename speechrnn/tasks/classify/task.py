"""Training a sequence classifier through training.loop.fit: cross-entropy (with label smoothing) on the pooled
encoding, white noise and SpecAugment as augmentation; the model with the best dev accuracy (ties: lower dev loss)
becomes the bundle. Manifests are the usual JSONL ones with a `label` field (audio_filepath, duration, label).

`adapt` is unsupervised adaptation to a new speaker by self-training: the model labels that speaker's recordings
(their labels are never read), then a copy of it is fine-tuned on its training set plus its most confident guesses,
a larger share each round. A round whose model reads the training speakers' dev recordings worse than the unadapted
one (by more than adapt.max_dev_drop) is refused, and the last model before it kept.

    speechrnn classify train CONF [key=value ...] [--resume]
    speechrnn classify adapt BUNDLE MANIFEST -o ADAPTED [--train-manifest M] [--rounds N ...]
"""

import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from ...bundle import save_bundle
from ...config import load_config, to_dict
from ...data import make_loader, read_manifest
from ...datacheck import usable_audio
from ...device import select_device
from ...errors import ConfigError, UserError
from ...features import length_mask
from ...training import AccuracyTask, fit
from ...training.cmvn import init_cmvn
from ...training.loop import FitResult, autocast, begin_epoch, train_one_epoch
from ...training.optim import build_optimizer, build_scheduler
from .inference import class_posteriors, evaluate, labelled_dataset, labelled_entries, load_classifier, load_labelled, \
    manifest_labels
from .model import TASK, ClassifyConfig, build_classifier, load_pretrained_encoder

def load_classify_config(path: str | Path | None = None, overrides: list[str] = ()) -> ClassifyConfig:
    config = load_config(path, overrides, schema=ClassifyConfig)
    snr = list(config.data.noise_snr)
    if snr and (len(snr) != 2 or snr[0] > snr[1]):
        raise ConfigError(f"config: data.noise_snr={snr} must be [low, high] in dB with low <= high (or [] for off)")
    return config


def add_noise(waveforms: torch.Tensor, lens: torch.Tensor, snr_range: list[float]) -> torch.Tensor:
    """White noise on the valid samples at an SNR (dB) drawn per utterance from [low, high]; padding stays 0.
    (B, N) -> (B, N)."""
    mask = length_mask(lens, waveforms.shape[1])
    power = (waveforms.square() * mask).sum(1) / lens.clamp(min=1)  # (B,) mean power of each waveform
    snr = torch.empty_like(power).uniform_(*snr_range)
    noise_std = (power / 10 ** (snr / 10)).sqrt()[:, None]  # (B, 1)
    return waveforms + torch.randn_like(waveforms) * noise_std * mask


class ClassifyTask(AccuracyTask):
    name = TASK
    pretrained = None  # front-end + encoder weights from model.encoder_from (fresh runs)

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        config = self.config
        if checkpoint:
            classes = checkpoint["classes"]
        else:
            classes = list(config.data.classes) or sorted(set(manifest_labels(config.data.train_manifest,
                                                                              config.data.label_field)))
        if len(classes) < 2:
            raise UserError(f"{config.data.train_manifest}: classification needs at least 2 classes, found {classes}")
        config.data.classes = self.classes = classes
        if config.model.encoder_from and not checkpoint:
            self.pretrained = load_pretrained_encoder(config)
        self.model = build_classifier(len(classes), config, training=True).to(device)
        if self.pretrained:
            missing, _ = self.model.load_state_dict(self.pretrained, strict=False)  # all but pooling and head
            assert all(name.startswith(("pooling.", "head.")) for name in missing), missing
            print(f"front-end and encoder from {config.model.encoder_from}", file=sys.stderr)
        self.train_set = usable_audio(load_labelled(config, config.data.train_manifest, classes, training=True),
                                      config.data, config.data.train_manifest)
        self.dev_set = usable_audio(load_labelled(config, config.data.dev_manifest, classes), config.data,
                                    config.data.dev_manifest)
        for name, dataset in (("train", self.train_set), ("dev", self.dev_set)):
            if not len(dataset):
                raise UserError(f"{getattr(config.data, name + '_manifest')}: no utterances")

    def describe(self) -> str:
        config = self.config
        return (f"model: {sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters, "
                f"{len(self.classes)} classes, {config.model.rnn.cell} encoder, {config.model.pooling} pooling; train "
                f"{len(self.train_set)}, dev {len(self.dev_set)} utterances")

    def initialize(self, device: torch.device, main: bool) -> None:
        if not self.pretrained:
            init_cmvn(self.model.frontend, self.config, self.train_set, device)

    def compute_loss(self, net, batch: dict, device: torch.device, amp_dtype) -> tuple:
        labels = batch["tokens"][:, 0].to(device)
        inputs, input_lens = batch["inputs"].to(device), batch["input_lens"].to(device)
        if self.config.data.noise_snr:
            inputs = add_noise(inputs, input_lens, self.config.data.noise_snr)
        with autocast(device, amp_dtype):
            logits = net(inputs, input_lens)
        loss = nn.functional.cross_entropy(logits.float(), labels, label_smoothing=self.config.optim.label_smoothing)
        return loss, {"loss": float(loss.detach()) * len(labels), "count": len(labels),
                      "correct": int((logits.argmax(-1) == labels).sum())}

    def evaluate(self, loader, device: torch.device) -> dict:
        return evaluate(self.model, loader, device, self.classes)

    def log_fields(self, sums: dict, dev: dict) -> dict:
        count = max(sums.get("count", 0), 1)
        return {"train_loss": sums.get("loss", 0.0) / count, "train_accuracy": sums.get("correct", 0) / count,
                "dev_loss": dev["loss"], "dev_accuracy": dev["accuracy"]}

    def epoch_line(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.3f} acc {100 * record['train_accuracy']:.1f} %, dev loss "
                f"{record['dev_loss']:.3f} acc {100 * record['dev_accuracy']:.2f} %")

    def checkpoint_extras(self) -> dict:
        return {"classes": self.classes}

    def bundle_vocabulary(self, best: dict) -> dict:
        return {"classes": best["classes"]}


def train(config: ClassifyConfig, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train a SequenceClassifier (see training.loop.fit): exp_dir gets last.pt, best.pt, train_log.jsonl, model.pt."""
    return fit(ClassifyTask(config), config, resume, overwrite)


# --- unsupervised speaker adaptation (self-training) ----------------------------------------------

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


def fine_tune(source, config: ClassifyConfig, pairs: list, round_: int, device: torch.device, desc: str):
    """A copy of `source` fine-tuned on (manifest entry, label) `pairs` for adapt.epochs epochs at adapt.lr (no
    warm-up, cosine decay), through the training loop's epoch; no dev set, no checkpoints."""
    settings = config.adapt
    task = ClassifyTask(config)
    task.classes = config.data.classes
    task.model = build_classifier(len(task.classes), config, training=True).to(device)
    task.model.load_state_dict(source.state_dict())  # every round starts from the source: no drift
    task.train_set = labelled_dataset(config, pairs, task.classes, training=True)
    loader = make_loader(task.train_set, config, True, round_)
    tuned = replace(config.optim, lr=settings.lr)
    optimizer = build_optimizer(task.model, tuned)
    scheduler = build_scheduler(optimizer, tuned, len(loader.batch_sampler) * settings.epochs, warmup_steps=0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    for epoch in range(1, settings.epochs + 1):  # numbered past specaugment.start_epoch: SpecAugment on
        begin_epoch(task, task.model, loader, config.specaugment.start_epoch + epoch)
        train_one_epoch(task, task.model, loader, optimizer, scheduler, scaler, None, config.optim.grad_clip, device,
                        f"{desc} epoch {epoch}/{settings.epochs}")
    return task.model.eval()


def dev_check(config: ClassifyConfig, classes: list[str], device: torch.device):
    """model -> accuracy on the bundle's dev manifest (the training speakers' held-out recordings), or None when that
    manifest is not where the bundle's config says (adaptation then runs unguarded, with a note)."""
    path = config.data.dev_manifest
    if not path or not Path(path).is_file():
        print(f"note: the dev manifest {path!r} is not here, so adaptation rounds are not checked against it "
              f"(adapt.max_dev_drop); run from the folder the model was trained in", file=sys.stderr)
        return None
    loader = make_loader(load_labelled(config, path, classes), config, False, 0)
    return lambda model: evaluate(model, loader, device, classes)["accuracy"]


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
    config.data.classes = classes
    labelled = labelled_entries(config, train_manifest or config.data.train_manifest, classes)
    unlabelled_entries = read_manifest(manifest, fields=("audio_filepath", "duration"))
    if not unlabelled_entries:
        raise UserError(f"{manifest}: no utterances to adapt to")
    unlabelled = labelled_dataset(config, [(e, classes[0]) for e in unlabelled_entries], classes)  # labels unused
    by_id = {str(e["id"]): e for e in unlabelled_entries}
    dev = dev_check(config, classes, device)
    floor = dev(source) - settings.max_dev_drop if dev else None
    torch.manual_seed(config.train.seed)
    model, rounds = source, []
    for round_ in range(1, settings.rounds + 1):
        started = time.time()
        pseudo = confident_labels(class_posteriors(model, unlabelled, config, device), round_ / settings.rounds)
        pairs = labelled + [(by_id[uid], classes[label]) for uid, label in pseudo.items()] * settings.repeat
        tuned = fine_tune(source, config, pairs, round_, device, f"adapt round {round_}/{settings.rounds}")
        accuracy = dev(tuned) if dev else None
        refused = accuracy is not None and accuracy < floor
        rounds.append({"round": round_, "pseudo_labels": len(pseudo), "dev_accuracy": accuracy, "refused": refused,
                       "seconds": round(time.time() - started, 1)})
        print(f"adapt round {round_}/{settings.rounds}: fine-tuned on {len(pseudo)} of {len(unlabelled_entries)} "
              f"recordings under their predicted labels"
              + (f", training speakers' dev accuracy {100 * accuracy:.1f} %" if accuracy is not None else "")
              + f", {rounds[-1]['seconds']:.0f} s", file=sys.stderr)
        if refused:
            print(f"adapt round {round_} refused: the dev accuracy fell more than {100 * settings.max_dev_drop:g} "
                  f"points below the unadapted model's ({100 * (floor + settings.max_dev_drop):.1f} %), a confusion "
                  f"locked in; keeping the model of round {round_ - 1} (0 = unadapted)", file=sys.stderr)
            break
        model = tuned
    save_bundle(out, model.state_dict(), to_dict(config), {"classes": classes},
                extra=dict(extra, adapted_from=str(bundle), adapted_on=str(manifest), adapt_rounds=rounds))
    return {"bundle": str(out), "rounds": rounds}
