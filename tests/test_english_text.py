"""data_prep/english_text.py on the real packages (Debian fortunes, wordnet-base, wamerican; PyPI wordfreq), end to
end with the english_lm recipe's steps: text -> a small character LM -> bits per character against a character
n-gram of the same text."""

import re
from pathlib import Path

import pytest

import english_text
from speechrnn.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("english")
    manifest = out / "train.jsonl"
    manifest.write_text('{"text": "zyxwv in-domain line"}\n{"text": "Quokka"}\n', encoding="utf-8")
    assert english_text.main(["--out", str(out / "a"), "--word-lines", "3000", "--lexicon-words", "4000",
                              "--in-domain", str(manifest)]) == 0
    assert english_text.main(["--out", str(out / "b"), "--word-lines", "3000", "--lexicon-words", "4000",
                              "--in-domain", str(manifest)]) == 0
    return out


def test_text_is_deterministic_held_out_and_sourced(text_dir):
    a, b = text_dir / "a", text_dir / "b"
    for name in ("train.txt", "dev.txt", "test.txt", "words.tsv"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    train = set((a / "train.txt").read_text(encoding="utf-8").splitlines())
    held_out = set((a / "dev.txt").read_text(encoding="utf-8").splitlines()) | \
        set((a / "test.txt").read_text(encoding="utf-8").splitlines())
    assert len(train) > 50000 and len(held_out) > 1000 and not train & held_out
    sources = (a / "SOURCES.md").read_text(encoding="utf-8")
    for source in ("fortunes", "wordnet", "wordfreq", "in-domain"):
        assert re.search(rf"^\| {source} \| .+ \| .+ \| [1-9]\d* \|$", sources, re.M), source
    words = dict(line.split("\t") for line in (a / "words.tsv").read_text(encoding="utf-8").splitlines())
    assert {"the", "Quokka", "zyxwv"} <= set(words) and float(words["the"]) > float(words["zyxwv"])
    assert "Paris" in words and "paris" not in words  # wamerican writes it only with a capital


def test_missing_sources_are_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(english_text, "FORTUNES", tmp_path / "nowhere")
    assert english_text.main(["--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "apt-get install fortunes" in err


def test_recipe_steps_lm_beats_nothing_and_is_compared_with_the_ngram(text_dir, tmp_path, capsys):
    a = text_dir / "a"
    lines = (a / "train.txt").read_text(encoding="utf-8").splitlines()
    small = tmp_path / "train.txt"
    small.write_text("\n".join(lines[:4000]) + "\n", encoding="utf-8")
    dev = tmp_path / "dev.txt"
    dev.write_text("\n".join((a / "dev.txt").read_text(encoding="utf-8").splitlines()[:400]) + "\n", encoding="utf-8")
    main(["lm", "train", str(REPO / "recipes/english_lm/conf/default.yaml"), f"data.train_text={small}",
          f"data.dev_text={dev}", f"train.exp_dir={tmp_path / 'exp'}", "model.rnn.hidden_size=64",
          "model.embedding_dim=16", "train.max_epochs=1", "train.threads=1", "optim.warmup_steps=20",
          "data.max_frames=4000"])
    main(["lm", "build", str(small), "--unit", "char", "--order", "3", "-o", str(tmp_path / "char3.arpa")])
    capsys.readouterr()
    main(["lm", "score", str(tmp_path / "exp/model.pt"), str(dev)])
    main(["lm", "score", str(tmp_path / "char3.arpa"), str(dev)])
    rnn, ngram = [float(re.search(r": ([\d.]+) bits per character", line).group(1))
                  for line in capsys.readouterr().out.splitlines()]
    assert 1.0 < ngram < 4.5 and 1.0 < rnn < 6.6  # both far below a uniform guess over ~100 characters
