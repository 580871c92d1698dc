"""benchmarks/eval_timestamps.py's references: the energy segments and the Silero veto that drops the ones without
speech (a breath, a click), checked on synthetic audio and one real AN4 file."""

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from benchmarks import eval_timestamps

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def noise_bursts(spans: list[tuple[float, float]], seconds: float = 2.0) -> np.ndarray:
    """Quiet noise (-60 dB) with loud noise in `spans` (seconds)."""
    rng = np.random.default_rng(0)
    wav = 0.001 * rng.standard_normal(int(seconds * RATE))
    for start, end in spans:
        wav[int(start * RATE): int(end * RATE)] *= 300
    return wav.astype(np.float32)


def test_trim_segments_are_the_loud_runs_and_span_what_librosa_trims(shared_data):
    wav = noise_bursts([(0.2, 0.3), (0.8, 1.5)])
    quiet = eval_timestamps.silent_frames(wav, RATE, 30.0)
    segments = [(a / RATE, b / RATE) for a, b in eval_timestamps.energy_segments(wav, RATE, "trim", quiet)]
    assert len(segments) == 2
    assert segments[0] == pytest.approx((0.2, 0.3), abs=0.03) and segments[1] == pytest.approx((0.8, 1.5), abs=0.03)
    real, rate = sf.read(next((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav")),
                         dtype="float32")
    segments = eval_timestamps.energy_segments(real, rate, "trim", eval_timestamps.silent_frames(real, rate, 30.0))
    _, (first, last) = librosa.effects.trim(real, top_db=30.0, frame_length=400, hop_length=160)
    assert (segments[0][0], segments[-1][1]) == (first, last)


def test_the_veto_keeps_the_energy_segments_that_overlap_speech():
    segments = [(0, 100), (200, 300), (400, 500)]
    assert eval_timestamps.speech_segments_only(segments, [(250, 260), (480, 900)]) == [(200, 300), (400, 500)]
    assert eval_timestamps.speech_segments_only(segments, [(100, 200)]) == []  # touching is not overlapping


def test_silero_finds_speech_in_speech_and_none_in_noise(shared_data):
    speech, rate = sf.read(next((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav")),
                           dtype="float32")
    found = eval_timestamps.silero_speech(speech, rate)
    assert found and 0 < found[0][0] < found[-1][1] <= len(speech)
    assert eval_timestamps.silero_speech(noise_bursts([(0.5, 1.5)]), RATE) == []
    resampled = eval_timestamps.silero_speech(librosa.resample(speech, orig_sr=rate, target_sr=22050), 22050)
    assert resampled[0][0] / 22050 == pytest.approx(found[0][0] / rate, abs=0.05)  # samples at the input's rate
