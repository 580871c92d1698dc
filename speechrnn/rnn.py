"""The recurrent layers, one registry from name to class, and the stacked (bi)directional encoder that runs
variable-length padded batches exactly as if each utterance were processed alone.

Why not pack_padded_sequence: on CPU packed input cannot use torch's mkldnn LSTM kernel, and a training step
of the AN4-sized BiLSTM is about 1.8x slower with it (benchmarks/bench_varlen_rnn.py).
Instead each direction is a unidirectional layer over the padded batch. The forward direction never
sees the padding before a valid step. The backward direction runs on each sequence reversed *within its
own length*, so its padding also comes last; the output is reversed back the same way.

Cells (RNN_CELLS): lstm, gru and elman are torch's own layers; jordan (JordanRNN) and indrnn (IndRNN) are written
here. Both do the input projection of all time steps as one matrix product and loop over time only for the
recurrence. Running a forward recurrence on through the padding after a sequence's length is harmless: those
outputs are ignored, and they stay finite (tanh is bounded; IndRNN clips its recurrent weights so a unit grows at
most 2x per indrnn_max_steps steps; relu elman/jordan are as stable as their weights, like nn.RNN's relu).
"""

import warnings
from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from .errors import ConfigError
from .features import length_mask


@dataclass
class RNNConfig:
    cell: str = field(default="lstm", metadata={"choices": lambda: sorted(RNN_CELLS)})  # the registry below
    hidden_size: int = field(default=256, metadata={"range": "> 0"})
    num_layers: int = field(default=3, metadata={"range": ">= 1"})
    bidirectional: bool = True
    dropout: float = field(default=0.1, metadata={"range": ">= 0 and < 1"})  # between layers
    nonlinearity: str = "tanh"  # elman and jordan: tanh | relu (indrnn is always relu)
    indrnn_max_steps: int = field(default=1000, metadata={"range": ">= 1"})  # indrnn: recurrent weights clipped to |u| <= 2 ** (1 / indrnn_max_steps)
    # unidirectional only: each output frame also sees this many later frames (the stack's outputs are delayed by
    # `lookahead` steps and zero frames are fed after the end), so a streaming decoder holds back that many frames
    lookahead: int = field(default=0, metadata={"range": ">= 0"})
    # unidirectional only: read the sequence right to left (outputs stay in forward time; no streaming). A right-to-
    # left aligner finds where sounds end as promptly as a left-to-right one finds where they start
    reverse: bool = False


NONLINEARITIES = ("tanh", "relu")


def _check_positive(cell: str, name: str, value, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"rnn cell {cell!r}: {name}={value!r} is invalid: it must be a positive integer ({meaning})")


def _check_sizes(cell: str, input_size, hidden_size) -> None:
    _check_positive(cell, "input_size", input_size, "the number of features the layer reads at each time step")
    _check_positive(cell, "hidden_size", hidden_size, "the number of units of the layer")


def _check_nonlinearity(cell: str, nonlinearity) -> None:
    if nonlinearity not in NONLINEARITIES:
        raise ConfigError(f"rnn cell {cell!r}: nonlinearity={nonlinearity!r} is invalid: it must be one of "
                          f"{', '.join(NONLINEARITIES)}")


# ---------------------------------------------------------------------------------------------- Jordan


