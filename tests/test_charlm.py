"""The character RNN language model (speechrnn.tasks.lm) and shallow fusion (speechrnn.fusion): training through the
one loop lowers held-out loss on real text, fusion turns a near-miss into the right word, the search's bookkeeping
is the CTC probability, generation is reproducible, and bad inputs get one line."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.cli import main
from speechrnn.errors import BundleError, UserError
from speechrnn.fusion import CharLMScorer, FusionConfig, FusionDecoder, NgramScorer, decode_batch, prefix_beam_search
from speechrnn.tasks.lm.inference import bits_per_char, generate, load_lm
from speechrnn.tasks.lm.model import Alphabet
from speechrnn.tasks.lm.data import read_lines
from speechrnn.tasks.lm.task import load_lm_config, train
from speechrnn.text import TextConfig, Tokenizer

REPO = Path(__file__).resolve().parents[1]


def real_lines() -> list[str]:
    """English prose this repository holds: the lines of its READMEs and RESULTS files with a sentence on them."""
    lines = []
    for path in sorted(REPO.glob("**/*.md")):
        if ".venv" in path.parts or "exp" in path.parts:
            continue
        lines += [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
                  if len(line.split()) >= 6 and line.strip()[:1].isalpha()]
    return lines


def train_small_lm(tmp_path, lines, epochs=2, extra=()):
    train_text, dev_text = tmp_path / "train.txt", tmp_path / "dev.txt"
    train_text.write_text("\n".join(lines[::2][:1500]) + "\n", encoding="utf-8")
    dev_text.write_text("\n".join(lines[1::2][:300]) + "\n", encoding="utf-8")
    config = load_lm_config(REPO / "recipes/english_lm/conf/default.yaml", [
        f"data.train_text={train_text}", f"data.dev_text={dev_text}", f"train.exp_dir={tmp_path / 'exp'}",
        "model.rnn.hidden_size=96", "model.embedding_dim=16", f"train.max_epochs={epochs}", "train.threads=1",
        "optim.warmup_steps=10", "data.max_frames=6000", *extra])
    return train(config), dev_text


@pytest.fixture(scope="module")
def small_lm(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("charlm")
    result, dev_text = train_small_lm(tmp_path, real_lines())
    return result, dev_text, tmp_path


def test_training_lowers_held_out_loss_on_real_text(small_lm):
    result, dev_text, tmp_path = small_lm
    log = [__import__("json").loads(line) for line in (tmp_path / "exp/train_log.jsonl").read_text().splitlines()]
    model, alphabet, _ = load_lm(result.bundle)
    uniform = math.log2(len(alphabet))
    assert log[1]["dev_bpc"] < log[0]["dev_bpc"] < uniform
    assert bits_per_char(model, alphabet, read_lines(dev_text)) == pytest.approx(log[-1]["dev_bpc"], rel=1e-4)


def scorer_matches_the_model(model, alphabet, text: str) -> None:
    """The fusion scorer's cached, batched steps give the distribution the model gives reading `text` at once."""
    tok = Tokenizer(sorted(set(text)), TextConfig(case="keep"))
    scorer = CharLMScorer(model, alphabet, tok)
    scorer.reset()
    ids = tuple(tok.index[c] for c in text)
    for length in range(1, len(ids) + 1):
        scorer.advance([(0, ids[:length]), (1, ids[:max(1, length - 1)])])
    with torch.no_grad():
        logits, _ = model(torch.tensor([[0] + alphabet.encode(text)]))  # (1, T + 1, V)
    expected = torch.log_softmax(logits[0, -1], -1)[scorer.token_to_lm].numpy()
    assert np.allclose(scorer.next_logp((0, ids))[1:], expected[1:], atol=1e-4)


@pytest.mark.parametrize("cell", ["gru", "jordan", "indrnn"])
def test_any_cell_of_the_family_trains_and_fuses(tmp_path, cell):
    result, _ = train_small_lm(tmp_path, real_lines()[:400], epochs=1, extra=[f"model.rnn.cell={cell}"])
    model, alphabet, _ = load_lm(result.bundle)
    assert bits_per_char(model, alphabet, ["a line of text"]) < math.log2(len(alphabet)) + 1
    scorer_matches_the_model(model, alphabet, "the model reads")


def test_the_lstm_scorer_matches_the_model(small_lm):
    model, alphabet, _ = load_lm(small_lm[0].bundle)
    scorer_matches_the_model(model, alphabet, "the model reads")


def test_generation_is_reproducible_with_a_seed(small_lm):
    model, alphabet, _ = load_lm(small_lm[0].bundle)
    first = generate(model, alphabet, "The ", temperature=1.0, seed=7, max_chars=80)
    assert first == generate(model, alphabet, "The ", temperature=1.0, seed=7, max_chars=80)
    assert first.startswith("The ") and len(first) <= 84
    others = {generate(model, alphabet, "The ", temperature=1.0, seed=s, max_chars=80) for s in range(4)}
    assert len(others) > 1


