"""Synthetic FSDD-style digits (data_prep/tts_digits.py): every clip is the labelled digit word at the asked rate,
trimmed to the word, the manifest is FSDD's format, and the same seed gives the same files. Needs Debian's espeak-ng
and flite (.ci/run installs them); without them the test fails rather than skips in CI."""

import os
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from speechrnn.data import read_manifest

REPO = Path(__file__).resolve().parents[1]
ENGINES = ["espeak-ng", "flite"]
pytestmark = pytest.mark.skipif(not os.environ.get("CI") and not all(map(shutil.which, ENGINES)),
                                reason="espeak-ng and flite are not installed (apt-get install espeak-ng flite)")


def load_prep():
    import tts_digits  # data_prep/tts_digits.py (pyproject's pytest pythonpath lists data_prep/)
    return tts_digits


def test_synthetic_digits_are_trimmed_labelled_clips_and_reproducible(tmp_path):
    prep = load_prep()
    for engine in ENGINES:
        first = prep.synthesize(tmp_path / f"{engine}_1", engines=[engine], max_voices=2)
        second = prep.synthesize(tmp_path / f"{engine}_2", engines=[engine], max_voices=2)
        assert len(first) == 20 and len({e["speaker"] for e in first}) == 2
        assert [e["id"] for e in first] == [e["id"] for e in second]
        entries = read_manifest(tmp_path / f"{engine}_1" / "tts.jsonl")
        for entry, again in zip(entries, read_manifest(tmp_path / f"{engine}_2" / "tts.jsonl")):
            digit = entry["id"].split("_")[0]
            assert entry["label"] == digit and entry["text"] == prep.WORDS[int(digit)]
            audio, rate = sf.read(entry["audio_filepath"])
            assert rate == 8000 and audio.ndim == 1 and 0.1 < len(audio) / rate < 1.5
            assert len(audio) / rate == pytest.approx(entry["duration"], abs=1e-4)
            assert np.array_equal(audio, sf.read(again["audio_filepath"])[0])
            # trimmed: some 25 ms frame in the first and in the last 50 ms is within 30 dB of the loudest frame
            rms = librosa.feature.rms(y=audio, frame_length=200, hop_length=80, center=False)[0]
            level = librosa.amplitude_to_db(rms, ref=np.max)  # (frames,) dB under the peak, 10 ms hop
            assert level[:3].max() > -30 and level[-3:].max() > -30