class JordanRNN(nn.Module):
    """Jordan network: the context is the previous *output*.

        h_t = act(W x_t + U y_{t-1} + b)      state,  size hidden_size
        y_t = act(V h_t + c)                  output, size hidden_size;  y_0 = 0 (or hx)

    The state h has the same size as the output (no separate config value). act is tanh or relu. Parameters:
    weight_ih W (H, I), bias_ih b, weight_hh U (H, H), weight_ho V (H, H), bias_ho c. Initialisation keeps the
    signal's scale through the two maps per step: W uniform with variance 1/I (LeCun), U and V orthogonal, biases 0.
    (nn.RNN's uniform(-1/sqrt(H), 1/sqrt(H)) for all of them shrinks the variance about 5x per layer here, and a
    3-layer BiJordan on AN4 then never left CTC's all-blank plateau.) W x_t + b for all steps is one matrix
    product; the loop over time
    (two (B, H) x (H, H) products per step) is recorded by autograd. Called like nn.RNN(batch_first=True):
    layer(x (B, T, I), hx (1, B, H) = None) -> (y (B, T, H), y_T (1, B, H)).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        _check_sizes("jordan", input_size, hidden_size)
        _check_nonlinearity("jordan", nonlinearity)
        self.input_size, self.hidden_size, self.nonlinearity = input_size, hidden_size, nonlinearity
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.weight_ho = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ho = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = (3 / self.input_size) ** 0.5  # uniform(-a, a) has variance a^2 / 3 = 1 / I
        nn.init.uniform_(self.weight_ih, -bound, bound)
        nn.init.orthogonal_(self.weight_hh)
        nn.init.orthogonal_(self.weight_ho)
        nn.init.zeros_(self.bias_ih)
        nn.init.zeros_(self.bias_ho)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"

    def forward(self, x: Tensor, hx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        batch, steps, _ = x.shape
        act = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        projected = F.linear(x, self.weight_ih, self.bias_ih).transpose(0, 1)  # (T, B, H): W x_t + b, all t
        y = projected.new_zeros(batch, self.hidden_size) if hx is None else hx[0].to(projected.dtype)
        recurrent, output = self.weight_hh.t(), self.weight_ho.t()
        outputs = []
        for t in range(steps):
            h = act(torch.addmm(projected[t], y, recurrent))  # (B, H)
            y = act(torch.addmm(self.bias_ho, h, output))  # (B, H)
            outputs.append(y)
        if not outputs:
            return projected.new_zeros(batch, 0, self.hidden_size), y[None]
        return torch.stack(outputs, dim=1), y[None]


# ---------------------------------------------------------------------------------------------- IndRNN


def _indrnn_forward_loop(a: Tensor, u: Tensor, h0: Tensor) -> Tensor:
    """h_t = relu(a_t + u * h_{t-1}) for a (B, T, H); returns h (B, T, H). Two ops per step, written straight into
    the output (batch-first: each step is a strided (B, H) view, no transposed copies needed)."""
    out = torch.empty_like(a, memory_format=torch.contiguous_format)
    h = h0
    for t in range(a.shape[1]):
        step = out[:, t]
        torch.addcmul(a[:, t], u, h, out=step)
        h = step.relu_()
    return out


def _indrnn_backward_loop(grad: Tensor, active: Tensor, u: Tensor) -> Tensor:
    """dL/dz_t for z_t = a_t + u * h_{t-1}, h_t = relu(z_t), given grad = dL/dh_t from outside (B, T, H) and the
    mask active = (h_t > 0): dL/dz_t = (grad_t + u * dL/dz_{t+1}) * active_t, from the last step back."""
    grad_z = torch.empty_like(grad, memory_format=torch.contiguous_format)
    g = torch.zeros_like(grad_z[:, 0])
    for t in range(grad.shape[1] - 1, -1, -1):
        step = grad_z[:, t]
        torch.addcmul(grad[:, t], u, g, out=step)
        g = step.mul_(active[:, t])
    return grad_z


_LOOPS: dict = {}


def indrnn_loops(impl: str = "scripted"):
    """(forward loop, backward loop, description) of the IndRNN recurrence. impl "scripted": the loops compiled
    with torch.jit.script on first use (no Python per step); "python": the same functions run by Python. If
    TorchScript cannot compile them (it is deprecated in recent torch), "scripted" falls back to Python."""
    if impl == "python":
        return _indrnn_forward_loop, _indrnn_backward_loop, "python loops"
    if impl not in _LOOPS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch >= 2.10 marks torch.jit.script deprecated (FutureWarning)
                compiled = torch.jit.script(_indrnn_forward_loop), torch.jit.script(_indrnn_backward_loop)
            _LOOPS[impl] = (*compiled, "torchscript loops")
        except Exception as err:  # noqa: BLE001 - any failure to compile: the same math, in Python
            _LOOPS[impl] = (_indrnn_forward_loop, _indrnn_backward_loop,
                            f"python loops (torch.jit.script failed: {type(err).__name__})")
    return _LOOPS[impl]


class _IndRNNRecurrence(torch.autograd.Function):
    """h = relu(a_t + u * h_{t-1}) over time with a hand-written backward (both loops from indrnn_loops):
    autograd records one node for the whole sequence instead of a few per step."""

    @staticmethod
    def forward(ctx, a: Tensor, u: Tensor, h0: Tensor, impl: str) -> Tensor:  # a (B, T, H), u (H,), h0 (B, H)
        forward_loop, backward_loop, _ = indrnn_loops(impl)
        h = forward_loop(a, u, h0)  # (B, T, H)
        ctx.save_for_backward(h, u, h0)
        ctx.backward_loop = backward_loop
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        h, u, h0 = ctx.saved_tensors
        grad_z = ctx.backward_loop(grad, h > 0, u)  # (B, T, H); h > 0 is relu'(z)
        grad_u = grad_h0 = None
        if ctx.needs_input_grad[1]:  # dz_t/du = h_{t-1}
            grad_u = (grad_z[:, 1:] * h[:, :-1]).sum((0, 1)) + (grad_z[:, 0] * h0).sum(0)
        if ctx.needs_input_grad[2]:
            grad_h0 = grad_z[:, 0] * u
        return grad_z, grad_u, grad_h0, None


def _indrnn_autograd(a: Tensor, u: Tensor, h0: Tensor) -> Tensor:
    """The plain version, every step recorded by autograd (a reference for tests and the benchmark)."""
    h, outputs = h0, []
    for t in range(a.shape[1]):
        h = torch.relu(a[:, t] + u * h)
        outputs.append(h)
    return torch.stack(outputs, dim=1)


class IndRNN(nn.Module):
    """Independently recurrent network (Li et al. 2018, arXiv:1803.04831): each unit has one recurrent weight.

        h_t = relu(W x_t + b + u * h_{t-1}),  u (H,) elementwise;  h_0 = 0 (or hx);  output h (B, T, H)

    Clipping: the recurrence uses u clamped to |u| <= 2 ** (1 / max_steps) (the paper's |u| <= gamma ** (1 / T)
    with gamma = 2 and T = max_steps = RNNConfig.indrnn_max_steps), so a unit's memory of h_{t-k} is scaled by at
    most 2 ** (k / max_steps): at most 2x within max_steps steps, and never to inf over the padding. The clamp is applied in forward
    (recurrent_weight()), so the effective weight always obeys the bound without a hook in the training loop;
    the stored parameter may drift past it, where its gradient is zero, until weight decay brings it back.
    Init: W xavier-uniform, b = 0, u uniform in [0, 1] (the paper's choice for its long-memory tasks).

    W x_t + b for all steps is one matrix product; the elementwise recurrence over time is a custom autograd
    Function whose forward and backward loops are TorchScript-compiled (impl "scripted", the default).
    impl "python" runs the same Function with Python loops, impl "autograd" records every step with autograd
    (the slow reference; benchmarks/bench_indrnn.py compares them). Called like nn.RNN(batch_first=True):
    layer(x (B, T, I), hx (1, B, H) = None) -> (h (B, T, H), h_T (1, B, H)).
    """

    IMPLEMENTATIONS = ("scripted", "python", "autograd")

    def __init__(self, input_size: int, hidden_size: int, max_steps: int = 1000, impl: str = "scripted"):
        super().__init__()
        _check_sizes("indrnn", input_size, hidden_size)
        _check_positive("indrnn", "indrnn_max_steps", max_steps,
                        "the sequence length T that bounds the recurrent weights, |u| <= 2 ** (1 / T)")
        if impl not in self.IMPLEMENTATIONS:
            raise ValueError(f"IndRNN impl={impl!r}: must be one of {', '.join(self.IMPLEMENTATIONS)}")
        self.input_size, self.hidden_size, self.max_steps, self.impl = input_size, hidden_size, max_steps, impl
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.bias_ih = nn.Parameter(torch.empty(hidden_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight_ih)
        nn.init.zeros_(self.bias_ih)
        nn.init.uniform_(self.weight_hh, 0.0, 1.0)

    @property
    def recurrent_bound(self) -> float:
        return 2.0 ** (1.0 / self.max_steps)

    def recurrent_weight(self) -> Tensor:
        """u as the recurrence uses it: clamped to [-recurrent_bound, recurrent_bound]."""
        return self.weight_hh.clamp(-self.recurrent_bound, self.recurrent_bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, max_steps={self.max_steps}, impl={self.impl!r}"

    def forward(self, x: Tensor, hx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        batch, steps, _ = x.shape
        u = self.recurrent_weight()
        # the recurrence runs in the parameters' dtype (float32 also under autocast, where W x is bf16/fp16)
        a = F.linear(x, self.weight_ih, self.bias_ih).to(u.dtype)  # (B, T, H): W x_t + b, all t
        h0 = a.new_zeros(batch, self.hidden_size) if hx is None else hx[0].to(u.dtype)
        if steps == 0:
            return a, h0[None]
        if self.impl == "autograd":
            h = _indrnn_autograd(a, u, h0)
        else:
            h = _IndRNNRecurrence.apply(a, u, h0, self.impl)
        return h, h[:, -1][None]


# ---------------------------------------------------------------------------------------------- registry


def _torch_rnn(kind):
    def make(input_size: int, hidden_size: int, config: Optional[RNNConfig] = None) -> nn.Module:
        return kind(input_size, hidden_size, batch_first=True)

    return make


def _elman(input_size: int, hidden_size: int, config: Optional[RNNConfig] = None) -> nn.Module:
    nonlinearity = (config or RNNConfig()).nonlinearity
    _check_nonlinearity("elman", nonlinearity)
    return nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)


def _jordan(input_size: int, hidden_size: int, config: Optional[RNNConfig] = None) -> nn.Module:
    return JordanRNN(input_size, hidden_size, (config or RNNConfig()).nonlinearity)


def _indrnn(input_size: int, hidden_size: int, config: Optional[RNNConfig] = None) -> nn.Module:
    return IndRNN(input_size, hidden_size, (config or RNNConfig()).indrnn_max_steps)


# name -> factory(input_size, hidden_size, config: RNNConfig = None) returning a unidirectional, batch-first layer
# with the nn.LSTM call interface: layer(x (B, T, I)) -> (y (B, T, H), state). config carries the cell options
# (nonlinearity, indrnn_max_steps); None means RNNConfig's defaults.
RNN_CELLS = {
    "lstm": _torch_rnn(nn.LSTM),
    "gru": _torch_rnn(nn.GRU),
    "elman": _elman,
    "jordan": _jordan,
    "indrnn": _indrnn,
}


def make_cell(name: str, input_size: int, hidden_size: int, config: Optional[RNNConfig] = None) -> nn.Module:
    if name not in RNN_CELLS:
        raise ValueError(f"unknown rnn cell {name!r}; valid cells: {', '.join(sorted(RNN_CELLS))}")
    return RNN_CELLS[name](input_size, hidden_size, config)


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, F) within its own length; padding stays in place."""
    steps = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)  # (B, T)
    source = torch.where(length_mask(lens.to(x.device), x.shape[1]), lens[:, None] - 1 - steps, steps)  # (B, T)
    return x.gather(1, source.unsqueeze(-1).expand_as(x))