def test_generate_command(small_lm, capsys):
    main(["lm", "generate", str(small_lm[0].bundle), "--prompt", "A ", "--seed", "3", "-n", "2", "--max-chars", "40"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith("A ") for line in lines)


# ------------------------------------------------------------------------------------------------- fusion

CHARS = list(" acehmst")


def tokenizer() -> Tokenizer:
    return Tokenizer(CHARS, TextConfig(case="lower"))


def posteriors(frames: list[dict[str, float]]) -> np.ndarray:
    """Frames of {char: prob} (the rest goes to the blank) -> log-probs (T, V) over the tokenizer's symbols."""
    tok = tokenizer()
    out = np.full((len(frames), len(tok)), 1e-6)
    for t, frame in enumerate(frames):
        for char, prob in frame.items():
            out[t, tok.index[char]] = prob
        out[t, 0] = max(1e-6, 1 - sum(frame.values()))
    out /= out.sum(1, keepdims=True)
    return np.log(out).astype(np.float32)


@pytest.fixture(scope="module")
def cat_lm(tmp_path_factory):
    """An LM of a real-language toy text in which "the" is frequent and "tha" never occurs."""
    tmp_path = tmp_path_factory.mktemp("cat")
    sentences = ["the cat sat on the mat", "the hat is on the cat", "mice chase the cat", "the cat has a hat",
                 "same as the mat", "a cat sees the east"] * 20
    doubled = [s for s in sentences for _ in (0, 1)]  # train_small_lm takes the even lines to train, the odd to dev
    result, _ = train_small_lm(tmp_path, doubled, epochs=6, extra=["optim.lr=1e-2", "data.max_frames=500"])
    return load_lm(result.bundle)


def test_fusion_turns_a_near_miss_into_the_right_word(cat_lm):
    model, alphabet, _ = cat_lm
    log_probs = posteriors([{"t": 0.99}, {}, {"h": 0.99}, {}, {"a": 0.55, "e": 0.44}, {}])  # acoustics: "tha"
    tok = tokenizer()
    greedy = FusionDecoder(tok, CharLMScorer(model, alphabet, tok), FusionConfig(lm_weight=0.0))
    fused = FusionDecoder(tok, CharLMScorer(model, alphabet, tok), FusionConfig(lm_weight=1.0))
    assert greedy.decode(torch.from_numpy(log_probs)[None])[0][0].text == "tha"
    assert fused.decode(torch.from_numpy(log_probs)[None])[0][0].text == "the"


def test_search_score_is_the_ctc_probability_without_lm(cat_lm):
    """With lm_weight 0 and no bonus a hypothesis' score is log p_ctc(its tokens), by the forward algorithm."""
    model, alphabet, _ = cat_lm
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(7, len(CHARS) + 1)) * 2
    logits[:, 4:] = -40  # three tokens and the blank take part; the beam holds every prefix of them (exact search)
    log_probs = torch.log_softmax(torch.from_numpy(logits).float(), -1)
    search = prefix_beam_search(0, log_probs.numpy(), _NoLM(), FusionConfig(lm_weight=0.0, beam_size=5000, nbest=5,
                                                                          token_min_logp=-20, beam_threshold=1e9))
    hyps = _run(search)
    for tokens, score, _ in hyps:
        loss = torch.nn.functional.ctc_loss(log_probs[:, None], torch.tensor([list(tokens)]), torch.tensor([7]),
                                            torch.tensor([len(tokens)]), reduction="sum", zero_infinity=False)
        assert score == pytest.approx(-float(loss), abs=1e-4)
    assert [s for _, s, _ in hyps] == sorted((s for _, s, _ in hyps), reverse=True)


def test_batched_search_equals_one_at_a_time(cat_lm):
    model, alphabet, _ = cat_lm
    tok = tokenizer()
    rng = np.random.default_rng(1)
    utterances = [torch.log_softmax(torch.from_numpy(rng.normal(size=(n, len(CHARS) + 1)) * 4).float(), -1).numpy()
                  for n in (5, 9, 14)]
    config = FusionConfig(lm_weight=0.8, char_bonus=0.5)
    together = decode_batch(utterances, CharLMScorer(model, alphabet, tok), config)
    alone = [decode_batch([u], CharLMScorer(model, alphabet, tok), config)[0] for u in utterances]
    for a, b in zip(together, alone):
        assert a[0][0] == b[0][0] and a[0][1] == pytest.approx(b[0][1], abs=1e-4)


def test_ngram_scorer_runs_the_same_search(tmp_path):
    from speechrnn.lm import write_arpa

    arpa = tmp_path / "char.arpa"
    write_arpa(arpa, ["the cat sat on the mat", "the hat", "the east"] * 5, order=3, unit="char")
    log_probs = posteriors([{"t": 0.9}, {}, {"h": 0.9}, {}, {"a": 0.55, "e": 0.4}, {}])
    tok = tokenizer()
    out = FusionDecoder(tok, NgramScorer(arpa, tok), FusionConfig(lm_weight=1.0)).decode(
        torch.from_numpy(log_probs)[None])
    assert out[0][0].text == "the"


