"""Waveform augmentation (speechrnn/augment.py): each transform does what it says, draws are reproducible from
(seed, epoch, index), and the config refuses values out of range."""

import math

import numpy as np
import pytest
import torch

from speechrnn.augment import (AugmentConfig, add_noise, augment, clip, codec_round_trip, colored_noise,
                               narrowband, pad_edges, speech_bounds)
from speechrnn.config import load_config
from speechrnn.data import AudioDataset, Utterance
from speechrnn.errors import ConfigError

RATE = 16000


def tone_burst(seconds_before=0.3, seconds_on=0.5, seconds_after=0.3, freq=440.0) -> torch.Tensor:
    """Quiet edges around a loud tone: (N,)."""
    t = torch.arange(int(seconds_on * RATE)) / RATE
    on = 0.5 * torch.sin(2 * math.pi * freq * t)
    edges = [1e-4 * torch.randn(int(seconds * RATE)) for seconds in (seconds_before, seconds_after)]
    return torch.cat([edges[0], on, edges[1]])


def band_energy(wav: torch.Tensor, low: float, high: float) -> float:
    spectrum = torch.fft.rfft(wav.double()).abs().square()
    freqs = torch.fft.rfftfreq(len(wav), 1 / RATE)
    return float(spectrum[(freqs >= low) & (freqs < high)].sum())


def test_narrowband_removes_what_a_telephone_cannot_carry():
    wav = torch.randn(RATE, generator=torch.Generator().manual_seed(0))
    out = narrowband(wav, RATE, 8000)
    assert len(out) == len(wav)
    assert band_energy(out, 4400, 8000) < 1e-2 * band_energy(wav, 4400, 8000)  # 20 dB down at least
    assert band_energy(out, 500, 3000) > 0.8 * band_energy(wav, 500, 3000)


def test_noise_is_added_at_the_asked_snr():
    wav = torch.sin(torch.arange(RATE) * 0.05)
    for color in ("white", "pink", "brown"):
        noisy = add_noise(wav, 10.0, color, np.random.default_rng(1))
        noise = noisy - wav
        snr = 10 * math.log10(float(wav.square().mean()) / float(noise.square().mean()))
        assert snr == pytest.approx(10.0, abs=0.2)
    assert torch.equal(add_noise(torch.zeros(100), 10.0, "white", np.random.default_rng(1)), torch.zeros(100))


def test_noise_colours_fall_with_frequency():
    rng = np.random.default_rng(0)
    ratios = {}
    for color in ("white", "pink", "brown"):
        noise = torch.from_numpy(colored_noise(RATE, color, rng))
        assert float(noise.square().mean()) == pytest.approx(1.0, rel=1e-3)
        ratios[color] = band_energy(noise, 100, 1000) / band_energy(noise, 4000, 8000)
    assert ratios["white"] < ratios["pink"] < ratios["brown"]


def test_clip_drives_the_peak_over_full_scale():
    wav = 0.1 * torch.sin(torch.arange(RATE) * 0.01)
    out = clip(wav, 12.0)
    assert float(out.abs().max()) == 1.0
    assert float((out.abs() == 1.0).float().mean()) > 0.3  # the tops are flat
    assert torch.equal(clip(torch.zeros(10), 12.0), torch.zeros(10))


@pytest.mark.parametrize("codec", ["mp3", "ogg"])
def test_codec_round_trip_keeps_length_and_content(codec):
    wav = tone_burst()
    out = codec_round_trip(wav, RATE, codec, 0.85)
    assert out.shape == wav.shape and torch.isfinite(out).all()
    assert not torch.equal(out, wav)
    # the tone is still there (allowing for the encoder's delay): most of its energy survives
    assert float(out.square().sum()) == pytest.approx(float(wav.square().sum()), rel=0.3)


def test_edges_padded_and_trimmed():
    wav = tone_burst()
    start, end = speech_bounds(wav, RATE)
    assert abs(start - int(0.3 * RATE)) <= RATE // 100 and abs(end - int(0.8 * RATE)) <= RATE // 100
    silent = pad_edges(wav, 100, 200, None, "white", np.random.default_rng(0))
    assert len(silent) == len(wav) + 300 and not silent[:100].any() and not silent[-200:].any()
    toned = pad_edges(wav, 100, 200, -40.0, "pink", np.random.default_rng(0))
    assert len(toned) == len(wav) + 300 and toned[:100].abs().max() > 0


def test_augment_draws_are_reproducible_and_leave_speech_in():
    config = AugmentConfig(pad=1.0, trim=1.0, noise=1.0, narrowband=1.0, gain=1.0, clip=0.5, codec=0.5)
    wav = tone_burst()
    first = augment(wav, RATE, config, np.random.default_rng([7, 3, 11]))
    again = augment(wav, RATE, config, np.random.default_rng([7, 3, 11]))
    other = augment(wav, RATE, config, np.random.default_rng([7, 4, 11]))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.dtype == torch.float32 and torch.isfinite(first).all()
    # trimming cuts only silence, padding adds at most pad_seconds[1] at each end
    assert int(0.5 * RATE) - 2 * RATE // 100 <= len(first) <= len(wav) + 2 * RATE
    assert not AugmentConfig().enabled() and config.enabled()
    assert torch.equal(augment(wav, RATE, AugmentConfig(), np.random.default_rng(0)), wav)


