"""The handwriting synthesis network (Graves 2013, "Generating Sequences With Recurrent Neural Networks", section 5):
text in, pen offsets out.

    offsets (B, T, 3) --+--> LSTM 1 --h1--> attention window over the text's one-hot characters --w--+
    (dx, dy, pen_up)    |      ^-------------------------- w of the step before -------------------|
                        +--> LSTM 2..L (input: offsets, w, the layer below) --> all layers' h --> head

The window is a mixture of K Gaussians over character positions u = 1..U, its centre kappa only moving forwards:
phi(t, u) = sum_k alpha_k exp(-beta_k (kappa_k - u)^2), w_t = sum_u phi(t, u) onehot(c_u). The head gives, per
point, a mixture of M bivariate Gaussians over the next offset, the Bernoulli of the pen lifting after it, and the
Bernoulli of the writing being finished (the end of the text is a decision of the model, not a length).

Offsets are in units of the resampling step (data.spacing writing heights), so a step within a stroke has length
about 1. With model.attention false the network sees no text: the unconditional baseline of the same size.
The config schema (SynthConfig) is here too.
"""

import math
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ...config import OptimConfig, TrainConfig, bounded

TASK = "synthesis"  # bundle["extra"]["task"] of a synthesis bundle
KAPPA_STEP = 0.1  # the window's centre moves by KAPPA_STEP * exp(.) characters a point (about 1/17 on UNIPEN)


@dataclass
class SynthDataConfig:
    train_manifest: str = "???"  # ink manifests with "text" (words, or lines of words)
    dev_manifest: str = "???"  # writers not in train: model selection
    spacing: float = bounded(0.2, "> 0")  # resampling step, in writing heights
    max_points: int = bounded(1200, ">= 8")  # inks longer than this once resampled are left out of training
    min_count: int = bounded(1, ">= 1")  # characters seen fewer times in train texts are not in the alphabet
    max_frames: int = bounded(24000, "> 0")  # points per batch (padded)
    max_batch_size: int = bounded(128, ">= 1")
    num_workers: int = bounded(0, ">= 0")


@dataclass
class SynthModelConfig:
    hidden_size: int = bounded(256, "> 0")
    num_layers: int = bounded(2, ">= 1")  # LSTM layers; the first one drives the attention window
    mixtures: int = bounded(20, ">= 1")  # bivariate Gaussians of the output
    window_mixtures: int = bounded(10, ">= 1")  # Gaussians of the attention window
    attention: bool = True  # false: no text at all (the unconditional baseline)


