"""speechrnn.rnn's hand-written cells (jordan, indrnn): the defining equations, gradients, the padded-batch scheme of
StackedRNN, IndRNN's clipping, and clear errors for impossible configs."""

import pytest
import torch
from torch.autograd import gradcheck
from torch.func import functional_call

from speechrnn.errors import ConfigError
from speechrnn.rnn import RNN_CELLS, IndRNN, JordanRNN, RNNConfig, StackedRNN, indrnn_loops, make_cell

B, T, I, H = 2, 4, 3, 5


def tiny_input(dtype=torch.float32, seed=0):
    return torch.randn(B, T, I, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def spread_recurrent_weights(layer: IndRNN, seed=0):
    """u with both signs (the init is in [0, 1]), inside the clipping bound."""
    with torch.no_grad():
        layer.weight_hh.copy_(torch.rand(layer.hidden_size, generator=torch.Generator().manual_seed(seed)) * 1.8 - 0.9)


# ---------------------------------------------------------------------------------------------- the equations


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_jordan_matches_its_equation_step_by_step(nonlinearity):
    torch.manual_seed(0)
    layer = JordanRNN(I, H, nonlinearity)
    x = tiny_input()
    y0 = torch.randn(1, B, H)
    act = torch.tanh if nonlinearity == "tanh" else torch.relu
    W, b, U, V, c = layer.weight_ih, layer.bias_ih, layer.weight_hh, layer.weight_ho, layer.bias_ho
    with torch.no_grad():
        for hx in (None, y0):
            out, state = layer(x, hx)
            assert out.shape == (B, T, H) and state.shape == (1, B, H)
            for n in range(B):
                y = torch.zeros(H) if hx is None else hx[0, n]
                for t in range(T):
                    h = act(W @ x[n, t] + U @ y + b)
                    y = act(V @ h + c)
                    torch.testing.assert_close(out[n, t], y, rtol=0, atol=1e-6)
                torch.testing.assert_close(state[0, n], y, rtol=0, atol=1e-6)
        # the recurrence matters: the same input at step 0 and step 1 gives different outputs
        assert not torch.allclose(layer(x[:, :1].repeat(1, 2, 1))[0][:, 0], layer(x[:, :1].repeat(1, 2, 1))[0][:, 1])


@pytest.mark.parametrize("impl", IndRNN.IMPLEMENTATIONS)
def test_indrnn_matches_its_equation_step_by_step(impl):
    torch.manual_seed(0)
    layer = IndRNN(I, H, impl=impl)
    spread_recurrent_weights(layer)
    x = tiny_input()
    h0 = torch.rand(1, B, H)
    W, b, u = layer.weight_ih, layer.bias_ih, layer.weight_hh
    with torch.no_grad():
        for hx in (None, h0):
            out, state = layer(x, hx)
            assert out.shape == (B, T, H) and state.shape == (1, B, H)
            for n in range(B):
                h = torch.zeros(H) if hx is None else hx[0, n]
                for t in range(T):
                    h = torch.stack([torch.relu(W[j] @ x[n, t] + b[j] + u[j] * h[j]) for j in range(H)])
                    torch.testing.assert_close(out[n, t], h, rtol=0, atol=1e-6)
                torch.testing.assert_close(state[0, n], h, rtol=0, atol=1e-6)
            assert (out > 0).any() and (out == 0).any(), "both sides of the relu are exercised"


def test_indrnn_fast_loop_is_compiled():
    assert indrnn_loops("scripted")[2] == "torchscript loops", indrnn_loops("scripted")[2]


# ---------------------------------------------------------------------------------------------- gradients


def gradcheck_layer(layer, x, hx=None):
    """gradcheck w.r.t. the input, hx (if given) and every parameter, in double."""
    names = [name for name, _ in layer.named_parameters()]
    params = [p.detach().clone().requires_grad_() for _, p in layer.named_parameters()]
    x = x.clone().requires_grad_()
    inputs = (x, *params) if hx is None else (x, hx.clone().requires_grad_(), *params)

    def run(x, *rest):
        state, rest = (None, rest) if hx is None else (rest[0], rest[1:])
        out, last = functional_call(layer, dict(zip(names, rest)), (x, state))
        return out, last

    assert gradcheck(run, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_jordan_gradcheck(nonlinearity):
    torch.manual_seed(0)
    layer = JordanRNN(I, H, nonlinearity).double()
    gradcheck_layer(layer, tiny_input(torch.double))
    gradcheck_layer(layer, tiny_input(torch.double, seed=1), hx=torch.randn(1, B, H, dtype=torch.double))


@pytest.mark.parametrize("impl", IndRNN.IMPLEMENTATIONS)
def test_indrnn_gradcheck(impl):
    torch.manual_seed(0)
    layer = IndRNN(I, H, impl=impl).double()
    spread_recurrent_weights(layer)
    gradcheck_layer(layer, tiny_input(torch.double))
    gradcheck_layer(layer, tiny_input(torch.double, seed=1), hx=torch.rand(1, B, H, dtype=torch.double))


def test_indrnn_implementations_agree_on_a_longer_sequence():
    torch.manual_seed(0)
    x = torch.randn(3, 60, 7)
    results = []
    for impl in IndRNN.IMPLEMENTATIONS:
        torch.manual_seed(1)
        layer = IndRNN(7, 16, impl=impl)
        out = layer(x)[0]
        (out * torch.cos(out)).sum().backward()
        results.append((out, *(p.grad for p in layer.parameters())))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- padded batches


@pytest.mark.parametrize("cell", ["jordan", "indrnn"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_stacked_padded_batch_equals_each_sequence_alone(cell, bidirectional):
    torch.manual_seed(0)
    rnn = StackedRNN(6, RNNConfig(cell=cell, hidden_size=5, num_layers=2, bidirectional=bidirectional, dropout=0.3))
    rnn.eval()
    lens = torch.tensor([7, 3, 5, 1])
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(lens), 7, 6, generator=g)
    valid = torch.arange(7)[None, :] < lens[:, None]
    x[~valid] = 100 * torch.randn(int((~valid).sum()), 6, generator=g)  # padding is garbage, and must not matter
    x.requires_grad_()
    out = rnn(x, lens)
    assert out.shape == (len(lens), 7, rnn.output_size)
    assert torch.isfinite(out).all()
    loss = (out * valid[..., None]).pow(2).sum()  # only the valid frames count, like CTC
    batch_grads = torch.autograd.grad(loss, [x, *rnn.parameters()])
    alone_grads = [torch.zeros_like(p) for p in rnn.parameters()]
    for n, length in enumerate(lens.tolist()):
        xn = x[n : n + 1, :length].detach().requires_grad_()
        alone = rnn(xn, lens[n : n + 1])
        torch.testing.assert_close(out[n, :length], alone[0], rtol=0, atol=1e-5)
        grads = torch.autograd.grad(alone.pow(2).sum(), [xn, *rnn.parameters()])
        torch.testing.assert_close(batch_grads[0][n, :length], grads[0][0], rtol=1e-4, atol=1e-4)
        for total, grad in zip(alone_grads, grads[1:]):
            total += grad
    assert batch_grads[0][~valid].abs().max() == 0, "padding gets no gradient"
    for batch_grad, total in zip(batch_grads[1:], alone_grads):
        torch.testing.assert_close(batch_grad, total, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(out[0, :1], out[2, :1]), "different sequences give different outputs"


@pytest.mark.parametrize("cell", ["jordan", "indrnn"])
def test_cells_run_under_cpu_autocast(cell):
    torch.manual_seed(0)
    rnn = StackedRNN(6, RNNConfig(cell=cell, hidden_size=8, num_layers=2))
    x = torch.randn(3, 9, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = rnn(x, torch.tensor([9, 4, 6]))
    out.float().sum().backward()
    assert torch.isfinite(out.float()).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in rnn.parameters())


# ---------------------------------------------------------------------------------------------- clipping


def test_indrnn_clipping_bounds_the_recurrent_weights():
    layer = IndRNN(1, 4, max_steps=10)
    bound = 2 ** (1 / 10)
    assert layer.recurrent_bound == pytest.approx(bound)
    with torch.no_grad():
        layer.weight_ih.zero_()
        layer.bias_ih.fill_(1.0)
        layer.weight_hh.copy_(torch.tensor([3.0, -3.0, 0.5, 1.05]))
    u = layer.recurrent_weight()
    torch.testing.assert_close(u, torch.tensor([bound, -bound, 0.5, 1.05]))
    assert u.abs().max() <= bound

    steps = 30
    out = layer(torch.zeros(1, steps, 1))[0][0]  # h_t = relu(1 + u h_{t-1})
    h, expected = torch.zeros(4), []
    for _ in range(steps):
        h = torch.relu(1 + u.detach() * h)
        expected.append(h)
    torch.testing.assert_close(out, torch.stack(expected), rtol=1e-5, atol=0)
    # the clipped unit grows at most 2x per max_steps steps; unclipped it would be 3 ** 29 ~ 7e13
    assert out[-1, 0] <= steps * 2 ** (steps / 10)
    assert out[-1, 0].item() == pytest.approx(sum(bound ** k for k in range(steps)), rel=1e-5)
    out[-1].sum().backward()
    assert layer.weight_hh.grad[0] == 0 and layer.weight_hh.grad[1] == 0, "past the bound u gets no gradient"
    assert layer.weight_hh.grad[3] != 0


def test_indrnn_stays_finite_over_long_padding():
    layer = IndRNN(2, 3)  # default max_steps 1000
    with torch.no_grad():
        layer.weight_ih.fill_(0.5)
        layer.weight_hh.copy_(torch.tensor([50.0, -50.0, 1.0]))
    x = torch.ones(1, 3000, 2)  # every pre-activation starts at 1
    out = layer(x)[0]
    assert torch.isfinite(out).all() and out.max() < 3000 * 2 ** 3  # unclipped, unit 0 would be 50 ** 2999 = inf
    assert out[0, -1, 0] > 3000, "the clipped unit does grow"


# ---------------------------------------------------------------------------------------------- bad configs


@pytest.mark.parametrize("cell, args, config, expected", [
    ("indrnn", (3, 0), None, "'indrnn': hidden_size=0 is invalid: it must be a positive integer"),
    ("indrnn", (-2, 4), None, "'indrnn': input_size=-2 is invalid: it must be a positive integer"),
    ("jordan", (3, -1), None, "'jordan': hidden_size=-1 is invalid: it must be a positive integer"),
    ("jordan", (0, 4), None, "'jordan': input_size=0 is invalid: it must be a positive integer"),
    ("indrnn", (3, 4), RNNConfig(indrnn_max_steps=0), "'indrnn': indrnn_max_steps=0 is invalid: it must be a positive"),
    ("jordan", (3, 4), RNNConfig(nonlinearity="sigmoid"),
     "'jordan': nonlinearity='sigmoid' is invalid: it must be one of tanh, relu"),
    ("elman", (3, 4), RNNConfig(nonlinearity="gelu"),
     "'elman': nonlinearity='gelu' is invalid: it must be one of tanh, relu"),
])
def test_impossible_cell_config_fails_at_construction_with_one_clear_message(cell, args, config, expected):
    with pytest.raises(ConfigError) as err:
        make_cell(cell, *args, config)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_stacked_rnn_with_impossible_size_names_the_value():
    with pytest.raises(ConfigError, match=r"hidden_size=0 is invalid.*number of units"):
        StackedRNN(8, RNNConfig(cell="indrnn", hidden_size=0))
    with pytest.raises(ConfigError, match=r"indrnn_max_steps=-5 is invalid.*2 \*\* \(1 / T\)"):
        StackedRNN(8, RNNConfig(cell="indrnn", indrnn_max_steps=-5))


def test_unknown_cell_lists_the_new_cells():
    with pytest.raises(ValueError, match="unknown rnn cell 'elmann'") as err:
        make_cell("elmann", 3, 4)
    valid = str(err.value).split("valid cells: ")[1].split(", ")
    assert valid == sorted(RNN_CELLS) and {"jordan", "indrnn"} <= set(valid)


def test_config_accepts_the_new_cells_and_options():
    from speechrnn.config import CHOICES, load_config

    assert CHOICES["model.rnn.cell"] == sorted(RNN_CELLS)
    required = ["data.train_manifest=a.jsonl", "data.dev_manifest=b.jsonl"]
    config = load_config(None, required + ["model.rnn.cell=indrnn", "model.rnn.indrnn_max_steps=500"])
    assert config.model.rnn.cell == "indrnn" and config.model.rnn.indrnn_max_steps == 500
    config = load_config(None, required + ["model.rnn.cell=jordan", "model.rnn.nonlinearity=relu"])
    assert isinstance(make_cell(config.model.rnn.cell, 4, 4, config.model.rnn), JordanRNN)
