"""CTC recognition (many-to-many, Ty <= Tx): characters from speech or pen strokes, trained through training.fit.

    inputs -> CTCModel (front-end, encoder, CTC head) -> log-probs (B, T, V) -> ctc_loss against the transcript

Selection: the lowest dev CER (greedy decoding). The bundle carries the tokenizer; `speechrnn tune` adds a decoder.
"""

import sys

import torch

from ..align import ctc_frames_needed
from ..bundle import atomic_save, load_bundle
from ..config import Config
from ..data import load_dataset, make_loader, manifest_texts
from ..datacheck import usable_audio
from ..decode import greedy_decode
from ..errors import UserError
from ..features import length_mask
from ..metrics import error_rates
from ..model import CTCModel, build_model
from ..text import Tokenizer, normalize
from ..training import Task, fit
from ..training.cmvn import compute_cmvn, init_cmvn
from ..training.loop import FitResult, autocast


def ctc_gradient_fix(scores: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Zero in value; in gradient it removes the exp(scores) term torch's CTC backward adds (its formula assumes
    log-softmax inputs), so CTC on unnormalised scores (B, T, V) gets its true gradient (checked by gradcheck in
    tests/test_aligner.py)."""
    valid = length_mask(lens, scores.shape[1]).unsqueeze(-1)  # (B, T, 1)
    term = (scores * (scores.detach().exp() * valid)).sum()
    return term.detach() - term


def with_edge_token(tokens: torch.Tensor, token_lens: torch.Tensor, token: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded targets (B, L) -> (B, L + 2) with `token` before and after each target's own tokens."""
    edged = torch.zeros(tokens.shape[0], tokens.shape[1] + 2, dtype=tokens.dtype, device=tokens.device)
    edged[:, 0] = token
    edged[:, 1:-1] = tokens
    edged[torch.arange(tokens.shape[0], device=tokens.device), token_lens + 1] = token
    return edged, token_lens + 2


CTC = torch.nn.CTCLoss(blank=0, reduction="sum", zero_infinity=True)


def ctc_loss(log_probs: torch.Tensor, lens: torch.Tensor, tokens: torch.Tensor, token_lens: torch.Tensor) -> torch.Tensor:
    """Summed CTC loss of a batch: log-probs (B, T, V) with lengths (B,) against padded targets (B, L), blank 0."""
    return CTC(log_probs.transpose(0, 1), tokens, lens, token_lens)  # (B, T, V) -> (T, B, V)


def keep_trainable(dataset, tokenizer: Tokenizer, model: CTCModel, where: str):
    """The dataset without (and counting) samples with no text or too short for their transcript under CTC."""
    frames = model.output_lengths(torch.tensor(dataset.input_lengths, dtype=torch.long)).tolist()
    keep, empty, too_short = [], 0, 0
    for index, (tokens, num_frames) in enumerate(zip(dataset.tokens, frames)):
        if not tokens:
            empty += 1
        elif num_frames < ctc_frames_needed(tokens):
            too_short += 1
        else:
            keep.append(index)
    if empty or too_short:
        print(f"warning: {where}: skipped {empty} sample(s) with empty text and {too_short} too short for "
              f"their transcript under CTC", file=sys.stderr)
    return dataset.subset(keep)


@torch.no_grad()
def evaluate(model: CTCModel, loader, tokenizer: Tokenizer, device: torch.device, beam=None) -> dict:
    """Decode a loader greedily, or with `beam` (a decode.BeamDecoder). Returns ids, refs (normalised), hyps,
    mean CTC loss and the error rates."""
    model.eval()
    ids, refs, hyps, loss_sum, token_count = [], [], [], 0.0, 0
    for batch in loader:
        if not batch["ids"]:
            continue
        log_probs, lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        loss_sum += float(ctc_loss(log_probs, lens, batch["tokens"].to(device), batch["token_lens"].to(device)))
        token_count += int(batch["token_lens"].sum())
        ids += batch["ids"]
        refs += [normalize(t, tokenizer.config) for t in batch["texts"]]
        if beam is None:
            hyps += [tokenizer.decode(seq) for seq in greedy_decode(log_probs, lens)]
        else:
            hyps += [nbest[0].text for nbest in beam.decode(log_probs.cpu(), lens.cpu())]
    return {"ids": ids, "refs": refs, "hyps": hyps, "loss": loss_sum / max(token_count, 1),
            "rates": error_rates(refs, hyps)}