@dataclass
class SynthConfig:
    data: SynthDataConfig = field(default_factory=SynthDataConfig)
    model: SynthModelConfig = field(default_factory=SynthModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


@dataclass
class SynthState:
    """Everything carried from one point to the next while writing."""

    first: tuple  # (h, c) of LSTM 1, each (B, H) (without attention (1, B, H), as for the upper layers)
    upper: list  # per upper layer the (h, c) of nn.LSTM, each (1, B, H)
    kappa: torch.Tensor  # (B, K) window centres
    window: torch.Tensor  # (B, V) the last window vector


class HandwritingSynthesis(nn.Module):
    """(B, T, 3) offsets (+ (B, U) character ids) -> (B, T, 2 + 6M) output parameters: see `split_params`."""

    def __init__(self, vocab_size: int, config: SynthModelConfig):
        super().__init__()
        self.config = config
        self.vocab_size = vocab_size if config.attention else 0
        hidden, window = config.hidden_size, self.vocab_size
        # without a window nothing feeds back into LSTM 1 within a step: it runs over the whole sequence at once
        self.first = nn.LSTMCell(3 + window, hidden) if config.attention else nn.LSTM(3, hidden, batch_first=True)
        self.window = nn.Linear(hidden, 3 * config.window_mixtures) if config.attention else None
        if self.window is not None:
            nn.init.constant_(self.window.bias[2 * config.window_mixtures:], -1.0)  # kappa moves slowly at first
        self.upper = nn.ModuleList(nn.LSTM(3 + window + hidden, hidden, batch_first=True)
                                   for _ in range(config.num_layers - 1))
        self.head = nn.Linear(hidden * config.num_layers, 2 + 6 * config.mixtures)
        with torch.no_grad():  # the pen lifts about every 20th point, the writing ends about every 100th
            self.head.bias[:2] = torch.tensor([-3.0, -4.5])

    def initial_state(self, batch: int, device) -> SynthState:
        hidden, zeros = self.config.hidden_size, lambda *shape: torch.zeros(*shape, device=device)
        first = (1, batch, hidden) if self.window is None else (batch, hidden)
        return SynthState((zeros(*first), zeros(*first)),
                          [(zeros(1, batch, hidden), zeros(1, batch, hidden)) for _ in self.upper],
                          zeros(batch, self.config.window_mixtures), zeros(batch, self.vocab_size))

    def attend(self, h: torch.Tensor, kappa: torch.Tensor, onehot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, H), kappa (B, K), onehot (B, U, V) (zero rows past each text's end) -> window (B, V), kappa (B, K)."""
        alpha, beta, step = self.window(h).exp().chunk(3, dim=-1)  # (B, K) each
        kappa = kappa + KAPPA_STEP * step
        positions = torch.arange(1, onehot.shape[1] + 1, device=h.device, dtype=h.dtype)  # (U,)
        distance = kappa.unsqueeze(2) - positions  # (B, K, 1) - (U,) -> (B, K, U)
        phi = (alpha.unsqueeze(2) * torch.exp(-beta.unsqueeze(2) * distance ** 2)).sum(1)  # (B, U)
        return torch.bmm(phi.unsqueeze(1), onehot).squeeze(1), kappa  # (B, 1, U) @ (B, U, V) -> (B, V)

    def window_position(self, state: SynthState) -> torch.Tensor:
        """(B,) where the window stands after the last step, in characters (1: the first): the centres of its
        Gaussians weighted by their heights."""
        alpha = self.window(state.first[0]).exp().chunk(3, dim=-1)[0]  # (B, K)
        return (alpha * state.kappa).sum(-1) / alpha.sum(-1)

    def onehot(self, text: torch.Tensor, text_lens: torch.Tensor) -> torch.Tensor:
        """(B, U) ids, (B,) lengths -> (B, U, V), rows past a text's end zero."""
        valid = torch.arange(text.shape[1], device=text.device) < text_lens.unsqueeze(1)  # (B, U)
        return nn.functional.one_hot(text, self.vocab_size).float() * valid.unsqueeze(2)

    def forward(self, offsets: torch.Tensor, text: Optional[torch.Tensor] = None,
                text_lens: Optional[torch.Tensor] = None, state: Optional[SynthState] = None,
                ) -> tuple[torch.Tensor, SynthState]:
        """Teacher-forced: offsets (B, T, 3) of the points written so far -> (B, T, 2 + 6M) parameters of each next
        point, and the state after the last one. Text: (B, U) ids and (B,) lengths (ignored without attention)."""
        batch, steps, _ = offsets.shape
        state = state or self.initial_state(batch, offsets.device)
        kappa, window = state.kappa, state.window
        if self.window is None:
            below, first_state = self.first(offsets, state.first)  # (B, T, H)
            context = [offsets]
        else:
            onehot = self.onehot(text, text_lens)
            (h, c), firsts, windows = state.first, [], []
            for t in range(steps):  # LSTM 1 and the window feed each other, so they go one point at a time
                h, c = self.first(torch.cat([offsets[:, t], window], dim=1), (h, c))
                window, kappa = self.attend(h, kappa, onehot)
                firsts.append(h)
                windows.append(window)
            below, first_state = torch.stack(firsts, dim=1), (h, c)  # T x (B, H) -> (B, T, H)
            context = [offsets, torch.stack(windows, dim=1)]  # T x (B, V) -> (B, T, V)
        hiddens, upper_states = [below], []
        for layer, layer_state in zip(self.upper, state.upper):
            below, layer_state = layer(torch.cat(context + [below], dim=2), layer_state)  # (B, T, H)
            hiddens.append(below)
            upper_states.append(layer_state)
        params = self.head(torch.cat(hiddens, dim=2))  # (B, T, L * H) -> (B, T, 2 + 6M)
        return params, SynthState(first_state, upper_states, kappa, window)


def split_params(params: torch.Tensor, bias: float = 0.0) -> tuple[torch.Tensor, ...]:
    """(..., 2 + 6M) -> pen logit, finish logit (...), mixture log-weights, mu_x, mu_y, log sigma_x, log sigma_y,
    rho (..., M). `bias` >= 0 sharpens the mixture weights and narrows the Gaussians (Graves's sampling bias)."""
    pen, finish = params[..., 0], params[..., 1]
    logits, mu_x, mu_y, log_sx, log_sy, rho = params[..., 2:].chunk(6, dim=-1)
    log_weights = torch.log_softmax(logits * (1 + bias), dim=-1)
    return pen, finish, log_weights, mu_x, mu_y, log_sx - bias, log_sy - bias, torch.tanh(rho) * 0.999


def point_nll(params: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """params (B, T, 2 + 6M), targets (B, T, 3) = next offset and pen lift -> per point (B, T): the offset's negative
    log density (nats, offsets in units of the step), the pen lift's negative log-likelihood, and the finish
    logit (its target is the caller's: 1 at each ink's last point)."""
    pen, finish, log_w, mu_x, mu_y, log_sx, log_sy, rho = split_params(params)
    zx = (targets[..., :1] - mu_x) / log_sx.exp()  # (B, T, 1) against (B, T, M)
    zy = (targets[..., 1:2] - mu_y) / log_sy.exp()
    one_minus = 1 - rho ** 2
    log_density = (-math.log(2 * math.pi) - log_sx - log_sy - 0.5 * torch.log(one_minus)
                   - (zx ** 2 + zy ** 2 - 2 * rho * zx * zy) / (2 * one_minus))  # (B, T, M)
    offset_nll = -torch.logsumexp(log_w + log_density, dim=-1)  # (B, T)
    pen_nll = nn.functional.binary_cross_entropy_with_logits(pen, targets[..., 2], reduction="none")
    return offset_nll, pen_nll, finish