class _NoLM:
    def reset(self):
        pass

    def advance(self, keys):
        pass

    def next_logp(self, key):
        return np.zeros(len(CHARS) + 1)

    def end_logp(self, key):
        return 0.0


def _run(search):
    try:
        while True:
            next(search)
    except StopIteration as done:
        return done.value


# ------------------------------------------------------------------------------------------------- bad input


def test_empty_and_non_utf8_text_give_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(UserError, match="no text"):
        read_lines(empty)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin.txt:1: not UTF-8"):
        read_lines(latin)


def test_commands_report_bad_input_in_one_line(small_lm, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    for argv in (["lm", "score", str(small_lm[0].bundle), str(empty)],
                 ["lm", "generate", "an4"],
                 ["lm", "generate", str(small_lm[0].bundle), "--prompt", "\u2603"]):
        with pytest.raises(SystemExit) as end:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert end.value.code != 0 and len(err.splitlines()) == 1 and err.startswith("error:"), (argv, err)


def test_a_bundle_of_the_wrong_kind_is_refused():
    with pytest.raises(BundleError, match="a recognizer bundle without a character language model"):
        load_lm("an4")


def test_an_lm_missing_the_recognizers_characters_is_named(cat_lm):
    model, alphabet, _ = cat_lm
    wide = Tokenizer(CHARS + ["q", "z"], TextConfig(case="lower"))
    with pytest.raises(UserError, match="lacks the recogniser's characters 'q' 'z'"):
        CharLMScorer(model, Alphabet(alphabet.chars), wide)


def test_wordlist_gives_an_open_lexicon_and_a_unigram_lm_flashlight_reads(tmp_path, capsys):
    from speechrnn.bundle import load_model
    from speechrnn.decode import BeamConfig, BeamDecoder
    from speechrnn.lm import load_arpa

    words = tmp_path / "words.tsv"
    words.write_text("the\t1000\ncat\t10\nParis\t5\ndon't\t50\n", encoding="utf-8")
    in_domain = tmp_path / "train.txt"
    in_domain.write_text("spline polygon\nspline\n", encoding="utf-8")
    lexicon, arpa = tmp_path / "open.lex", tmp_path / "open.arpa"
    main(["lm", "wordlist", "unipen", str(words), "--lexicon", str(lexicon), "--arpa", str(arpa), "--case-variants",
          "--in-domain", str(in_domain), "--in-domain-share", "0.5"])
    assert "3 word(s) left out" in capsys.readouterr().err  # don't, Don't, DON'T: UNIPEN has no apostrophe
    listed = {line.split("\t")[0] for line in lexicon.read_text().splitlines()}
    assert {"the", "The", "THE", "Paris", "PARIS", "spline", "polygon"} <= listed and "paris" not in listed
    unigrams = {gram[0]: prob for gram, (prob, _) in load_arpa(arpa)[1].items()}
    assert unigrams["the"] > unigrams["The"] > unigrams["THE"]
    # half the mass to the in-domain words (spline: 2 of 3), half to the list, renormalised over the words the model
    # can spell (not the 50 of don't), and 0.9 of it to words (0.1 is </s>)
    spellable = 0.5 + 0.5 * 1015 / 1065
    assert 10 ** unigrams["spline"] == pytest.approx(0.9 * 0.5 * 2 / 3 / spellable, rel=1e-3)
    _, tok, _, _ = load_model("unipen")
    with BeamDecoder(tok, BeamConfig(lexicon=str(lexicon), lm=str(arpa))) as decoder:  # KenLM loads it
        assert decoder is not None


def test_lexicon_fallback_takes_the_character_lm_reading(cat_lm, tmp_path):
    """Lexicon beam search whose open-vocabulary fallback reads with the character LM: a word outside the lexicon
    comes back as the fused search reads it, not as greedy decoding does."""
    from speechrnn.decode import BeamConfig, BeamDecoder
    from speechrnn.decoder_files import write_lexicon

    model, alphabet, _ = cat_lm
    tok = tokenizer()
    lexicon = tmp_path / "words.lex"
    write_lexicon(["cat", "mat", "sat"], tok, lexicon)
    log_probs = torch.from_numpy(posteriors([{"t": 0.99}, {}, {"h": 0.99}, {}, {"a": 0.55, "e": 0.44}, {}]))[None]
    fused = FusionDecoder(tok, CharLMScorer(model, alphabet, tok), FusionConfig(lm_weight=1.0))
    config = BeamConfig(lexicon=str(lexicon), oov_margin=-1e9)  # any lexicon-free reading wins
    with BeamDecoder(tok, config) as plain, BeamDecoder(tok, config, open_vocabulary=fused) as with_lm:
        assert plain.decode(log_probs)[0][0].text == "tha"  # greedy
        assert with_lm.decode(log_probs)[0][0].text == "the"
