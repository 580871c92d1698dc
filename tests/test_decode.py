"""speechrnn.decode: flashlight beam search on hand-made CTC posteriors (no trained model needed)."""

import math

import pytest
import torch

from speechrnn.decode import BeamConfig, BeamDecoder, greedy_decode
from speechrnn.decoder_files import write_lexicon
from speechrnn.errors import UserError
from speechrnn.lm import write_arpa
from speechrnn.text import TextConfig, Tokenizer

TOKENIZER = Tokenizer.build(["CAT COT"], TextConfig())  # <blank>, ' ', A, C, O, T
BLANK = "<blank>"


def posteriors(tokenizer, frames, peak=0.9):
    """(1, T, V) log-probs. Each frame is a symbol (it gets `peak`) or a {symbol: prob} dict; the rest of the
    mass is shared evenly by the other symbols."""
    rows = []
    for frame in frames:
        probs = {frame: peak} if isinstance(frame, str) else dict(frame)
        rest = (1.0 - sum(probs.values())) / (len(tokenizer) - len(probs))
        rows.append([math.log(probs.get(s, rest)) for s in tokenizer.symbols])
    return torch.tensor([rows], dtype=torch.float32)


def ambiguous_cat_cot(a=0.5, o=0.45):
    """Greedy reads CAT; COT is a close second (the vowel frame)."""
    return posteriors(TOKENIZER, ["C", BLANK, {"A": a, "O": o}, BLANK, "T", BLANK])


def text_of(decoder, log_probs, lens=None):
    return decoder.decode(log_probs, lens)[0][0].text


def greedy_text(log_probs):
    return TOKENIZER.decode(greedy_decode(log_probs, torch.tensor([log_probs.shape[1]]))[0])


@pytest.fixture
def lexicon(tmp_path):
    def make(words):
        path = tmp_path / "lexicon.txt"
        write_lexicon(words, TOKENIZER, path)
        return str(path)
    return make


def test_beam_without_lm_equals_greedy_on_a_clear_path():
    frames = ["C", "C", BLANK, "A", "T", " ", " ", "C", "O", "O", BLANK, "T", "T", BLANK]
    log_probs = posteriors(TOKENIZER, frames)
    hyp = BeamDecoder(TOKENIZER).decode(log_probs, torch.tensor([len(frames)]))[0][0]
    assert hyp.text == greedy_text(log_probs) == "CAT COT"
    assert hyp.tokens == greedy_decode(log_probs, torch.tensor([len(frames)]))[0]
    assert hyp.timesteps == [0, 3, 4, 5, 7, 8, 11]  # the first frame of each token
    assert hyp.words == ["CAT", "COT"]
    assert hyp.score == pytest.approx(float(log_probs.max(-1).values.sum()), abs=1e-4)  # the best path's sum


def test_batch_with_padding_keeps_input_order_and_lengths():
    one = posteriors(TOKENIZER, ["C", "A", "T"] + [BLANK] * 3)
    two = posteriors(TOKENIZER, ["C", "O", "T", BLANK, "A", "T"])  # only 3 frames are valid
    hyps = BeamDecoder(TOKENIZER).decode(torch.cat([one, two]), torch.tensor([6, 3]))
    assert [h[0].text for h in hyps] == ["CAT", "COT"]


def test_write_lexicon_format_and_skipped_words(tmp_path, capsys):
    path = tmp_path / "lexicon.txt"
    assert write_lexicon(["cot", "CAT", "COT", "DOG", "TACO"], TOKENIZER, path) == (3, 1)
    assert path.read_text() == "COT\tC O T |\nCAT\tC A T |\nTACO\tT A C O |\n"
    err = capsys.readouterr().err
    assert err.count("warning") == 1 and "'DOG'" in err


def test_lexicon_turns_greedy_spelling_into_the_lexicon_word(lexicon):
    log_probs = ambiguous_cat_cot()
    assert greedy_text(log_probs) == "CAT"
    assert text_of(BeamDecoder(TOKENIZER), log_probs) == "CAT"
    hyp = BeamDecoder(TOKENIZER, BeamConfig(lexicon=lexicon(["COT"]))).decode(log_probs)[0][0]
    assert (hyp.text, hyp.words) == ("COT", ["COT"])
    assert hyp.tokens == TOKENIZER.encode("COT") and hyp.timesteps == [0, 2, 4]


def test_lexicon_decodes_several_words(lexicon):
    frames = ["C", "A", "T", " ", "C", {"A": 0.45, "O": 0.5}, "T"]
    log_probs = posteriors(TOKENIZER, frames)
    config = BeamConfig(lexicon=lexicon(["CAT", "COT", "TACO"]))
    hyp = BeamDecoder(TOKENIZER, config).decode(log_probs)[0][0]
    assert hyp.text == "CAT COT" and hyp.tokens == TOKENIZER.encode("CAT COT")