def init_weights_from(model: CTCModel, path: str, tokenizer: Tokenizer, announce: bool = True) -> None:
    """Start `model` from the recognizer bundle `path` (same features, and a vocabulary that this run's contains): every
    tensor of the same shape is copied, CMVN statistics included; the CTC head's rows are copied by symbol, so
    symbols new to this run (a space, for lines) start fresh. From a bidirectional bundle into a unidirectional model each layer
    takes the bundle's direction that reads the same way (backward for model.rnn.reverse), reading only that
    direction's half of the layer below (the CTC head likewise), so a streaming model or an aligner
    (recipes/an4/aligner.sh) starts from an offline recognizer."""
    bundle = load_bundle(path)
    symbols = bundle["tokenizer"]["symbols"]
    if bundle["tokenizer"]["config"] != vars(tokenizer.config) or not set(symbols) <= set(tokenizer.symbols):
        raise UserError(f"train.init_from={path}: its vocabulary is not part of this run's; start from a bundle "
                        f"trained on the same text settings")
    source, target = dict(bundle["state_dict"]), model.state_dict()
    if symbols != tokenizer.symbols:  # a grown vocabulary (a space for lines, say): the head's rows by symbol
        rows = torch.tensor([symbols.index(s) if s in symbols else -1 for s in tokenizer.symbols])
        for name in ("head.weight", "head.bias"):
            if name in source:
                grown = source[name].new_zeros((len(rows), *source[name].shape[1:]))  # (V, ...) in the bundle's width
                if grown.shape == target[name].shape:  # new symbols keep their fresh initialisation
                    grown.copy_(target[name])
                grown[rows >= 0] = source[name][rows[rows >= 0]]
                source[name] = grown
    reverse = model.encoder.rnn.config.reverse and any(".backward_layers." in name for name in source)
    copied = 0
    for name, value in target.items():
        weight = source.get(name.replace(".forward_layers.", ".backward_layers.") if reverse else name)
        if weight is not None and weight.dim() == 2 and weight.shape[0] == value.shape[0] \
                and weight.shape[1] == 2 * value.shape[1]:  # (out, 2H) -> (out, H): one direction's half
            weight = weight[:, value.shape[1]:] if reverse else weight[:, : value.shape[1]]
        if weight is not None and weight.shape == value.shape:
            value.copy_(weight)
            copied += 1
    if announce:
        print(f"initialised {copied} of {len(target)} tensors from {path}", file=sys.stderr)


