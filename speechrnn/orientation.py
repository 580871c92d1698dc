"""Which way is up: ink whose source does not say whether its y axis points up or down.

Readers record what a format states (Ink.y_down: UNIPEN y up, IAM-OnDB y down, the JSON form's "y_down", InkML's
Y channel orientation); `speechrnn transcribe --y-up/--y-down` and Recognizer.load(orientation=...) override it.
When nothing says, the recognizer reads the ink both ways and keeps the reading that looks upright:
  - with a probe stored in the bundle (`speechrnn orientation BUNDLE TRAIN_MANIFEST`, KEY in its extra): a
    logistic regression on the recognizer's own encoder states (their mean and maximum over frames) and its
    best-path confidence, fitted on training inks read both ways, scores how upside down a reading looks; the
    reading with the lower score wins;
  - without one: the reading whose best path is the more probable per frame (mean of the frames' top log-prob).
Measured on 600 UNIPEN dev words (held-out writers) read both ways, the word model picked the right way for
97.7 % of words by confidence alone, 99.3 % with the probe; recipes/unipen/RESULTS.md has the line model's figures.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from .bundle import update_extra
from .data import read_manifest
from .errors import UserError
from .features import length_mask, pad_inputs
from .ink import featurize, load_ink
from .model import CTCModel

KEY = "orientation"


@torch.no_grad()
def reading_summary(model: CTCModel, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Per input (ink features (T, F)): its encoder states' mean and maximum over frames and its mean best-path
    log-prob per frame -> (B, 2H + 1)."""
    padded, lens = pad_inputs(inputs)  # (B, T, F), (B,)
    feats, feat_lens = model.frontend(padded, lens)  # (B, T, F) -> (B, T', F')
    hidden, out_lens = model.encoder(feats, feat_lens)  # (B, T'', H)
    valid = length_mask(out_lens, hidden.shape[1])[..., None]  # (B, T'', 1)
    count = out_lens.clamp(min=1)[:, None].to(hidden.dtype)  # (B, 1)
    mean = (hidden * valid).sum(dim=1) / count  # (B, H)
    peak = hidden.masked_fill(~valid, float("-inf")).amax(dim=1)  # (B, H)
    best = model.head(hidden).float().log_softmax(dim=-1).amax(dim=-1)  # (B, T'')
    confidence = (best * valid[..., 0]).sum(dim=1, keepdim=True) / count  # (B, 1)
    return torch.cat([mean, peak, confidence], dim=1).float()


def upside_down_scores(model: CTCModel, inputs: list[torch.Tensor], probe: dict | None) -> torch.Tensor:
    """(B,) how upside down each reading looks: the probe's logit, or minus the best-path confidence without one."""
    summary = reading_summary(model, inputs)  # (B, 2H + 1)
    if probe is None:
        return -summary[:, -1]
    return (summary - probe["mean"]) / probe["std"] @ probe["weight"] + probe["bias"]


def choose_y_down(model: CTCModel, both: tuple[torch.Tensor, torch.Tensor], probe: dict | None) -> bool:
    """Given the features of one ink read y-up and read y-down, whether y-down is the upright reading."""
    up, down = upside_down_scores(model, list(both), probe).tolist()
    return down < up


def fit_probe(model: CTCModel, config, manifest: str, count: int = 8000, seed: int = 0,
              batch: int = 64) -> dict:
    """The orientation probe of `model` (modality ink), fitted on up to `count` inks of a training manifest, each
    read as its data is oriented (config.ink.flip_y) and turned over: L2-regularised logistic regression (LBFGS)
    on standardised reading summaries. Returns its weights and its accuracy on the inks it was fitted on."""
    entries = read_manifest(manifest, ("text",), allow_empty=False)
    chosen = np.random.default_rng(seed).permutation(len(entries))[:count]
    summaries, labels = [], []
    model.eval()
    for start in range(0, len(chosen), batch):
        inputs = []
        for index in chosen[start:start + batch]:
            ink = load_ink(entries[int(index)])
            for turned in (False, True):
                y_down = config.ink.flip_y != turned  # the data's own convention, then turned over
                inputs.append(torch.from_numpy(featurize(ink, config.ink, y_down=y_down)).float())
                labels.append(float(turned))
        summaries.append(reading_summary(model, inputs))
        print(f"\rorientation: {min(start + batch, len(chosen))} / {len(chosen)} inks read both ways", end="",
              file=sys.stderr)
    print(file=sys.stderr)
    x, y = torch.cat(summaries), torch.tensor(labels)
    mean, std = x.mean(dim=0), x.std(dim=0) + 1e-6
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def loss_fn():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ weight + bias, y) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(loss_fn)
    with torch.no_grad():
        scores = (x @ weight + bias).view(-1, 2)  # (inks, [as written, turned over])
    return {"mean": mean, "std": std, "weight": weight.detach(), "bias": bias.detach(), "inks": len(chosen),
            "fit_accuracy": float((scores[:, 1] > scores[:, 0]).float().mean())}


def store_probe(bundle: str, probe: dict) -> None:
    update_extra(bundle, **{KEY: probe})


def stored_probe(extra: dict) -> dict | None:
    probe = extra.get(KEY)
    if probe is not None and not isinstance(probe, dict):
        raise UserError(f"the bundle's {KEY} entry is not an orientation probe; fit it again with "
                        f"`speechrnn orientation`")
    return probe
