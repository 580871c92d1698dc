"""speechrnn.text: normalisation rules and the character tokenizer (CTC blank = 0)."""

import json

import pytest

from speechrnn.text import BLANK, TextConfig, Tokenizer, normalize

TEXTS = ["HELLO WORLD", "Don't stop", "yes no yes"]


@pytest.fixture
def tokenizer():
    return Tokenizer.build(TEXTS, TextConfig())


def test_blank_is_id_zero_and_vocabulary_is_the_set_of_normalised_characters(tokenizer):
    assert tokenizer.symbols[0] == BLANK
    assert tokenizer.index[BLANK] == 0
    expected = set("".join(normalize(t, TextConfig()) for t in TEXTS))
    assert set(tokenizer.symbols[1:]) == expected
    assert len(tokenizer.symbols[1:]) == len(expected), "no duplicate symbols"
    assert len(tokenizer) == len(expected) + 1
    assert " " in tokenizer.index and tokenizer.index[" "] != 0
    assert tokenizer.symbols[1:] == sorted(expected), "deterministic order"


def test_build_is_independent_of_text_order():
    a = Tokenizer.build(TEXTS, TextConfig())
    b = Tokenizer.build(list(reversed(TEXTS)), TextConfig())
    assert a.symbols == b.symbols


@pytest.mark.parametrize("text", ["HELLO WORLD", "hello   world", "  Don't\tstop  ", "yes, no; YES!"])
def test_encode_decode_round_trip(tokenizer, text):
    ids = tokenizer.encode(text)
    assert all(isinstance(i, int) and 0 < i < len(tokenizer) for i in ids), "blank never appears in targets"
    assert tokenizer.decode(ids) == normalize(text, tokenizer.config)
    assert not tokenizer.unknown


def test_encode_maps_each_character_to_its_symbol(tokenizer):
    ids = tokenizer.encode("no yes")
    assert [tokenizer.symbols[i] for i in ids] == list("NO YES")


def test_decode_skips_blanks(tokenizer):
    ids = tokenizer.encode("YES")
    with_blanks = [0, ids[0], 0, 0, ids[1], ids[2], 0]
    assert tokenizer.decode(with_blanks) == "YES"
    assert tokenizer.decode([]) == ""
    assert tokenizer.decode([0, 0]) == ""


def test_space_handling():
    config = TextConfig()
    assert normalize("  a \t b\n\nc  ", config) == "A B C"
    assert normalize("", config) == ""
    assert normalize("   ", config) == ""
    tok = Tokenizer.build(["a b"], config)
    ids = tok.encode("  a    b ")
    assert tok.decode(ids) == "A B"
    assert ids.count(tok.index[" "]) == 1, "runs of white space collapse to one space token"


@pytest.mark.parametrize("case, expected", [
    ("upper", "DON'T STOP"),
    ("lower", "don't stop"),
    ("keep", "Don't Stop"),
])
def test_case_rules(case, expected):
    assert normalize("Don't Stop", TextConfig(case=case)) == expected


def test_punctuation_stripped_except_apostrophe_by_default():
    assert normalize("Hello, world! It's 5 p.m.; ok? (yes) \"no\" a-b", TextConfig()) == "HELLO WORLD IT'S 5 P M OK YES NO A B"
    # symbols (category S*) go too
    assert normalize("50% $5 a+b", TextConfig()) == "50 5 A B"


def test_punctuation_kept_when_disabled_or_listed():
    assert normalize("a-b, c's!", TextConfig(strip_punctuation=False)) == "A-B, C'S!"
    assert normalize("a-b, c's!", TextConfig(keep_punctuation="-")) == "A-B C S"


def test_unicode_compatibility_forms_are_folded():
    # NFKC: full-width letters and the "fi" ligature become plain letters
    assert normalize("\uff21\uff22 \ufb01ne", TextConfig()) == "AB FINE"


def test_unknown_characters_are_counted_and_reported(tokenizer, capsys):
    ids = tokenizer.encode("yes zebra q")  # Z, B, A, Q never seen
    assert tokenizer.decode(ids) == "YES ER"  # spaces normalised
    assert tokenizer.unknown == {"Z": 1, "B": 1, "A": 1, "Q": 1}
    tokenizer.encode("zz")
    assert tokenizer.unknown["Z"] == 3
    tokenizer.report_unknown("dev.jsonl")
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1
    assert lines[0].startswith("warning: dev.jsonl:")
    assert "'Z' x3" in lines[0] and "'B' x1" in lines[0] and "'Q' x1" in lines[0]
    assert lines[0].index("'Z'") < lines[0].index("'Q'"), "most frequent first"
    assert not tokenizer.unknown, "the count restarts after a report"
    tokenizer.report_unknown("again")
    assert capsys.readouterr().err == "", "nothing to report, nothing printed"


def test_to_dict_from_dict_round_trip():
    config = TextConfig(case="lower", strip_punctuation=True, keep_punctuation="'-")
    tok = Tokenizer.build(["it's a well-known fact", "X y z"], config)
    state = tok.to_dict()
    state = json.loads(json.dumps(state))  # plain data only (bundles are loaded with weights_only=True)
    restored = Tokenizer.from_dict(state)
    assert restored.symbols == tok.symbols
    assert restored.index == tok.index
    assert vars(restored.config) == vars(config)
    text = "It's a Well-Known fact, x!"
    assert restored.encode(text) == tok.encode(text)
    assert restored.decode(restored.encode(text)) == "it's a well-known fact x"
