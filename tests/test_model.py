"""speechrnn.model / rnn / decode: a padded batch gives exactly what each utterance alone gives."""

import itertools

import pytest
import torch

from speechrnn.data import collate
from speechrnn.decode import greedy_decode
from speechrnn.features import FeatureConfig
from speechrnn.model import ConvSubsampling, ModelConfig, build_speech_model
from speechrnn.rnn import RNN_CELLS, RNNConfig, make_cell, reverse_padded

VOCAB = 12
LENGTHS = (16000, 7321, 12345, 2999)  # samples at 16 kHz, deliberately unsorted and not multiples of the hop




@pytest.fixture(scope="module")
def waveforms():
    g = torch.Generator().manual_seed(0)
    wavs = []
    for n in LENGTHS:
        t = torch.arange(n) / 16000
        # a chirp plus noise, so features vary over time and the RNN state matters
        wavs.append(0.3 * torch.sin(2 * torch.pi * (200 + 800 * t) * t) + 0.05 * torch.randn(n, generator=g))
    return wavs


def batch_of(wavs):
    return collate([{"id": str(i), "inputs": w, "tokens": torch.zeros(0, dtype=torch.long), "text": ""}
                    for i, w in enumerate(wavs)])


@pytest.mark.parametrize("cell, bidirectional, conv_channels", list(itertools.product(
    ["lstm", "gru", "elman"], [True, False], [4, 0])))
def test_padded_batch_equals_each_utterance_alone(waveforms, cell, bidirectional, conv_channels):
    torch.manual_seed(1)
    config = ModelConfig(conv_channels=conv_channels, dropout=0.3,
                         rnn=RNNConfig(cell=cell, hidden_size=16, num_layers=2, bidirectional=bidirectional, dropout=0.3))
    model = build_speech_model(VOCAB, config, FeatureConfig(n_mels=40), None)
    g = torch.Generator().manual_seed(2)
    model.frontend.set_cmvn(torch.randn(40, generator=g) - 5, torch.rand(40, generator=g) + 1)  # not identity
    model.eval()
    batch = batch_of(waveforms)
    assert batch["inputs"].shape == (len(LENGTHS), max(LENGTHS))
    with torch.no_grad():
        log_probs, lens = model(batch["inputs"], batch["input_lens"])
        assert log_probs.shape[0] == len(LENGTHS) and log_probs.shape[2] == VOCAB
        assert lens.tolist() == model.output_lengths(batch["input_lens"]).tolist()
        assert int(lens.max()) == log_probs.shape[1]
        for row, wav in enumerate(waveforms):
            alone, alone_lens = model(wav[None], torch.tensor([len(wav)]))
            n = int(alone_lens[0])
            assert n == int(lens[row]) == alone.shape[1]
            torch.testing.assert_close(log_probs[row, :n], alone[0], rtol=0, atol=1e-5)
    # log-probs are normalised
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]), rtol=0, atol=1e-5)
    # and the test is not vacuous: different utterances give different outputs
    assert not torch.allclose(log_probs[0, :5], log_probs[1, :5])


def test_bidirectional_output_depends_on_future_but_unidirectional_does_not(waveforms):
    """A sanity check of the test above: the backward direction really sees later frames."""
    wav = waveforms[0]
    changed = wav.clone()
    changed[-4000:] += 0.5 * torch.randn(4000, generator=torch.Generator().manual_seed(3))
    for bidirectional in (True, False):
        torch.manual_seed(1)
        model = build_speech_model(VOCAB, ModelConfig(conv_channels=0, rnn=RNNConfig(
            hidden_size=8, num_layers=1, bidirectional=bidirectional)), FeatureConfig(n_mels=40), None).eval()
        with torch.no_grad():
            a, _ = model(wav[None], torch.tensor([len(wav)]))
            b, _ = model(changed[None], torch.tensor([len(wav)]))
        # frames 0..73 have windows that end before sample 12000, so their features are unchanged
        torch.testing.assert_close(model.frontend(wav[None], torch.tensor([len(wav)]))[0][0, :74],
                                   model.frontend(changed[None], torch.tensor([len(wav)]))[0][0, :74])
        early_differs = not torch.allclose(a[0, 64:74], b[0, 64:74], atol=1e-6)
        assert early_differs == bidirectional


