"""Manifests stream (iter_manifest) and datasets keep columns (Utterances, StringColumn, RaggedInts): the same
entries, utterances, tokens and lengths as the former list-of-dicts reader, errors that name file:line, and a bad
line found only when the stream reaches it."""

import json
import os
from pathlib import Path

import pytest
import torch

from speechrnn.data import (AudioDataset, BucketBatchSampler, RaggedInts, StringColumn, Utterance, Utterances,
                            iter_manifest, load_utterances, manifest_texts, read_manifest)
from speechrnn.errors import ManifestError
from speechrnn.text import TextConfig, Tokenizer

LINES = [
    {"id": "u1", "audio_filepath": "wav/a.wav", "duration": 1.25, "text": "hello world", "speaker": "s1"},
    {"audio_filepath": "../other/b.flac", "duration": 2.0, "text": "Grüße, naïve café!", "extra": [1, 2]},
    None,  # a blank line
    {"audio_filepath": "/abs/c.wav", "duration": 0.5, "text": "", "speaker": "s2", "id": 7},
    {"id": "u4", "audio_filepath": "d.wav", "duration": 3, "text": "it's  ONE\ttwo"},
]


def write(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(("" if line is None else line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    return path


def reference_entries(path: Path) -> list[dict]:
    """What read_manifest gave before it streamed (a list of dicts built line by line)."""
    folder = os.path.realpath(path.parent)
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            entry = json.loads(line)
            if not os.path.isabs(entry["audio_filepath"]):
                entry["audio_filepath"] = os.path.normpath(os.path.join(folder, entry["audio_filepath"]))
            entry.setdefault("id", Path(entry["audio_filepath"]).stem)
            entries.append(entry)
    return entries


@pytest.fixture()
def manifest(tmp_path) -> Path:
    return write(tmp_path / "data" / "train.jsonl", LINES)


def test_read_and_iter_give_the_former_entries(manifest, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # resolved against the manifest's folder, not the working directory
    expected = reference_entries(manifest)
    assert read_manifest(manifest) == expected
    assert list(iter_manifest(manifest)) == expected
    assert read_manifest(os.path.relpath(manifest)) == expected
    assert [e["id"] for e in expected] == ["u1", "b", 7, "u4"]
    assert manifest_texts(manifest) == [str(e["text"]) for e in expected]


def test_load_utterances_matches_the_entries(manifest):
    entries = reference_entries(manifest)
    expected = [Utterance(str(e["id"]), e["audio_filepath"], float(e["duration"]), str(e["text"]),
                          str(e.get("speaker", ""))) for e in entries]
    utts = load_utterances(manifest)
    assert isinstance(utts, Utterances) and len(utts) == 4
    assert list(utts) == expected
    assert [utts[i] for i in range(4)] == expected and utts[-1] == expected[-1]
    assert list(utts[1:3]) == expected[1:3] and list(utts[::-2]) == expected[::-2]
    assert list(utts.take([3, 0])) == [expected[3], expected[0]]
    assert list(Utterances(expected)) == expected
    with pytest.raises(IndexError):
        utts[4]


@pytest.mark.parametrize("bad, message", [("{not json", "not a JSON object"), ("[1, 2]", "missing field"),
                                          (json.dumps({"audio_filepath": "x.wav", "text": "A"}), "duration")])
def test_a_bad_line_is_reported_with_its_number_when_the_stream_reaches_it(tmp_path, bad, message):
    path = write(tmp_path / "m.jsonl", [LINES[0], LINES[1], None, bad, LINES[4]])
    stream = iter_manifest(path)
    assert next(stream)["id"] == "u1" and next(stream)["id"] == "b"  # the lines before it are read first
    with pytest.raises(ManifestError) as err:
        next(stream)
    text = str(err.value)
    assert text.startswith(f"{path}:4: ") and message in text and "\n" not in text
    readers = [read_manifest, load_utterances] + ([manifest_texts] if message != "duration" else [])  # needs text only
    for read in readers:
        with pytest.raises(ManifestError, match=r"m\.jsonl:4: "):
            read(path)


def test_a_line_that_is_not_utf8_is_reported_with_its_number(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(LINES[0]).encode() + b"\n" + '{"text": "café"}'.encode("latin-1") + b"\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(path, fields=("text",))
    assert str(err.value).startswith(f"{path}:2: not UTF-8") and "\n" not in str(err.value)


def test_a_missing_manifest_fails_at_the_call_not_at_the_first_line(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        iter_manifest(tmp_path / "nope.jsonl")


def test_string_column_and_ragged_ints():
    strings = ["", "abc", "Grüße", "日本語", "x" * 1000]
    column = StringColumn(strings)
    assert list(column) == strings and len(column) == 5
    assert [column[i] for i in range(-5, 5)] == strings + strings
    assert list(column.take([4, 0, 2])) == [strings[4], strings[0], strings[2]]
    with pytest.raises(IndexError):
        column[5]
    assert StringColumn(strings).digest() == column.digest() != StringColumn(strings[:-1] + ["y"]).digest()
    assert StringColumn(["ab", "c"]).digest() != StringColumn(["a", "bc"]).digest()

    lists = [[1, 2, 3], [], [0], [255, 7]]
    ragged = RaggedInts(lists)
    assert list(ragged) == lists and ragged[-1] == [255, 7] and ragged.flat.typecode == "B"  # one byte per id
    wide = RaggedInts(lists + [[70_000, 1]])  # widened on the fly, earlier items kept
    assert list(wide) == lists + [[70_000, 1]] and wide.flat.itemsize == 4
    assert list(ragged.take([3, 1])) == [[255, 7], []]
    assert RaggedInts([[1, 2], [3]]).digest() != RaggedInts([[1], [2, 3]]).digest()


def test_audio_dataset_holds_what_the_list_based_one_held(manifest):
    utts = load_utterances(manifest)
    tokenizer = Tokenizer.build(manifest_texts(manifest), TextConfig())
    dataset = AudioDataset(utts, tokenizer, 16000, hop_length=160)
    as_list = AudioDataset(list(utts), tokenizer, 16000, hop_length=160)  # callers may still pass a list
    expected_tokens = [tokenizer.encode(u.text) for u in utts]
    expected_lengths = [int(u.duration * 16000) for u in utts]
    for ds in (dataset, as_list):
        assert list(ds.tokens) == expected_tokens and list(ds.texts) == [u.text for u in utts]
        assert list(ds.input_lengths) == expected_lengths
        assert list(ds.frame_lengths) == [n / 160 for n in expected_lengths]
    assert dataset.fingerprint() == as_list.fingerprint()
    assert torch.tensor(dataset.input_lengths, dtype=torch.long).tolist() == expected_lengths

    kept = dataset.subset([3, 0])
    assert [u.id for u in kept.utterances] == ["u4", "u1"]
    assert list(kept.tokens) == [expected_tokens[3], expected_tokens[0]]
    assert list(kept.frame_lengths) == [expected_lengths[3] / 160, expected_lengths[0] / 160]
    assert dataset.without_augmentation().fingerprint() == dataset.fingerprint()
    assert kept.fingerprint() != dataset.fingerprint()
    sampler = BucketBatchSampler(dataset.frame_lengths, 400, seed=3)
    assert sampler.batches() == BucketBatchSampler(list(dataset.frame_lengths), 400, seed=3).batches()


def test_changed_text_changes_the_fingerprint(manifest, tmp_path):
    tokenizer = Tokenizer.build(manifest_texts(manifest), TextConfig())
    other = write(tmp_path / "data" / "other.jsonl", [LINES[0], LINES[1], {**LINES[3], "text": "e"}, LINES[4]])
    first = AudioDataset(load_utterances(manifest), tokenizer, 16000)
    second = AudioDataset(load_utterances(other), tokenizer, 16000)
    assert first.fingerprint() != second.fingerprint()