class StackedRNN(nn.Module):
    """num_layers x (bi)directional recurrent layers with dropout between them. (B, T, I) -> (B, T, D*H)."""

    def __init__(self, input_size: int, config: RNNConfig):
        super().__init__()
        self.config = config
        directions = 2 if config.bidirectional else 1
        self.output_size = directions * config.hidden_size
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        size = input_size
        for _ in range(config.num_layers):
            self.forward_layers.append(make_cell(config.cell, size, config.hidden_size, config))
            if config.bidirectional:
                self.backward_layers.append(make_cell(config.cell, size, config.hidden_size, config))
            size = self.output_size
        self.dropout = nn.Dropout(config.dropout)
        if isinstance(config.lookahead, bool) or not isinstance(config.lookahead, int) or config.lookahead < 0:
            raise ConfigError(f"model.rnn.lookahead={config.lookahead!r} is invalid: it must be a whole number of "
                              "frames >= 0")
        if config.reverse and config.bidirectional:
            raise ConfigError("model.rnn.reverse needs model.rnn.bidirectional=false: a bidirectional stack reads both "
                              "ways already")
        if config.lookahead and config.bidirectional:
            raise ConfigError("model.rnn.lookahead needs model.rnn.bidirectional=false: a bidirectional stack already "
                              "sees the whole sequence")

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        steps, lookahead = x.shape[1], self.config.lookahead
        if self.config.reverse:
            x = reverse_padded(x, lens)  # right to left (each output is turned back below)
        if lookahead:  # each sequence followed by `lookahead` zero frames, as it would be alone
            valid = length_mask(lens.to(x.device), steps)[:, :, None]  # (B, T) -> (B, T, 1)
            x = torch.cat([x * valid, x.new_zeros(x.shape[0], lookahead, x.shape[2])], dim=1)  # (B, T + k, I)
        for index, forward_layer in enumerate(self.forward_layers):
            if index > 0:
                x = self.dropout(x)
            outputs = [forward_layer(x)[0]]  # (B, T, H)
            if self.config.bidirectional:
                backward = self.backward_layers[index](reverse_padded(x, lens))[0]
                outputs.append(reverse_padded(backward, lens))  # (B, T, H)
            x = torch.cat(outputs, dim=-1)  # (B, T, D*H)
        x = x[:, lookahead:lookahead + steps]  # output t has seen inputs up to t + lookahead (t - lookahead reversed)
        return reverse_padded(x, lens) if self.config.reverse else x
