"""speechrnn.lm: interpolated modified Kneser-Ney n-gram models in ARPA format."""

import json
import math
import random
import re

import pytest

from speechrnn.cli import main as speechrnn_main
from speechrnn.errors import UserError
from speechrnn.lm import (
    BOS, EOS, UNK, FALLBACK_DISCOUNTS, build_arpa, conditional_log10, kn_discounts, load_arpa, score, tokenize,
    write_arpa,
)

TINY = ["a b", "a c", "b a"]  # unigram discounts by the closed form, bigram discounts by the fallback
SMALL = ["b", "c", "a b", "a", "a"]  # closed-form discounts at both orders of a bigram model


def random_corpus(seed: int = 0, size: int = 60) -> list[str]:
    rng = random.Random(seed)
    words = "the cat dog sat ran on a mat".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(size)]


def model_of(tmp_path, sentences, order, unit="word", name="lm.arpa"):
    path = tmp_path / name
    write_arpa(path, sentences, order, unit)
    return load_arpa(path)


def prob(model, *gram):
    return 10 ** model[len(gram)][gram][0]


def backoff(model, *gram):
    return 10 ** model[len(gram)][gram][1]


# ------------------------------------------------------------------------------------------- hand-computed values


def test_discounts_closed_form_and_fallback():
    # t = [t1, t2, t3, t4] = [10, 5, 3, 2]: Y = 10 / (10 + 2*5) = 0.5
    d1, d2, d3 = kn_discounts([10, 5, 3, 2])
    assert d1 == pytest.approx(1 - 2 * 0.5 * 5 / 10)  # 0.5
    assert d2 == pytest.approx(2 - 3 * 0.5 * 3 / 5)  # 1.1
    assert d3 == pytest.approx(3 - 4 * 0.5 * 2 / 3)  # 1.6667
    assert kn_discounts([3, 0, 1, 1]) == FALLBACK_DISCOUNTS  # no doubletons: Y and D2 undefined
    assert kn_discounts([7, 1, 0, 0]) == FALLBACK_DISCOUNTS  # no count-3 n-grams: D3 undefined
    assert kn_discounts([1, 1, 5, 0]) == FALLBACK_DISCOUNTS  # D2 = 2 - 3*(1/3)*5/1 = -3: out of range


def test_bigram_by_hand(tmp_path):
    """TINY, padded: <s> a b </s> | <s> a c </s> | <s> b a </s>; vocabulary a b c </s> <unk> (|V| = 5)."""
    model = model_of(tmp_path, TINY, order=2)

    # Unigrams use continuation counts (distinct left neighbours):
    #   a {<s>, b} = 2,  b {<s>, a} = 2,  c {a} = 1,  </s> {b, c, a} = 3,  <unk> 0;  total 8
    # count-of-counts t = [1, 2, 1, 0]: Y = 1/(1 + 2*2) = 0.2
    #   D1 = 1 - 2*0.2*2/1 = 0.2,  D2 = 2 - 3*0.2*1/2 = 1.7,  D3+ = 3 - 4*0.2*0/1 = 3.0
    d1, d2, d3 = 0.2, 1.7, 3.0
    gamma0 = (d1 * 1 + d2 * 2 + d3 * 1) / 8  # 0.825, spread uniformly over the 5 words
    uni = {
        "a": (2 - d2) / 8 + gamma0 / 5,  # 0.2025
        "b": (2 - d2) / 8 + gamma0 / 5,  # 0.2025
        "c": (1 - d1) / 8 + gamma0 / 5,  # 0.265
        EOS: (3 - d3) / 8 + gamma0 / 5,  # 0.165
        UNK: gamma0 / 5,  # 0.165
    }
    for word, expected in uni.items():
        assert prob(model, word) == pytest.approx(expected, abs=1e-4), word
    assert model[1][(BOS,)][0] == -99

    # Bigrams use raw counts: <s> a 2, <s> b 1, a b 1, a c 1, a </s> 1, b </s> 1, b a 1, c </s> 1
    # t = [7, 1, 0, 0]: no count-3 bigrams, so the fallback D = 0.5, 1.0, 1.5
    d1, d2, d3 = FALLBACK_DISCOUNTS
    gamma = {
        BOS: (d2 * 1 + d1 * 1) / 3,  # 0.5
        "a": (d1 * 3) / 3,  # 0.5
        "b": (d1 * 2) / 2,  # 0.5
        "c": d1 / 1,  # 0.5
    }
    bi = {
        (BOS, "a"): (2 - d2) / 3 + gamma[BOS] * uni["a"],  # 0.434583
        (BOS, "b"): (1 - d1) / 3 + gamma[BOS] * uni["b"],  # 0.267917
        ("a", "b"): (1 - d1) / 3 + gamma["a"] * uni["b"],  # 0.267917
        ("a", "c"): (1 - d1) / 3 + gamma["a"] * uni["c"],  # 0.299167
        ("a", EOS): (1 - d1) / 3 + gamma["a"] * uni[EOS],  # 0.249167
        ("b", EOS): (1 - d1) / 2 + gamma["b"] * uni[EOS],  # 0.3325
        ("b", "a"): (1 - d1) / 2 + gamma["b"] * uni["a"],  # 0.35125
        ("c", EOS): (1 - d1) / 1 + gamma["c"] * uni[EOS],  # 0.5825
    }
    assert set(model[2]) == set(bi)
    for gram, expected in bi.items():
        assert prob(model, *gram) == pytest.approx(expected, abs=1e-4), gram
    for context, expected in gamma.items():
        assert backoff(model, context) == pytest.approx(expected, abs=1e-4), context
    assert bi[(BOS, "a")] == pytest.approx(0.434583, abs=1e-6)  # the arithmetic above, spelled out once

    # Sentence scores: seen bigrams, then an unseen word backing off to <unk>
    assert score(model, "a b") == pytest.approx(
        math.log10(bi[(BOS, "a")] * bi[("a", "b")] * bi[("b", EOS)]), abs=1e-4)
    # "a zzz": p(a|<s>) * gamma(a) p(<unk>) * p(</s>) (the context <unk> has no back-off: weight 1)
    assert score(model, ["a", "zzz"]) == pytest.approx(
        math.log10(bi[(BOS, "a")] * gamma["a"] * uni[UNK] * uni[EOS]), abs=1e-4)


