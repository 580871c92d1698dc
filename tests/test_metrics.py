"""speechrnn.metrics: WER/CER with S/D/I counted by hand, empty references, the report files."""

import json
from dataclasses import asdict

import pytest

from speechrnn.metrics import error_rates, word_errors, write_report

# (ref, hyp, word S, D, I, char errors) -- counted by hand; characters include spaces
PAIRS = [
    ("A B C D", "A X C D E", 1, 0, 1, 3),  # B->X; insert " E" (2 chars)
    ("A B C", "A C", 0, 1, 0, 2),  # delete "B" and one space
    ("HELLO", "HELLO", 0, 0, 0, 0),
    ("THE CAT SAT", "THE BAT SAT ON", 1, 0, 1, 4),  # C->B; insert " ON" (3 chars)
]


@pytest.mark.parametrize("ref, hyp, sub, dele, ins, char_errors", PAIRS)
def test_single_pair(ref, hyp, sub, dele, ins, char_errors):
    rates = error_rates([ref], [hyp])
    assert (rates.word_substitutions, rates.word_deletions, rates.word_insertions) == (sub, dele, ins)
    assert rates.words == len(ref.split())
    assert rates.wer == pytest.approx((sub + dele + ins) / len(ref.split()))
    assert rates.chars == len(ref)
    assert rates.char_errors == char_errors
    assert rates.cer == pytest.approx(char_errors / len(ref))
    assert rates.utterances == 1
    assert rates.sentence_errors == int(ref.split() != hyp.split())
    assert word_errors(ref, hyp) == sub + dele + ins


def test_corpus_level_rates_pool_counts():
    refs = [p[0] for p in PAIRS]
    hyps = [p[1] for p in PAIRS]
    rates = error_rates(refs, hyps)
    words = sum(len(r.split()) for r in refs)  # 4 + 3 + 1 + 3 = 11
    sub, dele, ins = (sum(p[i] for p in PAIRS) for i in (2, 3, 4))
    assert words == 11 and (sub, dele, ins) == (2, 1, 2)
    assert (rates.words, rates.word_substitutions, rates.word_deletions, rates.word_insertions) == (words, sub, dele, ins)
    assert rates.wer == pytest.approx(5 / 11), "pooled over the corpus, not averaged per utterance"
    chars = sum(len(r) for r in refs)
    assert rates.chars == chars and rates.char_errors == sum(p[5] for p in PAIRS)
    assert rates.cer == pytest.approx(9 / chars)
    assert rates.utterances == 4 and rates.sentence_errors == 3
    summary = rates.summary()
    assert "WER 45.45 %" in summary and "S 2, D 1, I 2 / 11 words" in summary and "SER 3/4" in summary


def test_everything_deleted():
    rates = error_rates(["A B C"], [""])
    assert (rates.word_substitutions, rates.word_deletions, rates.word_insertions) == (0, 3, 0)
    assert rates.wer == 1.0 and rates.cer == 1.0


def test_empty_reference_counts_hypothesis_as_insertions():
    rates = error_rates(["", "A B"], ["X Y", "A B"])
    assert rates.words == 2
    assert (rates.word_substitutions, rates.word_deletions, rates.word_insertions) == (0, 0, 2)
    assert rates.wer == pytest.approx(1.0)
    assert rates.chars == 3 and rates.char_errors == 3  # "X Y" inserted against nothing
    assert rates.sentence_errors == 1 and rates.utterances == 2
    assert word_errors("", "X Y") == 2
    assert word_errors("  ", "") == 0


def test_only_empty_references_does_not_crash():
    rates = error_rates(["", " "], ["", "Z"])
    assert rates.words == 0 and rates.word_insertions == 1 and rates.char_errors == 1
    assert rates.sentence_errors == 1
    perfect = error_rates([""], [""])
    assert perfect.wer == 0.0 and perfect.cer == 0.0 and perfect.sentence_errors == 0


def test_write_report(tmp_path):
    ids = [f"utt{i}" for i in range(len(PAIRS))] + ["empty"]
    refs = [p[0] for p in PAIRS] + [""]
    hyps = [p[1] for p in PAIRS] + ["OOPS"]
    out = tmp_path / "reports" / "nested"
    rates = write_report(out, "test", ids, refs, hyps)

    lines = (out / "test.per_utt.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ids)
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == ids
    assert [r["ref"] for r in records] == refs and [r["hyp"] for r in records] == hyps
    assert [r["word_errors"] for r in records] == [p[2] + p[3] + p[4] for p in PAIRS] + [1]
    assert [r["ref_words"] for r in records] == [len(r.split()) for r in refs]

    summary = json.loads((out / "test.summary.json").read_text())
    assert summary == asdict(rates)
    assert summary["word_insertions"] == 2 + 1 and summary["utterances"] == 5
    assert sum(r["word_errors"] for r in records) == (summary["word_substitutions"] + summary["word_deletions"]
                                                      + summary["word_insertions"])
