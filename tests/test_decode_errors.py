"""What bad input gets from beam search: one clear line each (UserError, or a warning that counts).

A malformed ARPA file (file:line), an LM whose words the tokenizer cannot spell (warned and counted), empty
log-probs, a hotword with characters the model cannot emit."""

import re

import pytest
import torch

import speechrnn.decoder_files as decoder_files
from speechrnn.decode import BeamConfig, BeamDecoder
from speechrnn.decoder_files import check_lm, flashlight_tokens, write_lexicon
from speechrnn.errors import UserError
from speechrnn.lm import build_arpa
from speechrnn.text import TextConfig, Tokenizer

TOKENIZER = Tokenizer.build(["CAT COT"], TextConfig())  # <blank>, ' ', A, C, O, T
CORPUS = ["CAT COT", "COT", "CAT CAT COT"]


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message.strip() == message
    return message


@pytest.fixture
def lexicon(tmp_path):
    path = tmp_path / "words.lex"
    write_lexicon(["CAT", "COT"], TOKENIZER, path)
    return str(path)


def broken_arpa(tmp_path, unit: str, case: str):
    """An ARPA file of CORPUS with one fault; returns (path, the 1-based number of the faulty line)."""
    lines = build_arpa(CORPUS, order=2, unit=unit).splitlines()
    bigrams = lines.index("\\2-grams:")
    if case == "garbage":
        lines[bigrams + 2] = "this is not an n-gram line"
        line = bigrams + 3
    elif case == "bad number":
        lines[bigrams + 1] = "-0.3x\t" + lines[bigrams + 1].split("\t", 1)[1]
        line = bigrams + 2
    elif case == "truncated":
        lines = lines[:bigrams + 3]
        line = len(lines)
    else:  # "count": one bigram fewer than the header declares
        del lines[bigrams + 1]
        line = lines.index("\\end\\") + 1
    path = tmp_path / f"{unit}-{case.replace(' ', '-')}.arpa"
    path.write_text("\n".join(lines) + "\n")
    return path, line


@pytest.mark.parametrize("case", ["garbage", "bad number", "truncated", "count"])
@pytest.mark.parametrize("unit", ["word", "char"])
def test_malformed_arpa_names_its_line(tmp_path, lexicon, unit, case):
    path, line = broken_arpa(tmp_path, unit, case)
    config = BeamConfig(lm=str(path), lexicon=lexicon if unit == "word" else None)
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER, config)
    message = one_line(err)
    assert message.startswith(f"{path}:{line}: ") and "could not be loaded" in message
    assert ".cc:" not in message and "speechrnn lm build" in message


def test_kenlm_byte_offset_becomes_a_line_number(tmp_path, lexicon, monkeypatch):
    """Faults that only KenLM sees (and files too big to re-read) get KenLM's reason at file:line."""
    lines = build_arpa(CORPUS, order=2).splitlines()
    bigrams = lines.index("\\2-grams:")
    lines[bigrams + 1] = "-0.5\tCAT DOG"  # DOG is no unigram: speechrnn.lm reads this, KenLM refuses it
    path = tmp_path / "unseen.arpa"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(path), lexicon=lexicon))
    message = one_line(err)
    assert re.match(rf"{re.escape(str(path))}:{bigrams + 2}: the language model could not be loaded: .*DOG", message)
    assert "threw" not in message and "Byte:" not in message

    monkeypatch.setattr(decoder_files, "ARPA_CHECK_MAX_BYTES", 0)
    garbage, line = broken_arpa(tmp_path, "word", "garbage")
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(garbage), lexicon=lexicon))
    assert one_line(err).startswith(f"{garbage}:{line}: the language model could not be loaded: ")


def test_lm_words_the_model_cannot_spell_are_warned_once_and_counted(tmp_path, lexicon, capsys):
    path = tmp_path / "words.arpa"
    path.write_text(build_arpa(CORPUS + ["DOG CAT", "CAT ZEBRA"], order=2))
    names = flashlight_tokens(TOKENIZER)
    assert check_lm(path, True, names) == 2
    warning = capsys.readouterr().err
    assert warning == f"warning: {path}: 2 of 4 LM words use characters the model cannot emit, so they are never " \
                      f"recognised: 'DOG', 'ZEBRA'\n"
    decoder = BeamDecoder(TOKENIZER, BeamConfig(lm=str(path), lexicon=lexicon))  # usable all the same
    assert capsys.readouterr().err == ""  # warned once per file
    assert decoder.decode(torch.zeros(1, 3, len(TOKENIZER)).log_softmax(-1))[0][0].text in ("", "CAT", "COT")


def test_char_lm_symbols_outside_the_tokenizer_are_warned_and_counted(tmp_path, capsys):
    path = tmp_path / "chars.arpa"
    path.write_text(build_arpa(CORPUS + ["COTX"], order=3, unit="char"))
    assert check_lm(path, False, flashlight_tokens(TOKENIZER)) == 1
    assert capsys.readouterr().err == (f"warning: {path}: 1 of 6 LM symbols are not tokens of the model, so they "
                                       f"are never recognised: 'X'\n")
    clean = tmp_path / "clean.arpa"
    clean.write_text(build_arpa(CORPUS, order=3, unit="char"))
    assert check_lm(clean, False, flashlight_tokens(TOKENIZER)) == 0
    assert capsys.readouterr().err == ""


def test_lm_of_which_the_model_can_spell_no_word_is_refused(tmp_path, lexicon):
    path = tmp_path / "lower.arpa"
    path.write_text(build_arpa(["cat cot", "cot"], order=2))  # another case than the model's transcripts
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER, BeamConfig(lm=str(path), lexicon=lexicon))
    assert one_line(err) == (f"{path}: the model cannot spell any of the LM's 2 words (e.g. 'cat'); build it from "
                             f"text normalised as the model's transcripts are (e.g. the case)")


@pytest.mark.parametrize("shape", [(1, 0, 6), (0, 5, 6)])
def test_empty_log_probs(shape):
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER).decode(torch.zeros(shape))
    assert one_line(err).startswith("beam search got empty log-probs")


def test_hotword_the_model_cannot_emit(lexicon):
    with pytest.raises(UserError) as err:
        BeamDecoder(TOKENIZER, BeamConfig(lexicon=lexicon, hotwords={"DOG": 2.0}))
    assert one_line(err) == ("hotword 'DOG' cannot be recognised: the model has no 'D'; leave it out or spell it "
                             "with the model's characters")