def test_the_config_refuses_values_out_of_range():
    with pytest.raises(ConfigError, match=r"data\.augment\.pad"):
        load_config(None, ["data.train_manifest=x", "data.dev_manifest=y", "data.augment.pad=1.5"])
    with pytest.raises(ConfigError, match=r"data\.augment\.noise_colors"):
        load_config(None, ["data.train_manifest=x", "data.dev_manifest=y", "data.augment.noise_colors=[purple]"])
    config = load_config(None, ["data.train_manifest=x", "data.dev_manifest=y", "data.augment.noise=0.5",
                                "data.augment.noise_colors=[pink]"])
    assert config.data.augment.noise == 0.5 and config.data.augment.noise_colors == ["pink"]


def test_the_dataset_draws_from_seed_epoch_and_index(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, tone_burst().numpy(), RATE)
    utterances = [Utterance(id=f"u{i}", path=str(path), duration=1.1, text="a") for i in range(3)]

    class OneToken:
        def encode(self, text):
            return [1]

    config = AugmentConfig(noise=1.0, gain=1.0)
    data = AudioDataset(utterances, OneToken(), RATE, seed=5, augmentation=config)
    data.epoch = 1  # the training loop numbers epochs from 1
    first, second = data[0]["inputs"], data[1]["inputs"]
    assert not torch.equal(first, second)  # another index, another draw
    assert torch.equal(data[0]["inputs"], first)  # the same (seed, epoch, index): the same draw
    data.epoch = 2
    assert not torch.equal(data[0]["inputs"], first)
    data.augmentation = AugmentConfig(noise=1.0, start_epoch=3)
    data.epoch = 2
    assert torch.equal(data[0]["inputs"], data[1]["inputs"])  # before augment.start_epoch: as read
    data.epoch = 3
    assert not torch.equal(data[0]["inputs"], data[1]["inputs"])
    data.augmentation = config
    plain = data.without_augmentation()
    assert torch.equal(plain[0]["inputs"], plain[1]["inputs"])
    assert data.subset([0]).augmentation is config


def test_conditioned_copies_of_a_manifest(tmp_path, capsys):
    """data_prep/conditions.py: copies at the file's own rate, a manifest of them, one line for an unreadable file."""
    import soundfile as sf

    import conditions  # data_prep/conditions.py
    from speechrnn.data import read_manifest, write_manifest

    rate = 8000
    source = tone_burst().numpy()[::2]  # 1.1 s at 8 kHz
    sf.write(tmp_path / "a.wav", source, rate)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    write_manifest(tmp_path / "test.jsonl", [
        {"id": "a", "audio_filepath": str(tmp_path / "a.wav"), "duration": 1.1, "text": "one", "label": "1"},
        {"id": "bad", "audio_filepath": str(tmp_path / "bad.wav"), "duration": 0.5, "text": "two", "label": "2"}])
    out = tmp_path / "out"
    assert conditions.main(["--manifest", str(tmp_path / "test.jsonl"), "--condition", "silence_0.5s",
                            "--out", str(out)]) == 0
    (entry,) = read_manifest(out / "silence_0.5s.jsonl")
    samples, written_rate = sf.read(entry["audio_filepath"])
    assert written_rate == rate and len(samples) == len(source) + rate and entry["label"] == "1"
    assert entry["duration"] == pytest.approx(len(samples) / rate)
    assert not samples[: rate // 2].any()  # the silence in front
    err = capsys.readouterr().err
    assert "bad" in err and "1 unreadable" in err
    assert conditions.main(["--manifest", str(tmp_path / "test.jsonl"), "--condition", "loud",
                            "--out", str(out)]) == 1


def test_trimmed_inputs_do_not_see_the_silence_around_them(tmp_path):
    """data.trim_edges: a recording and the same with 0.5 s of digital silence at both ends reach the model alike."""
    import soundfile as sf

    wav = tone_burst()
    sf.write(tmp_path / "plain.wav", wav.numpy(), RATE, subtype="FLOAT")
    padded = pad_edges(wav, RATE // 2, RATE // 2, None, "white", np.random.default_rng(0))
    sf.write(tmp_path / "padded.wav", padded.numpy(), RATE, subtype="FLOAT")
    utterances = [Utterance(id=name, path=str(tmp_path / f"{name}.wav"), duration=2.1, text="a")
                  for name in ("plain", "padded")]

    class OneToken:
        def encode(self, text):
            return [1]

    trimmed = AudioDataset(utterances, OneToken(), RATE, trim_edges=True)
    assert torch.equal(trimmed[0]["inputs"], trimmed[1]["inputs"])
    assert abs(len(trimmed[0]["inputs"]) - int(0.5 * RATE)) <= 2 * RATE // 100  # the tone, its quiet edges cut
    assert trimmed.subset([1]).trim_edges
    assert len(AudioDataset(utterances, OneToken(), RATE)[1]["inputs"]) == len(padded)