def test_token_min_logp_prunes_unlikely_tokens_but_still_finds_a_lexicon_word(lexicon):
    pruned = {"beam_threshold": 10.0, "token_min_logp": -5.0}
    log_probs = ambiguous_cat_cot()
    plain = BeamDecoder(TOKENIZER).decode(log_probs)[0][0]
    fast = BeamDecoder(TOKENIZER, BeamConfig(**pruned)).decode(log_probs)[0][0]
    assert (fast.text, fast.tokens) == (plain.text, plain.tokens) == ("CAT", TOKENIZER.encode("CAT"))
    assert fast.score == pytest.approx(plain.score, abs=1e-4)
    # The only lexicon word needs an O of log-prob -5.5: pruned, yet taken (with its true score) when nothing else
    # ends a word, where pyctcdecode's rule of never taking it would leave no hypothesis at all.
    log_probs = posteriors(TOKENIZER, ["C", BLANK, {"A": 0.99, "O": 0.004}, BLANK, "T", BLANK])
    words = lexicon(["COT"])
    plain = BeamDecoder(TOKENIZER, BeamConfig(lexicon=words)).decode(log_probs)[0][0]
    fast = BeamDecoder(TOKENIZER, BeamConfig(lexicon=words, **pruned)).decode(log_probs)[0][0]
    assert fast.text == plain.text == "COT"
    assert fast.score == pytest.approx(plain.score, abs=1e-3)
    assert fast.am_score == pytest.approx(plain.am_score, abs=1e-3)


@pytest.mark.parametrize("unit", ["char", "word"])
def test_lm_moves_an_ambiguous_decision_to_its_word(tmp_path, lexicon, unit):
    lm = tmp_path / f"{unit}.arpa"
    write_arpa(lm, ["COT"] * 20 + ["CAT COT", "COT COT"], order=3, unit=unit)
    words = lexicon(["CAT", "COT"]) if unit == "word" else None
    log_probs = ambiguous_cat_cot()
    assert text_of(BeamDecoder(TOKENIZER, BeamConfig(lexicon=words)), log_probs) == "CAT"
    hyp = BeamDecoder(TOKENIZER, BeamConfig(lexicon=words, lm=str(lm), lm_weight=1.0)).decode(log_probs)[0][0]
    assert hyp.text == "COT"
    assert hyp.lm_score < 0 and hyp.score == pytest.approx(hyp.am_score + hyp.lm_score, abs=1e-4)


def test_nbest_returns_n_hypotheses_best_first():
    log_probs = posteriors(TOKENIZER, ["C", BLANK, {"A": 0.5, "O": 0.3}, BLANK, {"T": 0.6, "A": 0.3}])
    best = BeamDecoder(TOKENIZER).decode(log_probs)[0]
    hyps = BeamDecoder(TOKENIZER, BeamConfig(nbest=3)).decode(log_probs)[0]
    assert len(best) == 1 and len(hyps) == 3
    assert hyps[0].text == best[0].text == "CAT"
    scores = [h.score for h in hyps]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]
    assert len({h.text for h in hyps}) == 3


def test_process_pool_gives_the_serial_results():
    batch = torch.cat([posteriors(TOKENIZER, ["C", {"A": 0.5, "O": 0.4}, "T", BLANK, "O"]),
                       posteriors(TOKENIZER, ["T", "A", BLANK, "C", "O"]),
                       posteriors(TOKENIZER, ["A", " ", "C", "A", "T"])])
    lens = torch.tensor([4, 5, 5])
    serial = BeamDecoder(TOKENIZER).decode(batch, lens)  # (nbest 1: lower hypotheses can tie exactly here)
    with BeamDecoder(TOKENIZER, workers=2) as pooled:
        assert pooled.decode(batch, lens) == serial
    assert [h[0].text for h in serial] == ["CAT", "TACO", "A CAT"]


def test_tokenizer_without_space_and_zero_length_item():
    tokenizer = Tokenizer.build(["CAT"], TextConfig())  # no ' ' token: flashlight gets an extra '|'
    log_probs = posteriors(tokenizer, ["C", "A", "A", BLANK, "T"])
    hyps = BeamDecoder(tokenizer).decode(torch.cat([log_probs, log_probs]), torch.tensor([5, 0]))
    assert hyps[0][0].text == "CAT" and hyps[0][0].tokens == tokenizer.encode("CAT")
    assert (hyps[1][0].text, hyps[1][0].tokens) == ("", [])