def test_bigram_closed_form_discounts_by_hand(tmp_path):
    """SMALL, padded: <s> b </s> | <s> c </s> | <s> a b </s> | <s> a </s> | <s> a </s>."""
    model = model_of(tmp_path, SMALL, order=2)

    # Unigram continuation counts: a {<s>} 1, b {<s>, a} 2, c {<s>} 1, </s> {b, c, a} 3; total 7
    # t = [2, 1, 1, 0]: Y = 2/(2 + 2) = 0.5; D1 = 1 - 2*0.5*1/2 = 0.5, D2 = 2 - 3*0.5*1/1 = 0.5, D3+ = 3
    d1, d2, d3 = 0.5, 0.5, 3.0
    gamma0 = (d1 * 2 + d2 * 1 + d3 * 1) / 7  # 4.5/7
    uni = {"a": (1 - d1) / 7 + gamma0 / 5, "b": (2 - d2) / 7 + gamma0 / 5, "c": (1 - d1) / 7 + gamma0 / 5,
           EOS: (3 - d3) / 7 + gamma0 / 5, UNK: gamma0 / 5}  # 0.2, 0.342857, 0.2, 0.128571, 0.128571
    for word, expected in uni.items():
        assert prob(model, word) == pytest.approx(expected, abs=1e-4), word

    # Bigram raw counts: <s> a 3, <s> b 1, <s> c 1, a b 1, a </s> 2, b </s> 2, c </s> 1
    # t = [4, 2, 1, 0]: Y = 4/(4 + 4) = 0.5; D1 = 1 - 2*0.5*2/4 = 0.5, D2 = 2 - 3*0.5*1/2 = 1.25, D3+ = 3
    d1, d2, d3 = 0.5, 1.25, 3.0
    gamma = {BOS: (d3 + 2 * d1) / 5, "a": (d1 + d2) / 3, "b": d2 / 2, "c": d1 / 1}  # 0.8, 0.583, 0.625, 0.5
    bi = {
        (BOS, "a"): (3 - d3) / 5 + gamma[BOS] * uni["a"],  # 0.16: all of it from the lower order
        (BOS, "b"): (1 - d1) / 5 + gamma[BOS] * uni["b"],  # 0.374286
        (BOS, "c"): (1 - d1) / 5 + gamma[BOS] * uni["c"],  # 0.26
        ("a", "b"): (1 - d1) / 3 + gamma["a"] * uni["b"],  # 0.366667
        ("a", EOS): (2 - d2) / 3 + gamma["a"] * uni[EOS],  # 0.325
        ("b", EOS): (2 - d2) / 2 + gamma["b"] * uni[EOS],  # 0.455357
        ("c", EOS): (1 - d1) / 1 + gamma["c"] * uni[EOS],  # 0.564286
    }
    assert set(model[2]) == set(bi)
    for gram, expected in bi.items():
        assert prob(model, *gram) == pytest.approx(expected, abs=1e-4), gram
    for context, expected in gamma.items():
        assert backoff(model, context) == pytest.approx(expected, abs=1e-4), context