def test_conv_output_lengths_formula():
    sizes = [1, 2, 3, 4, 5, 8, 9, 101]
    expected = [(((n - 1) // 2 + 1) - 1) // 2 + 1 for n in sizes]  # two (k=3, s=2, p=1) convs
    assert ConvSubsampling.output_lengths(torch.tensor(sizes)).tolist() == expected
    conv = ConvSubsampling(40, 3)
    assert conv.output_dim == 3 * 10  # 40 -> 20 -> 10 frequency bins
    for n, frames in zip(sizes, expected):
        out, out_lens = conv(torch.randn(1, n, 40), torch.tensor([n]))
        assert out.shape == (1, frames, conv.output_dim)
        assert int(out_lens[0]) == frames


# ---------------------------------------------------------------------------------------------- reverse_padded


def test_reverse_padded_reverses_within_length_and_leaves_padding():
    x = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)
    lens = torch.tensor([5, 3])
    y = reverse_padded(x, lens)
    assert torch.equal(y[0], x[0].flip(0))
    assert torch.equal(y[1, :3], x[1, :3].flip(0))
    assert torch.equal(y[1, 3:], x[1, 3:]), "padding stays where it is"


def test_reverse_padded_is_an_involution():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 9, 4, generator=g)
    lens = torch.tensor([9, 1, 4, 0, 7])
    y = reverse_padded(x, lens)
    assert torch.equal(reverse_padded(y, lens), x)
    assert not torch.equal(y, x)
    for b, n in enumerate(lens.tolist()):
        assert torch.equal(y[b, n:], x[b, n:])


# ---------------------------------------------------------------------------------------------- cells


def test_make_cell_unknown_name_lists_valid_cells():
    with pytest.raises(ValueError) as err:
        make_cell("transformer", 4, 4)
    message = str(err.value)
    assert "transformer" in message
    for name in RNN_CELLS:
        assert name in message


@pytest.mark.parametrize("name", sorted(RNN_CELLS))
def test_make_cell_gives_batch_first_unidirectional_layer(name):
    layer = make_cell(name, 6, 5)
    y = layer(torch.randn(2, 7, 6))[0]
    assert y.shape == (2, 7, 5)


# ---------------------------------------------------------------------------------------------- greedy decoding


def one_hot_log_probs(paths, vocab=5):
    """(B, T) best paths -> (B, T, V) log-probs whose argmax is the path."""
    best = torch.tensor(paths)
    probs = torch.full((*best.shape, vocab), 0.1 / (vocab - 1))
    probs.scatter_(2, best.unsqueeze(-1), 0.9)
    return probs.log()


def test_greedy_decode_merges_repeats_and_drops_blanks():
    paths = [
        [1, 1, 0, 1, 2, 2, 0, 0, 3],  # 1 1 | blank | 1 | 2 2 | blank blank | 3  -> 1 1 2 3
        [0, 2, 2, 2, 0, 3, 3, 4, 4],  # valid length 4: 0 2 2 2                   -> 2
        [0, 0, 0, 0, 0, 0, 0, 0, 0],  # all blank                                 -> nothing
    ]
    out = greedy_decode(one_hot_log_probs(paths), torch.tensor([9, 4, 9]))
    assert out == [[1, 1, 2, 3], [2], []]
    assert all(isinstance(t, int) for seq in out for t in seq)


def test_greedy_decode_ignores_frames_past_length():
    paths = [[3, 0, 4, 4, 1, 1]]
    assert greedy_decode(one_hot_log_probs(paths), torch.tensor([6])) == [[3, 4, 1]]
    assert greedy_decode(one_hot_log_probs(paths), torch.tensor([2])) == [[3]]
    assert greedy_decode(one_hot_log_probs(paths), torch.tensor([0])) == [[]]
