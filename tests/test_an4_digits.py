"""Digits cut out of AN4 training utterances (data_prep/an4_digits.py): on real AN4 utterances read in place, each
digit word of the reference transcript becomes one 8 kHz clip labelled with it (OH, letters and SEVENTY-like words
are not cut), the output is the same run after run, an unreadable file costs one warning line and the rest goes on,
and AN4's held-out splits are refused."""

import json

import numpy as np
import pytest
import soundfile as sf

from speechrnn.data import read_manifest, write_manifest

# utterance -> its digit words' places in the transcript and labels (ERASE O T H F I FIVE ZERO: the letter O is not a
# digit; RUBOUT T G J W B SEVENTY NINE FIFTY NINE and ENTER NINE EIGHTY NINE: tens are not digits)
UTTERANCES = {"an88-fbbh-b": {6: "5", 7: "0"}, "an89-fbbh-b": {7: "9", 9: "9"}, "an149-fclc-b": {1: "9", 3: "9"}}


@pytest.fixture(scope="module")
def an4_manifest(shared_data, tmp_path_factory):
    """train.jsonl of the three UTTERANCES (audio in place) and, second, a file that is not audio."""
    import an4  # data_prep/an4.py (pyproject's pytest pythonpath lists data_prep/)

    if not (shared_data / "an4").is_dir():
        pytest.skip(f"AN4 not found at {shared_data / 'an4'}")
    root = an4.find_an4_root(shared_data / "an4")
    texts = dict(an4.parse_transcription(root / "etc" / "an4_train.transcription"))
    fileids = an4.parse_fileids(root / "etc" / "an4_train.fileids")
    folder = tmp_path_factory.mktemp("an4")
    broken = folder / "broken.wav"
    broken.write_bytes(b"not audio at all" * 100)
    entries = []
    for uttid in UTTERANCES:
        audio = an4.find_audio(root / "wav", fileids[uttid])
        entries.append({"id": uttid, "audio_filepath": str(audio), "duration": 1.0, "text": texts[uttid],
                        "speaker": fileids[uttid].split("/")[1]})
    entries.insert(1, {"id": "broken", "audio_filepath": str(broken), "duration": 1.0, "text": "ENTER SIX",
                       "speaker": "xxxx"})
    write_manifest(folder / "train.jsonl", entries)
    return folder / "train.jsonl", texts


def test_digit_words_become_labelled_8khz_clips_reproducibly(an4_manifest, tmp_path, capsys):
    import an4_digits  # data_prep/an4_digits.py

    manifest, texts = an4_manifest
    clips = an4_digits.cut_digits(manifest, tmp_path / "a")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.wav" in warnings[0] and "broken skipped" in warnings[0]

    # in manifest order, every digit word of each transcript and nothing else
    expected = [f"{utt}_{k}_{label}" for utt, digits in UTTERANCES.items() for k, label in sorted(digits.items())]
    assert [clip["id"] for clip in clips] == expected
    entries = read_manifest(tmp_path / "a" / "an4_digits.jsonl")
    assert len(entries) == len(expected)
    for entry in entries:
        utt, k, label = entry["id"].rsplit("_", 2)
        word = texts[utt].split()[int(k)]
        assert entry["label"] == label and entry["text"] == word.lower() == an4_digits.WORDS[int(label)]
        assert entry["speaker"] == "an4-" + utt.split("-")[1]
        audio, rate = sf.read(entry["audio_filepath"])
        assert rate == 8000 and audio.ndim == 1
        # the word (0.15-1.2 s) and 50 ms either side
        assert 0.25 <= len(audio) / rate <= 1.3 and len(audio) / rate == pytest.approx(entry["duration"], abs=1e-4)
        assert np.abs(audio).max() > 0.01  # speech, not silence

    again = an4_digits.cut_digits(manifest, tmp_path / "b")
    assert [c["id"] for c in again] == [c["id"] for c in clips]
    lines = (tmp_path / "a" / "an4_digits.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "b" / "an4_digits.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["audio_filepath"].startswith("wav/")  # relative to the manifest
    for entry in entries:
        name = entry["id"] + ".wav"
        assert (tmp_path / "a" / "wav" / name).read_bytes() == (tmp_path / "b" / "wav" / name).read_bytes()
    assert not list((tmp_path / "a" / "wav").glob("*.tmp"))


@pytest.mark.parametrize("name", ["dev.jsonl", "test.jsonl", "an4_test.jsonl"])
def test_held_out_splits_are_refused(tmp_path, name):
    import an4_digits
    from common import PrepError

    with pytest.raises(PrepError, match="only AN4's training split"):
        an4_digits.cut_digits(tmp_path / name, tmp_path / "out")
    assert not (tmp_path / "out").exists()