class CTCTask(Task):
    """Character CTC on a Config (speech or ink)."""

    def setup(self, checkpoint: dict | None, device: torch.device, main: bool) -> None:
        config = self.config
        self.tokenizer = (Tokenizer.from_dict(checkpoint["tokenizer"]) if checkpoint
                          else Tokenizer.build(manifest_texts(config.data.train_manifest), config.text))
        self.model = build_model(len(self.tokenizer), config, training=True).to(device)
        self.edge_token = None  # model.edge_silence: the id put before and after every target
        if config.model.edge_silence:
            if " " not in self.tokenizer.index:
                raise UserError("model.edge_silence needs a word separator (space) among the tokens; these texts "
                                "have none")
            self.edge_token = self.tokenizer.index[" "]
        datasets = []
        for manifest, training in ((config.data.train_manifest, True), (config.data.dev_manifest, False))[: 2 if main else 1]:
            dataset = load_dataset(config, manifest, self.tokenizer, training)
            if config.modality == "audio":
                dataset = usable_audio(dataset, config.data, manifest)
            dataset = keep_trainable(dataset, self.tokenizer, self.model, manifest)
            self.tokenizer.report_unknown(manifest)
            if not len(dataset):
                raise UserError(f"{manifest}: no usable samples (see the warnings above)")
            datasets.append(dataset)
        self.train_set, self.dev_set = datasets[0], datasets[1] if main else None

    def describe(self) -> str:
        params = sum(p.numel() for p in self.model.parameters())
        return (f"model: {params / 1e6:.2f} M parameters, vocabulary {len(self.tokenizer)}; train {len(self.train_set)}"
                f" samples, dev {len(self.dev_set)} samples")

    def initialize(self, device: torch.device, main: bool) -> None:
        if self.config.train.init_from:
            init_weights_from(self.model, self.config.train.init_from, self.tokenizer, announce=main)
        else:
            init_cmvn(self.model.frontend, self.config, self.train_set, device)

    def compute_loss(self, net, batch: dict, device: torch.device, amp_dtype) -> tuple:
        tokens, token_lens = batch["tokens"].to(device), batch["token_lens"].to(device)
        if self.edge_token is not None:
            tokens, token_lens = with_edge_token(tokens, token_lens, self.edge_token)
        with autocast(device, amp_dtype):
            log_probs, lens = net(batch["inputs"].to(device), batch["input_lens"].to(device))
        model = self.model
        if model.prior_scale:
            scores = model.alignment_scores(log_probs)  # (B, T, V), no longer normalised per frame
            loss = ctc_loss(scores, lens, tokens, token_lens) + ctc_gradient_fix(scores, lens)
            model.update_prior(log_probs, lens)
        else:
            loss = ctc_loss(log_probs, lens, tokens, token_lens)
        token_count = int(token_lens.sum())
        return loss / token_count, {"loss": float(loss.detach()), "count": token_count}

    def evaluate(self, loader, device: torch.device) -> dict:
        return evaluate(self.model, loader, self.tokenizer, device)

    def selection_key(self, dev: dict) -> tuple:
        return (-dev["rates"].cer,)  # the lowest dev CER

    def log_fields(self, sums: dict, dev: dict) -> dict:
        return {"train_loss": sums["loss"] / max(sums["count"], 1), "dev_loss": dev["loss"],
                "dev_cer": dev["rates"].cer, "dev_wer": dev["rates"].wer}

    def epoch_line(self, record: dict) -> str:
        return (f"train loss {record['train_loss']:.3f}, dev loss {record['dev_loss']:.3f}, dev CER "
                f"{100 * record['dev_cer']:.2f} %, WER {100 * record['dev_wer']:.2f} %")

    def best_line(self, key: tuple) -> str:
        return f"dev CER {-100 * key[0]:.2f} %"

    def checkpoint_extras(self) -> dict:
        return {"tokenizer": self.tokenizer.to_dict()}

    def bundle_vocabulary(self, best: dict) -> dict:
        return best["tokenizer"]

    def bundle_scores(self, key: tuple) -> dict:
        return {"dev_cer": -key[0]}


def train(config: Config, resume: bool = False, overwrite: bool = False) -> FitResult:
    """Train a CTC recognizer (see training.loop.fit): exp_dir gets last.pt, best.pt, train_log.jsonl and model.pt."""
    return fit(CTCTask(config), config, resume, overwrite)


def compute_cmvn_file(config: Config, output) -> int:
    """`speechrnn stats`: global CMVN statistics of config.data.train_manifest's features, written to `output`
    (for data.cmvn). Returns the number of samples."""
    tokenizer = Tokenizer.build(manifest_texts(config.data.train_manifest), config.text)
    dataset = load_dataset(config, config.data.train_manifest, tokenizer)
    frontend = build_model(len(tokenizer), config).frontend
    mean, std = compute_cmvn(frontend, make_loader(dataset, config, False, 0), torch.device("cpu"))
    atomic_save({"mean": mean, "std": std}, output)
    return len(dataset)