def test_bad_input_errors(tmp_path, lexicon):
    decoder = BeamDecoder(TOKENIZER)
    vocab = len(TOKENIZER)
    with pytest.raises(UserError, match="empty log-probs"):
        decoder.decode(torch.zeros(1, 0, vocab))
    with pytest.raises(UserError, match="empty log-probs"):
        decoder.decode(torch.zeros(0, 5, vocab))
    with pytest.raises(UserError, match="7 classes but the tokenizer has 6"):
        decoder.decode(torch.zeros(1, 5, 7))
    with pytest.raises(UserError, match="shaped"):
        decoder.decode(torch.zeros(5, vocab))
    with pytest.raises(UserError, match="lens"):
        decoder.decode(torch.zeros(2, 5, vocab), torch.tensor([5, 6]))
    with pytest.raises(UserError, match="language model file not found"):
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(tmp_path / "missing.arpa")))
    with pytest.raises(UserError, match="lexicon file not found"):
        BeamDecoder(TOKENIZER, BeamConfig(lexicon=str(tmp_path / "missing.txt")))


def test_lm_unit_must_fit_the_mode(tmp_path, lexicon):
    word_lm, char_lm = tmp_path / "word.arpa", tmp_path / "char.arpa"
    write_arpa(word_lm, ["CAT COT", "COT"], order=2, unit="word")
    write_arpa(char_lm, ["CAT COT", "COT"], order=2, unit="char")
    with pytest.raises(UserError, match="needs a character LM"):
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(word_lm)))
    with pytest.raises(UserError, match="needs a word LM"):
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(char_lm), lexicon=lexicon(["CAT", "COT"])))
    bad = tmp_path / "bad.txt"
    bad.write_text("DOG\tD O G |\n")
    with pytest.raises(UserError, match=r"bad.txt:1: .*'D'"):
        BeamDecoder(TOKENIZER, BeamConfig(lexicon=str(bad)))


# ---------------------------------------------------------------------------------------------- hotwords

def ambiguous_yes_no(tokenizer):
    """3 frames where "NO" (0.6 per frame) beats "YES" (0.4 per frame) by 3 ln 1.5 = 1.22 nats."""
    def frame(**probs):
        row = torch.full((len(tokenizer),), 1e-6)
        for symbol, p in probs.items():
            row[0 if symbol == "blank" else tokenizer.index[symbol]] = p
        return (row / row.sum()).log()
    return torch.stack([frame(Y=.4, N=.6), frame(E=.4, O=.6), frame(S=.4, blank=.6)])[None]


@pytest.mark.parametrize("with_lm", [False, True])
def test_hotword_boost_turns_a_near_miss_into_the_word_and_an_absent_one_changes_nothing(tmp_path, with_lm):
    tokenizer = Tokenizer.build(["YES NO MAYBE"], TextConfig())
    log_probs = ambiguous_yes_no(tokenizer)
    lexicon = tmp_path / "words.lex"
    write_lexicon(["YES", "NO"], tokenizer, lexicon)
    lm = None
    if with_lm:
        lm = tmp_path / "words.arpa"
        write_arpa(lm, ["NO NO", "NO", "YES NO", "NO YES"], 2, "word")
    def best(hotwords):
        config = BeamConfig(beam_size=8, lexicon=str(lexicon), lm=str(lm) if lm else None, hotwords=hotwords)
        return BeamDecoder(tokenizer, config).decode(log_probs)[0][0]
    plain = best({})
    assert plain.text == "NO"
    assert best({"YES": 0.5}).text == "NO"  # a boost smaller than the acoustic gap is not enough
    assert best({"yes": 3.0}).text == "YES"  # normalised like transcripts
    absent = best({"MAYBE": 5.0})  # a boosted word that is not said: same result and score
    assert absent.text == plain.text and absent.score == pytest.approx(plain.score, abs=1e-5)


def test_hotword_errors(tmp_path):
    tokenizer = Tokenizer.build(["YES NO"], TextConfig())
    lexicon = tmp_path / "words.lex"
    write_lexicon(["YES", "NO"], tokenizer, lexicon)
    with pytest.raises(UserError, match="hotwords need a lexicon"):
        BeamDecoder(tokenizer, BeamConfig(hotwords={"YES": 2.0}))
    with pytest.raises(UserError, match=r"hotword 'YES!Z' cannot be recognised: the model has no 'Z'"):
        BeamDecoder(tokenizer, BeamConfig(lexicon=str(lexicon), hotwords={"YES!Z": 2.0}))
    from speechrnn.cli.common import parse_hotwords
    assert parse_hotwords(["YES", "NO:2.5"]) == {"YES": 5.0, "NO": 2.5}
    with pytest.raises(UserError, match="must be a number"):
        parse_hotwords(["NO:lots"])
