"""Aligners: `train.init_from` (a unidirectional model started from a bidirectional bundle), `speechrnn
add-aligner` (word times from a second model stored in the bundle) and what bad pairs get. Random weights: these
tests check what goes where; recipes/an4/aligner.sh measures the times against the audio."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.align import align
from speechrnn.bundle import load_bundle, repack_bundle, save_bundle
from speechrnn.config import load_config, to_dict
from speechrnn.errors import ConfigError, UserError
from speechrnn.model import build_model
from speechrnn.recognizer import Recognizer
from speechrnn.text import Tokenizer
from speechrnn.tasks.ctc import init_weights_from

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TEXTS = ["YES NO ENTER RUBOUT"]


def make_bundle(path: Path, overrides: list[str], seed: int, texts=TEXTS) -> Path:
    config = load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml",
                         ["model.conv_channels=4", "model.rnn.hidden_size=16", "model.rnn.num_layers=2", *overrides])
    tokenizer = Tokenizer.build(texts, config.text)
    torch.manual_seed(seed)
    model = build_model(len(tokenizer), config)
    with torch.no_grad():
        model.head.bias[0] -= 2.0  # fewer blanks: random weights then emit some characters
        if model.prior_scale:
            model.log_prior.copy_((3 * torch.randn(len(tokenizer))).log_softmax(0))  # not uniform: it matters
    save_bundle(path, model.state_dict(), to_dict(config), tokenizer.to_dict(), {"dev_cer": 0.5})
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("aligner")
    recognizer = make_bundle(folder / "recognizer.pt", [], seed=0)
    aligner = make_bundle(folder / "aligner.pt", ["model.rnn.bidirectional=false", "model.rnn.lookahead=2"], seed=1)
    return recognizer, aligner


@pytest.fixture(scope="module")
def wav(shared_data) -> Path:
    return sorted((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav"))[0]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], env=ENV, capture_output=True, text=True)


def test_init_from_takes_the_forward_direction(pair):
    recognizer, _ = pair
    config = load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml",
                         ["model.conv_channels=4", "model.rnn.hidden_size=16", "model.rnn.num_layers=2",
                          "model.rnn.bidirectional=false", "model.rnn.lookahead=2"])
    tokenizer = Tokenizer.build(TEXTS, config.text)
    model = build_model(len(tokenizer), config)
    init_weights_from(model, str(recognizer), tokenizer, announce=False)
    source = load_bundle(recognizer)["state_dict"]
    target = model.state_dict()
    assert torch.equal(target["encoder.rnn.forward_layers.0.weight_ih_l0"], source["encoder.rnn.forward_layers.0.weight_ih_l0"])
    # layer 1 reads only the forward half of layer 0's (forward, backward) outputs; the head likewise
    assert torch.equal(target["encoder.rnn.forward_layers.1.weight_ih_l0"],
                       source["encoder.rnn.forward_layers.1.weight_ih_l0"][:, :16])
    assert torch.equal(target["head.weight"], source["head.weight"][:, :16])
    assert torch.equal(target["frontend.cmvn_mean"], source["frontend.cmvn_mean"])
    config.model.rnn.reverse = True  # a right-to-left model takes the backward direction and its half
    reverse = build_model(len(tokenizer), config)
    init_weights_from(reverse, str(recognizer), tokenizer, announce=False)
    assert torch.equal(reverse.state_dict()["encoder.rnn.forward_layers.1.weight_ih_l0"],
                       source["encoder.rnn.backward_layers.1.weight_ih_l0"][:, 16:])
    assert torch.equal(reverse.state_dict()["head.weight"], source["head.weight"][:, 16:])
    other = Tokenizer.build(["SOMETHING ELSE"], config.text)
    with pytest.raises(UserError, match="vocabulary is not part of this run's"):
        init_weights_from(build_model(len(other), config), str(recognizer), other, announce=False)


@pytest.mark.parametrize("objective", [[], ["model.prior_scale=0.5", "model.edge_silence=true"]],
                         ids=["plain", "prior+edges"])
def test_word_times_come_from_the_aligner_and_confidences_from_the_recognizer(pair, wav, tmp_path, objective):
    recognizer_path, _ = pair
    aligner_path = make_bundle(tmp_path / "aligner.pt", ["model.rnn.bidirectional=false", "model.rnn.lookahead=2",
                                                         *objective], seed=1)
    joined = tmp_path / "joined.pt"
    result = cli("add-aligner", recognizer_path, aligner_path, "-o", joined)
    assert result.returncode == 0, result.stderr
    assert "lookahead 2" in result.stderr

    plain = Recognizer.load(recognizer_path, decoding="greedy")
    with_aligner = Recognizer.load(joined, decoding="greedy")
    assert plain.aligner is None and with_aligner.aligner is not None
    (before,) = plain.transcribe([wav], timestamps=True)
    (after,) = with_aligner.transcribe([wav], timestamps=True)
    assert after.text == before.text and len(after.words) == len(before.words) >= 2
    assert [w.confidence for w in after.words] == [w.confidence for w in before.words]

    aligner = Recognizer.load(aligner_path, decoding="greedy")  # the aligner alone, aligning the same text
    x = aligner.load_input(wav)
    with torch.no_grad():
        log_probs, lens = aligner.model(x[None], torch.tensor([len(x)]))
    tokens = plain.tokenizer.encode(before.text)
    if objective:  # the prior shifts the scores, and the text is aligned between two separators
        space = [plain.tokenizer.index[" "]]
        tokens, log_probs = space + tokens + space, log_probs - 0.5 * aligner.model.log_prior
    expected = align(log_probs[0, : lens[0]], tokens, plain.tokenizer, plain.shift).words
    times = [t for w in after.words for t in (w.start, w.end)]
    assert times == pytest.approx([t for w in expected for t in (w.start, w.end)], abs=1e-6)
    assert times != [t for w in before.words for t in (w.start, w.end)]

    int8 = tmp_path / "int8.pt"  # shipping an int8 bundle keeps its aligner
    repack_bundle(joined, int8, "int8")
    assert Recognizer.load(int8, decoding="greedy").aligner is not None


def test_add_aligner_refuses_a_mismatched_pair(pair, tmp_path):
    recognizer, _ = pair
    other_vocabulary = make_bundle(tmp_path / "v.pt", ["model.rnn.bidirectional=false"], 2, ["QUITE DIFFERENT"])
    other_rate = make_bundle(tmp_path / "r.pt", ["model.rnn.bidirectional=false", "model.conv_channels=0"], 2)
    both_ways = make_bundle(tmp_path / "b.pt", [], 2)
    for aligner, reason in ((other_vocabulary, "vocabulary differs"), (other_rate, "frame rate"),
                            (both_ways, "a bidirectional model")):
        result = cli("add-aligner", recognizer, aligner, "-o", tmp_path / "out.pt")
        assert result.returncode != 0
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert not (tmp_path / "out.pt").exists()


def test_ctc_on_unnormalised_scores_gets_its_true_gradient():
    from speechrnn.tasks.ctc import ctc_gradient_fix

    torch.manual_seed(0)
    scores = torch.randn(2, 7, 5, dtype=torch.double, requires_grad=True)  # (B, T, V), not log-softmax
    targets, lens, target_lens = torch.tensor([[1, 2, 2], [3, 1, 0]]), torch.tensor([7, 5]), torch.tensor([3, 2])

    def loss(x):
        plain = torch.nn.functional.ctc_loss(x.transpose(0, 1), targets, lens, target_lens, reduction="sum")
        return plain + ctc_gradient_fix(x, lens)

    assert torch.autograd.gradcheck(loss, (scores,))
    plain = torch.nn.functional.ctc_loss(scores.transpose(0, 1), targets, lens, target_lens, reduction="sum")
    assert float(loss(scores).detach()) == pytest.approx(float(plain.detach()))  # the fix changes no value
    assert not torch.autograd.gradcheck(lambda x: torch.nn.functional.ctc_loss(
        x.transpose(0, 1), targets, lens, target_lens, reduction="sum"), (scores,), raise_exception=False)


def test_prior_follows_the_mean_posterior_of_valid_frames():
    config = load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml",
                         ["model.conv_channels=4", "model.rnn.hidden_size=8", "model.rnn.num_layers=1",
                          "model.prior_scale=0.5"])
    model = build_model(3, config)
    log_probs = torch.log(torch.tensor([[[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.0, 0.0, 1.0]]]))  # (1, T=3, V=3)
    for _ in range(2000):
        model.update_prior(log_probs, torch.tensor([2]))  # the third frame is padding
    assert model.log_prior.exp().tolist() == pytest.approx([0.5, 0.35, 0.15], abs=1e-4)
    assert torch.allclose(model.alignment_scores(log_probs), log_probs - 0.5 * model.log_prior)
    assert "log_prior" in model.state_dict()


def test_edge_silence_puts_the_separator_around_each_target():
    from speechrnn.tasks.ctc import with_edge_token

    tokens = torch.tensor([[3, 4, 5], [6, 0, 0]])  # (B, L) padded with 0
    edged, lens = with_edge_token(tokens, torch.tensor([3, 1]), 1)
    assert edged.tolist() == [[1, 3, 4, 5, 1], [1, 6, 1, 0, 0]] and lens.tolist() == [5, 3]


def test_a_word_ends_no_earlier_than_reach_frames_before_the_separator_after_it():
    """A right-to-left aligner's path: separator, the word's letters on their onsets, blanks over the fading tail,
    the separator where the word comes in reach. The word ends at its last letter, or `end_reach` frames before
    that separator, whichever is later; the closing word of a text without a final separator keeps its letter end."""
    tokenizer = Tokenizer.build(["AB C"], load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml").text)
    sep, a, b, c = (tokenizer.index[ch] for ch in " ABC")
    path = [sep, sep, a, b, 0, 0, 0, 0, 0, 0, sep, c, 0, 0, sep, 0]  # frame -> token, 0 = blank
    log_probs = torch.full((len(path), len(tokenizer)), -20.0)
    log_probs[torch.arange(len(path)), torch.tensor(path)] = 0.0  # (T, V): that path, nothing else
    tokens = [sep, a, b, sep, c, sep]
    ends = {reach: [(w.text, round(w.end / 0.04)) for w in align(log_probs, tokens, tokenizer, 0.04,
                                                                  end_reach=reach).words] for reach in (0, 3, 9)}
    assert ends[0] == [("AB", 4), ("C", 12)]  # the last letter's end (frames)
    assert ends[3] == [("AB", 7), ("C", 12)]  # separator at 10, 14: 10 - 3, and max(12, 14 - 3)
    assert ends[9] == [("AB", 4), ("C", 12)]  # never before the last letter
    log_probs[14] = log_probs[15]  # no final separator: the closing word keeps its last letter's end
    assert align(log_probs, tokens[:-1], tokenizer, 0.04, end_reach=3).words[-1].end == pytest.approx(12 * 0.04)


def aligned_words(aligner_path: Path, wav: Path, text: str) -> list:
    """The words of `text` as the aligner bundle alone aligns them (plain CTC aligners)."""
    aligner = Recognizer.load(aligner_path, decoding="greedy")
    x = aligner.load_input(wav)
    with torch.no_grad():
        log_probs, lens = aligner.model(x[None], torch.tensor([len(x)]))
    return align(log_probs[0, : lens[0]], aligner.tokenizer.encode(text), aligner.tokenizer, aligner.shift).words


def test_word_starts_from_one_aligner_and_ends_from_another(pair, wav, tmp_path):
    recognizer_path, left_to_right = pair
    right_to_left = make_bundle(tmp_path / "r2l.pt", ["model.rnn.bidirectional=false", "model.rnn.reverse=true",
                                                      "model.rnn.lookahead=2"], seed=3)
    joined = tmp_path / "joined.pt"
    result = cli("add-aligner", recognizer_path, left_to_right, right_to_left, "-o", joined)
    assert result.returncode == 0, result.stderr
    assert "word starts from" in result.stderr and "right-to-left" in result.stderr

    (after,) = Recognizer.load(joined, decoding="greedy").transcribe([wav], timestamps=True)
    starts, ends = (aligned_words(path, wav, after.text) for path in (left_to_right, right_to_left))
    assert len(after.words) == len(starts) == len(ends) >= 2
    # a word starts where the left-to-right aligner starts it and ends where the right-to-left one ends it, by
    # the time the next word starts and at least one frame after its own start
    assert [w.start for w in after.words] == pytest.approx([w.start for w in starts], abs=1e-6)
    next_starts = [s.start for s in starts[1:]] + [float("inf")]
    assert [w.end for w in after.words] == pytest.approx(
        [max(min(e.end, n), s.start + 0.04) for s, e, n in zip(starts, ends, next_starts)], abs=1e-6)


def test_aligners_move_from_one_bundle_to_another(pair, tmp_path):
    """A retrained recognizer of the same front-end takes the aligners out of an older bundle that has them."""
    recognizer_path, left_to_right = pair
    right_to_left = make_bundle(tmp_path / "r2l.pt", ["model.rnn.bidirectional=false", "model.rnn.reverse=true",
                                                      "model.rnn.lookahead=2"], seed=3)
    older = tmp_path / "older.pt"
    assert cli("add-aligner", recognizer_path, left_to_right, right_to_left, "-o", older).returncode == 0
    newer = make_bundle(tmp_path / "newer.pt", [], seed=5)
    result = cli("add-aligner", newer, older)
    assert result.returncode == 0, result.stderr
    moved, source = load_bundle(newer), load_bundle(older)
    for role in ("aligner", "aligner_end"):
        assert moved["extra"][role]["config"] == source["extra"][role]["config"]
        names = [name for name in source["state_dict"] if name.startswith(role + ".")]
        assert names and all(torch.equal(moved["state_dict"][n], source["state_dict"][n]) for n in names)
    # the recognizer's own weights are the newer one's
    fresh = load_bundle(make_bundle(tmp_path / "again.pt", [], seed=5))
    assert all(torch.equal(moved["state_dict"][n], w) for n, w in fresh["state_dict"].items())


def test_a_right_to_left_stack_is_the_left_to_right_one_on_reversed_input():
    from speechrnn.rnn import RNNConfig, StackedRNN, reverse_padded

    torch.manual_seed(0)
    forward = StackedRNN(5, RNNConfig(hidden_size=6, num_layers=2, bidirectional=False, dropout=0.0)).eval()
    backward = StackedRNN(5, RNNConfig(hidden_size=6, num_layers=2, bidirectional=False, dropout=0.0,
                                       reverse=True)).eval()
    backward.load_state_dict(forward.state_dict())
    x, lens = torch.randn(3, 9, 5), torch.tensor([9, 6, 2])  # (B, T, I) padded
    expected = reverse_padded(forward(reverse_padded(x, lens), lens), lens)
    valid = (torch.arange(9)[None, :] < lens[:, None]).unsqueeze(-1)  # (B, T, 1)
    assert torch.allclose(backward(x, lens) * valid, expected * valid, atol=1e-6)
    for b in range(3):  # a padded batch gives what each sequence alone gives
        alone = backward(x[b:b + 1, : lens[b]], lens[b:b + 1])
        assert torch.allclose(backward(x, lens)[b, : lens[b]], alone[0], atol=1e-6)


def test_a_right_to_left_model_cannot_stream_and_says_why(pair, tmp_path):
    from speechrnn.streaming import streaming_refusal

    right_to_left = make_bundle(tmp_path / "r2l.pt", ["model.rnn.bidirectional=false", "model.rnn.reverse=true"], 4)
    reason = streaming_refusal(Recognizer.load(right_to_left, decoding="greedy").model)
    assert reason and "right to left" in reason
    with pytest.raises(ConfigError, match="reverse needs model.rnn.bidirectional=false"):
        build_model(5, load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml", ["model.rnn.reverse=true"]))