# ------------------------------------------------------------------------------------------- properties


def vocabulary(model):
    return [gram[0] for gram in model[1] if gram != (BOS,)]


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("corpus", ["tiny", "small", "random", "char"])
def test_every_context_sums_to_one(tmp_path, corpus, order):
    sentences = {"tiny": TINY, "small": SMALL, "random": random_corpus(), "char": ["ab ba", "abba", "b a"]}[corpus]
    model = model_of(tmp_path, sentences, order, unit="char" if corpus == "char" else "word")
    words = vocabulary(model)
    assert UNK in words and EOS in words
    contexts = [()] + [gram for n in range(1, order) for gram in model[n]]
    for context in contexts:
        total = sum(10 ** conditional_log10(model, context, word) for word in words)
        assert total == pytest.approx(1.0, abs=1e-4), context


def test_backoff_columns(tmp_path):
    model = model_of(tmp_path, random_corpus(), order=3)
    text = (tmp_path / "lm.arpa").read_text()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 2:
            continue
        gram = tuple(fields[1].split())
        is_context = any(other[:-1] == gram for other in model.get(len(gram) + 1, {}))
        assert (len(fields) == 3) == is_context, line  # a back-off weight exactly on the contexts
    assert all(len(line.split("\t")) == 2 for line in text.split("\\3-grams:")[1].splitlines() if "\t" in line)


# ------------------------------------------------------------------------------------------- ARPA files


def test_round_trip_header_counts(tmp_path):
    path = tmp_path / "lm.arpa"
    counts = write_arpa(path, random_corpus(), order=3)
    text = path.read_text()
    header = {int(n): int(c) for n, c in re.findall(r"^ngram (\d+)=(\d+)$", text, re.M)}
    model = load_arpa(path)
    assert header == counts == {n: len(model[n]) for n in model}
    assert set(header) == {1, 2, 3}
    assert text == build_arpa(random_corpus(), order=3)
    assert text.startswith("\\data\\\n") and text.rstrip().endswith("\\end\\")


def test_malformed_arpa_names_the_line(tmp_path):
    good = build_arpa(TINY, order=2).splitlines()
    bigram_section = good.index("\\2-grams:")
    cases = {
        "garbage": (bigram_section + 3, "this is not an n-gram line"),
        "bad number": (bigram_section + 2, "-0.3x\t<s> a"),
        "wrong order": (bigram_section + 1, "-0.3\ta b c"),
    }
    for name, (index, replacement) in cases.items():
        lines = list(good)
        lines[index] = replacement
        path = tmp_path / f"{name}.arpa"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(UserError, match=rf"{re.escape(str(path))}:{index + 1}:"):
            load_arpa(path)

    truncated = tmp_path / "truncated.arpa"
    truncated.write_text("\n".join(good[:bigram_section + 3]) + "\n")
    with pytest.raises(UserError, match="before \\\\end"):
        load_arpa(truncated)
    short = tmp_path / "short.arpa"
    short.write_text("\n".join(good[:bigram_section + 3] + good[bigram_section + 4:]) + "\n")
    with pytest.raises(UserError, match="declares 8 2-grams but the section lists 7"):
        load_arpa(short)


def test_char_unit(tmp_path):
    assert tokenize(" ab  ba ", "char") == ["a", "b", "|", "b", "a"]
    model = model_of(tmp_path, ["ab ba", "abba"], order=3, unit="char")
    assert {g[0] for g in model[1]} == {"a", "b", "|", BOS, EOS, UNK}
    assert ("b", "|", "b") in model[3]
    assert score(model, tokenize("ab ba", "char")) > score(model, tokenize("ba ab", "char"))


