"""The no-speech / no-ink gate (speechrnn/gate.py): silence, noise and clicks through the shipped AN4 bundle, and a
dot of ink through the UNIPEN bundle, give an empty transcript with the gate's decision in json, while real speech
and handwriting read as before; Recognizer.load(gate=False) and `transcribe --no-gate` turn it off. (Before the
gate: 10 s of silence read "S", 50 ms of noise "X", a click a letter.)"""

import json
import subprocess
import sys

import jiwer
import numpy as np
import pytest
import soundfile as sf

from speechrnn.gate import Gate, voicing
from speechrnn.ink import Ink
from speechrnn.output import render
from speechrnn.pretrained import default_bundle
from speechrnn.recognizer import Recognizer

RATE = 16000
AN4_WAV = "an4/wav/an4test_clstk/fcaw/an406-fcaw-b.wav"  # "RUBOUT G N E F THREE NINE"


@pytest.fixture(scope="module")
def speech():
    return Recognizer.load(default_bundle("audio"))


@pytest.fixture(scope="module")
def ungated():
    return Recognizer.load(default_bundle("audio"), gate=False)


def non_speech() -> dict:
    rng = np.random.default_rng(2024)
    click = np.zeros(RATE // 2, np.float32)
    click[3000:3008] = [0.9, -0.7, 0.5, -0.3, 0.2, -0.1, 0.05, 0.0]
    pink = np.cumsum(rng.standard_normal(RATE // 4))  # brown-ish: steeper than pink, a harder case
    faded = rng.standard_normal(RATE // 2) * np.hanning(RATE // 2) * 0.3  # a burst that rises over its background
    return {
        "10 s of silence": (np.zeros(10 * RATE, np.float32), RATE),
        "50 ms of noise": ((rng.standard_normal(RATE // 20) * 0.05).astype(np.float32), RATE),
        "300 ms of loud noise": ((rng.standard_normal(3 * RATE // 10) * 0.3).astype(np.float32), RATE),
        "250 ms of red noise": ((0.3 * pink / np.abs(pink).max()).astype(np.float32), RATE),
        "a noise burst faded in and out": (faded.astype(np.float32), RATE),
        "a click": (click, RATE),
        "a click at 8 kHz": (click[::2].copy(), RATE // 2),
    }


def test_silence_noise_and_clicks_give_nothing_with_the_decision_in_json(speech, ungated):
    names, inputs = zip(*non_speech().items())
    results = speech.transcribe(list(inputs))
    assert [r.text for r in results] == [""] * len(inputs), names
    for result in results:
        assert result.gate["speech"] is False and result.gate["reason"]
        shown = json.loads(render(result, "json"))
        assert shown["text"] == "" and shown["gate"] == result.gate
    assert "silence" in results[0].gate["reason"]
    # without the gate the model reads letters into them (the bug this fixes)
    assert sum(bool(r.text) for r in ungated.transcribe(list(inputs))) >= len(inputs) - 2


def test_a_real_utterance_passes_unchanged(speech, ungated, shared_data):
    path = str(shared_data / AN4_WAV)
    gated, plain = speech.transcribe(path, timestamps=True), ungated.transcribe(path, timestamps=True)
    assert gated.text == plain.text
    reference = "RUBOUT G N E F THREE NINE"  # AN4's transcript: the model reads it, with at most one slip
    assert jiwer.process_words(reference, gated.text).wer <= 1 / len(reference.split())
    assert [w.text for w in gated.words] == [w.text for w in plain.words]
    assert gated.gate["speech"] is True and json.loads(render(gated, "jsonl"))["gate"]["speech"] is True
    assert plain.gate is None and "gate" not in json.loads(render(plain, "json"))


def test_a_long_recording_says_what_the_gate_made_of_its_segments(shared_data):
    """Audio over split_over seconds is cut at pauses and each segment gated; the transcript sums them up."""
    recognizer = Recognizer.load(default_bundle("audio"), split_over=5.0)
    words, rate = sf.read(shared_data / AN4_WAV, dtype="float32")
    silence = recognizer.transcribe((np.zeros(40 * rate, np.float32), rate))
    assert silence.text == "" and silence.gate["speech"] is False
    speech = recognizer.transcribe((np.concatenate([np.zeros(3 * rate, np.float32), words] * 2), rate))
    assert speech.text and speech.gate["speech"] is True and json.loads(render(speech, "json"))["gate"] == speech.gate


def test_the_gate_judges_sound_not_the_model():
    """On the waveform alone: a voiced, sustained sound (a 120 Hz buzz with a syllable's envelope) is speech; the
    same envelope on noise, a 60 ms buzz and near silence are not."""
    gate, rng = Gate(), np.random.default_rng(0)
    t = np.arange(int(0.3 * RATE)) / RATE
    envelope = np.sin(np.pi * t / t[-1]) ** 2
    buzz = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 20)) * envelope * 0.2
    around = lambda x: np.concatenate([np.zeros(RATE // 4), x, np.zeros(RATE // 4)])  # noqa: E731
    assert gate.audio(around(buzz), RATE)["speech"] is True
    assert voicing(buzz, RATE).max() > 0.8 and voicing(rng.standard_normal(RATE), RATE).max() < 0.4
    noise = gate.audio(around(rng.standard_normal(len(t)) * envelope * 0.2), RATE)
    assert noise["speech"] is False and "no voice" in noise["reason"]
    assert gate.audio(around(buzz[: int(0.06 * RATE)]), RATE)["speech"] is False
    quiet = gate.audio(around(buzz) * 1e-4, RATE)  # about -85 dBFS: under the -70 dBFS floor of digital silence
    assert quiet["speech"] is False and "silence" in quiet["reason"]


def test_a_word_cut_tight_at_a_steady_level_is_speech():
    """No silence around it and no dip in level (FSDD's quietest speaker): a steady voiced sound is speech, steady
    noise of the same shape and level is not, at any level above digital silence."""
    gate, rng = Gate(), np.random.default_rng(1)
    t = np.arange(int(0.4 * RATE)) / RATE
    buzz = sum(np.sin(2 * np.pi * 130 * k * t) / k for k in range(1, 20))
    for level in (0.3, 0.003):  # about -13 and -53 dBFS
        word = gate.audio(buzz * level, RATE)
        assert word["speech"] is True and "voiced without a break" in word["reason"]
        for noise in (rng.standard_normal(len(t)), np.cumsum(rng.standard_normal(len(t))) / 30):  # white, brown
            assert gate.audio(noise * level, RATE)["speech"] is False


def test_the_switch_on_the_command_line(tmp_path):
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(2 * RATE, np.float32), RATE)
    runs = [subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(silence), "--format", "jsonl", *extra],
                           capture_output=True, text=True, timeout=300) for extra in ([], ["--no-gate"])]
    assert [run.returncode for run in runs] == [0, 0], [run.stderr for run in runs]
    gated, plain = (json.loads(run.stdout) for run in runs)
    assert gated["text"] == "" and gated["gate"]["speech"] is False
    assert plain["text"] != "" and "gate" not in plain


def test_a_dot_of_ink_gives_nothing_and_words_still_read(unipen_words):
    recognizer, ungated = Recognizer.load(default_bundle("ink")), Recognizer.load(default_bundle("ink"), gate=False)
    rng = np.random.default_rng(1)
    dots = [Ink([np.array([[500.0, 300.0]])]), Ink([np.array([[500.0, 300.0], [500.4, 300.2], [500.1, 299.8]])]),
            Ink([500 + rng.normal(0, 1.0, (6, 2))])]
    results = recognizer.transcribe(dots)
    assert [r.text for r in results] == ["", "", ""]
    assert all(r.gate["ink"] is False and json.loads(render(r, "json"))["gate"] == r.gate for r in results)
    assert any(r.text for r in ungated.transcribe(dots))  # what the model made of them without the gate
    words = [segment.ink for segment in unipen_words[:20]]
    gated = recognizer.transcribe(words)
    assert all(r.gate["ink"] is True for r in gated)
    assert [r.text for r in gated] == [r.text for r in ungated.transcribe(words)]
    assert sum(bool(r.text) for r in gated) == len(words)
