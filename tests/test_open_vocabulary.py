"""Open-vocabulary lexicon decoding (BeamConfig.oov_margin, `speechrnn tune --oov-margins`): a word the lexicon
lacks is kept when the model is clearly sure of it, and only then."""

import math

import torch

from speechrnn.decode import BeamConfig, BeamDecoder, Hypothesis, prefer_lexicon_free
from speechrnn.decoder_files import write_lexicon
from speechrnn.text import TextConfig, Tokenizer
from speechrnn.tune import grid_search

TOKENIZER = Tokenizer.build(["CAT COT"], TextConfig())  # <blank>, ' ', A, C, O, T
BLANK = "<blank>"


def posteriors(frames, peak=0.9):
    """(1, T, V) log-probs: each frame's symbol gets `peak` (or a {symbol: prob} dict), the rest is shared."""
    rows = []
    for frame in frames:
        probs = {frame: peak} if isinstance(frame, str) else dict(frame)
        rest = (1.0 - sum(probs.values())) / (len(TOKENIZER) - len(probs))
        rows.append([math.log(probs.get(s, rest)) for s in TOKENIZER.symbols])
    return torch.tensor([rows], dtype=torch.float32)


def decode(log_probs, lexicon, margin):
    with BeamDecoder(TOKENIZER, BeamConfig(lexicon=lexicon, oov_margin=margin)) as decoder:
        return decoder.decode(log_probs, torch.tensor([log_probs.shape[1]]))[0][0].text


def test_a_sure_word_missing_from_the_lexicon_is_kept(tmp_path):
    lexicon = str(tmp_path / "lexicon.txt")
    write_lexicon(["CAT", "COT"], TOKENIZER, lexicon)
    sure_tot = posteriors(["T", BLANK, "O", BLANK, "T", BLANK])  # TOT: not in the lexicon
    assert decode(sure_tot, lexicon, float("inf")) in {"CAT", "COT"}  # closed vocabulary: forced onto a lexicon word
    assert decode(sure_tot, lexicon, 2.0) == "TOT"
    unsure = posteriors([{"T": 0.5, "C": 0.45}, BLANK, "O", BLANK, "T", BLANK])  # TOT by a hair over COT
    assert decode(unsure, lexicon, 2.0) == "COT"  # the lexicon word wins when the gain is below the margin
    assert decode(unsure, lexicon, 0.0) == "TOT"


def test_a_lexicon_word_the_model_reads_stays(tmp_path):
    lexicon = str(tmp_path / "lexicon.txt")
    write_lexicon(["CAT", "COT"], TOKENIZER, lexicon)
    cot = posteriors(["C", BLANK, "O", BLANK, "T", BLANK])
    assert decode(cot, lexicon, 0.0) == "COT"  # greedy and lexicon agree: gain 0 is not above the margin


def test_tune_tries_margins_without_decoding_again(tmp_path):
    lexicon = str(tmp_path / "lexicon.txt")
    write_lexicon(["CAT", "COT"], TOKENIZER, lexicon)
    log_probs = torch.cat([posteriors(["T", BLANK, "O", BLANK, "T", BLANK]),
                           posteriors(["C", BLANK, "A", BLANK, "T", BLANK])])
    lens = torch.tensor([6, 6])
    (best, rates), tried = grid_search(TOKENIZER, {"lexicon": lexicon}, {"word_score": [0.0],
                                       "oov_margin": [float("inf"), 2.0]}, ["TOT", "CAT"], log_probs, lens)
    assert [setting["oov_margin"] for setting, _ in tried] == [float("inf"), 2.0]
    assert [r.wer for _, r in tried] == [0.5, 0.0]
    assert best["oov_margin"] == 2.0 and rates.wer == 0.0
    nbests = [[h] for h in [BeamDecoder(TOKENIZER, BeamConfig(lexicon=lexicon)).decode(log_probs, lens)[i][0]
                            for i in range(2)]]
    assert prefer_lexicon_free(nbests, log_probs, lens, TOKENIZER, 2.0)[0][0].text == "TOT"
    assert nbests[0][0].text != "TOT"  # the input lists are left as they were


def test_a_line_keeps_its_lexicon_words_and_swaps_only_the_sure_unknown_one(tmp_path):
    lexicon = str(tmp_path / "lexicon.txt")
    write_lexicon(["CAT", "COT"], TOKENIZER, lexicon)
    # "COT TOT" read by greedy as "TOT TOT": the first T by a hair (a lexicon word's misreading), the second surely
    line = posteriors([{"T": 0.5, "C": 0.45}, BLANK, "O", BLANK, "T", BLANK, " ", BLANK,
                       "T", BLANK, "O", BLANK, "T", BLANK])
    assert decode(line, lexicon, float("inf")) == "COT COT"
    assert decode(line, lexicon, 2.0) == "COT TOT"  # whole lines compared would give "TOT TOT"
    assert decode(line, lexicon, 0.0) == "TOT TOT"
    words_differ = posteriors(["T", BLANK, "O", BLANK, "T", BLANK, "T", BLANK, "O", BLANK, "T", BLANK])  # no space read
    assert decode(words_differ, lexicon, 2.0) == "TOTTOT"  # counts differ: the whole transcripts are compared


def test_the_fallback_decoder_reads_only_where_greedy_and_the_lexicon_disagree(tmp_path):
    lexicon = str(tmp_path / "lexicon.txt")
    write_lexicon(["CAT", "COT"], TOKENIZER, lexicon)
    seen = []

    class Fallback:  # a lexicon-free decoder that reads TOT, recording how many utterances it was given
        def decode(self, log_probs, lens):
            seen.append(log_probs.shape[0])
            ids = TOKENIZER.encode("TOT")
            return [[Hypothesis(text="TOT", score=0.0, tokens=ids, timesteps=[])] for _ in range(log_probs.shape[0])]

    log_probs = torch.cat([posteriors(["C", BLANK, "A", BLANK, "T", BLANK]),
                           posteriors(["T", BLANK, "O", BLANK, "T", BLANK])])
    with BeamDecoder(TOKENIZER, BeamConfig(lexicon=lexicon, oov_margin=2.0), open_vocabulary=Fallback()) as decoder:
        texts = [nbest[0].text for nbest in decoder.decode(log_probs, torch.tensor([6, 6]))]
    assert texts == ["CAT", "TOT"] and seen == [1]  # CAT: greedy agrees, not decoded again