def test_bad_input():
    for corpus in ([], ["", "   "]):
        with pytest.raises(UserError, match="no sentences"):
            build_arpa(corpus)
    with pytest.raises(UserError, match="order"):
        build_arpa(TINY, order=0)
    with pytest.raises(UserError, match="unit"):
        build_arpa(TINY, unit="phone")
    with pytest.raises(UserError, match="reserved"):
        build_arpa(["a </s> b"])


def test_lm_build_in_process(tmp_path, capsys):
    text = tmp_path / "train.txt"
    text.write_text("a b\n\na c\nb a\n")
    speechrnn_main(["lm", "build", str(text), "-o", str(tmp_path / "a.arpa"), "--order", "2"])
    summary = capsys.readouterr().out.strip()
    assert "\n" not in summary and "1-grams 6" in summary and "2-grams 8" in summary

    manifest = tmp_path / "train.jsonl"
    lines = [json.dumps({"audio_filepath": f"{i}.wav", "text": t}) for i, t in enumerate(TINY)]
    manifest.write_text("\n".join(lines) + "\n")
    speechrnn_main(["lm", "build", str(manifest), "-o", str(tmp_path / "b.arpa"), "--order", "2"])
    assert (tmp_path / "a.arpa").read_text() == (tmp_path / "b.arpa").read_text()
    speechrnn_main(["lm", "build", str(manifest), "-o", str(tmp_path / "c.arpa"), "--unit", "char"])
    assert "3-gram char model" in capsys.readouterr().out

    for name, content, message in [("empty.txt", "\n \n", "no sentences"),
                                   ("bad.jsonl", '{"text": "a"}\n{"txt": "b"}\n', "bad.jsonl:2:")]:
        (tmp_path / name).write_text(content)
        with pytest.raises(SystemExit) as exit_info:
            speechrnn_main(["lm", "build", str(tmp_path / name), "-o", str(tmp_path / "x.arpa")])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert "\n" not in error and error.startswith("error: ") and message in error
    assert not (tmp_path / "x.arpa").exists()


# ------------------------------------------------------------------------------------------- flashlight-text


def test_flashlight_kenlm_reads_the_arpa(tmp_path):
    pytest.importorskip("flashlight.lib.text")
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    path = tmp_path / "lm.arpa"
    write_arpa(path, random_corpus(), order=3)
    ours = load_arpa(path)
    words = Dictionary()
    for word in vocabulary(ours) + ["zebra"]:  # "zebra" is out of the LM's vocabulary: scored as <unk>
        words.add_entry(word)
    kenlm = KenLM(str(path), words)
    for sentence in ["the cat sat on a mat", "dog", "a zebra ran", "mat mat mat mat"]:
        state, total = kenlm.start(False), 0.0
        for word in sentence.split():
            state, log10_prob = kenlm.score(state, words.get_index(word))
            total += log10_prob
        total += kenlm.finish(state)[1]
        assert total == pytest.approx(score(ours, sentence), abs=1e-4), sentence


def test_torchaudio_ctc_decoder_with_char_lm(tmp_path):
    pytest.importorskip("flashlight.lib.text")
    import torch
    from torchaudio.models.decoder import ctc_decoder

    path = tmp_path / "chars.arpa"
    write_arpa(path, ["ab ba", "abba", "baab"], order=3, unit="char")
    decoder = ctc_decoder(lexicon=None, tokens=["-", "|", "a", "b"], lm=str(path), beam_size=4)
    emissions = torch.randn(1, 12, 4, generator=torch.Generator().manual_seed(0)).log_softmax(-1)
    hypotheses = decoder(emissions)
    assert len(hypotheses) == 1 and math.isfinite(hypotheses[0][0].score)


def test_speechrnn_lm_build_command(tmp_path):
    import subprocess
    import sys

    text = tmp_path / "corpus.txt"
    text.write_text("A B\nA C\nB A\n")
    run = subprocess.run([sys.executable, "-m", "speechrnn", "lm", "build", str(text), "-o", str(tmp_path / "lm.arpa"),
                          "--order", "2"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "2-gram word model from 3 sentences" in run.stdout
    assert load_arpa(tmp_path / "lm.arpa")[2][("A", "B")][0] < 0
