"""speechrnn.features and speechrnn.audio: MFCC against librosa, framing, batching, CMVN, SpecAugment, file reading."""

import librosa
import numpy as np
import pytest
import soundfile
import torch

from speechrnn.audio import load_audio
from speechrnn.features import (CmvnAccumulator, FeatureConfig, Features, SpecAugment, SpecAugmentConfig,
                                mask_time)




@pytest.fixture(scope="module")
def an4_wavs(shared_data):
    """Three real AN4 utterances (16 kHz mono) of different lengths, as float32 numpy arrays."""
    paths = sorted((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav"))[:3]
    assert len(paths) == 3, "expected AN4 test wavs under an4/wav/an4test_clstk/fvap"
    wavs = []
    for path in paths:
        samples, rate = soundfile.read(str(path), dtype="float32")
        assert rate == 16000 and samples.ndim == 1
        wavs.append(samples)
    assert len({len(w) for w in wavs}) == 3, "the test needs utterances of different lengths"
    return paths, wavs


def pad_batch(wavs):
    lens = torch.tensor([len(w) for w in wavs])
    batch = torch.zeros(len(wavs), int(lens.max()))
    for row, w in enumerate(wavs):
        batch[row, : len(w)] = torch.as_tensor(w)
    return batch, lens


# ---------------------------------------------------------------------------------------------- MFCC / framing


def test_mfcc_matches_librosa(an4_wavs):
    paths, wavs = an4_wavs
    features = Features(FeatureConfig(kind="mfcc", n_mfcc=40, n_mels=80, n_fft=400, hop_length=160)).eval()
    for path, y in zip(paths[:2], wavs[:2]):
        ours, lens = features.raw(torch.from_numpy(y)[None], torch.tensor([len(y)]))
        ours = ours[0].numpy().T  # (T, F) -> (F, T) like librosa
        ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=40, n_fft=400, hop_length=160, n_mels=80, pad_mode="constant")
        assert ours.shape == ref.shape, path
        assert int(lens[0]) == ref.shape[1]
        scale = float(np.abs(ref).max())
        assert scale > 10  # real speech, not silence
        # Measured: max abs diff ~3e-4 on values up to ~700 (float32 rounding). 1e-5 relative to the range
        # still catches any change of mel scale, filter norm, log floor, DCT norm or framing.
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * scale, err_msg=str(path))
        # and not just the big c0: every coefficient row agrees in relative terms too
        per_row = np.abs(ours - ref).max(axis=1) / np.maximum(np.abs(ref).max(axis=1), 1e-3)
        assert per_row.max() < 1e-3


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
@pytest.mark.parametrize("num_samples", [1, 159, 160, 399, 400, 401, 1599, 1600, 16000, 16159])
def test_num_frames_matches_transform_output(kind, num_samples):
    features = Features(FeatureConfig(kind=kind)).eval()
    wav = torch.randn(1, num_samples) * 0.1 if num_samples > 1 else torch.zeros(1, 1)
    feats, lens = features.raw(wav, torch.tensor([num_samples]))
    expected = num_samples // 160 + 1  # center=True: one frame per hop plus the one at t=0
    assert int(features.num_frames(torch.tensor([num_samples]))[0]) == expected
    assert feats.shape == (1, expected, features.dim)
    assert int(lens[0]) == expected


def test_num_frames_follows_hop_length():
    features = Features(FeatureConfig(hop_length=80, n_fft=200, n_mels=40))
    n = torch.tensor([0, 79, 80, 8000])
    assert features.num_frames(n).tolist() == [1, 1, 2, 101]


def test_unknown_feature_kind_is_rejected():
    with pytest.raises(ValueError, match="fbank, mfcc"):
        Features(FeatureConfig(kind="plp"))


# ---------------------------------------------------------------------------------------------- batching




@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_batched_equals_per_utterance(an4_wavs, kind):
    _, wavs = an4_wavs
    features = Features(FeatureConfig(kind=kind)).eval()
    # non-trivial CMVN so the masking after normalisation is exercised too
    g = torch.Generator().manual_seed(0)
    features.set_cmvn(torch.randn(features.dim, generator=g), torch.rand(features.dim, generator=g) + 0.5)
    batch, lens = pad_batch(wavs)
    with torch.no_grad():
        feats, feat_lens = features(batch, lens)
        for row, w in enumerate(wavs):
            alone, alone_lens = features(torch.from_numpy(w)[None], torch.tensor([len(w)]))
            n = int(alone_lens[0])
            assert int(feat_lens[row]) == n == alone.shape[1]
            torch.testing.assert_close(feats[row, :n], alone[0], rtol=1e-5, atol=1e-4)
            assert torch.count_nonzero(feats[row, n:]) == 0, "frames past the length must be zero"
            assert torch.count_nonzero(feats[row, :n]) > 0


def test_mfcc_of_quiet_utterance_does_not_depend_on_loud_batch_mate(an4_wavs):
    _, wavs = an4_wavs
    features = Features(FeatureConfig(kind="mfcc")).eval()
    loud = torch.from_numpy(wavs[0])
    quiet = loud * 0.01  # same speech, 40 dB down
    lens = torch.tensor([len(loud), len(loud)])
    with torch.no_grad():
        batched, _ = features.raw(torch.stack([loud, quiet]), lens)
        alone, _ = features.raw(quiet[None], lens[:1])
    torch.testing.assert_close(batched[1], alone[0], rtol=1e-5, atol=1e-3)


def test_mask_time_zeroes_past_length():
    x = torch.ones(3, 5, 2, 4)
    y = mask_time(x, torch.tensor([5, 2, 0]))
    assert y[0].eq(1).all()
    assert y[1, :2].eq(1).all() and y[1, 2:].eq(0).all()
    assert y[2].eq(0).all()


# ---------------------------------------------------------------------------------------------- CMVN


def test_cmvn_normalises_valid_frames_and_keeps_padding_zero(an4_wavs):
    _, wavs = an4_wavs
    features = Features(FeatureConfig()).eval()
    batch, lens = pad_batch(wavs)
    accumulator = CmvnAccumulator(features.dim)
    with torch.no_grad():
        # two calls, as a loader would give them, to check the sums accumulate across batches
        raw, raw_lens = features.raw(batch[:2], lens[:2])
        accumulator.add(raw, raw_lens)
        raw, raw_lens = features.raw(batch[2:], lens[2:])
        accumulator.add(raw, raw_lens)
        assert accumulator.count == int(features.num_frames(lens).sum())
        mean, std = accumulator.result()
        assert mean.shape == std.shape == (features.dim,)
        assert (std > 0).all()
        features.set_cmvn(mean, std)
        feats, feat_lens = features(batch, lens)
    valid = torch.arange(feats.shape[1])[None, :] < feat_lens[:, None]
    frames = feats[valid].double()  # (frames, F)
    assert frames.shape[0] == accumulator.count
    torch.testing.assert_close(frames.mean(0), torch.zeros(features.dim, dtype=torch.float64), atol=1e-3, rtol=0)
    torch.testing.assert_close(frames.std(0, unbiased=False), torch.ones(features.dim, dtype=torch.float64),
                               atol=1e-3, rtol=0)
    assert feats[~valid].eq(0).all(), "padded frames must be exactly zero after CMVN"
    assert (~valid).any()


def test_cmvn_statistics_ignore_padding():
    acc = CmvnAccumulator(2)
    feats = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [1e6, 1e6]]])  # third frame is padding
    acc.add(feats, torch.tensor([2]))
    mean, std = acc.result()
    torch.testing.assert_close(mean, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(std, torch.tensor([1.0, 1.0]))


# ---------------------------------------------------------------------------------------------- SpecAugment


def test_specaugment_is_identity_in_eval_mode():
    aug = SpecAugment(SpecAugmentConfig()).eval()
    feats = torch.randn(2, 300, 80)
    out = aug(feats, torch.tensor([300, 250]))
    assert torch.equal(out, feats)


def test_specaugment_masks_whole_rows_and_columns_in_train_mode():
    config = SpecAugmentConfig(freq_masks=2, freq_mask_width=27, time_masks=2, time_mask_width=40, time_mask_max_ratio=0.2)
    aug = SpecAugment(config).train()
    torch.manual_seed(0)
    feats = torch.rand(4, 300, 80) + 1.0  # strictly positive, so a zero means masked
    lens = torch.tensor([300, 280, 260, 200])
    out = aug(feats, lens)
    assert out.shape == feats.shape
    masked = out == 0
    assert masked.any(), "train mode must mask something"
    assert torch.equal(out[~masked], feats[~masked]), "unmasked values must pass through unchanged"
    max_time_width = min(config.time_mask_width, int(config.time_mask_max_ratio * int(lens.min())))
    for b in range(feats.shape[0]):
        rows = masked[b].all(dim=1)  # (T,) whole frame masked by a time mask
        cols = masked[b].all(dim=0)  # (F,) whole channel masked by a frequency mask
        assert torch.equal(masked[b], rows[:, None] | cols[None, :]), "masks are full time rows / frequency bands"
        assert int(cols.sum()) <= config.freq_masks * config.freq_mask_width
        assert int(rows.sum()) <= config.time_masks * max_time_width
    # masks are drawn per utterance
    assert not all(torch.equal(masked[0], masked[b]) for b in range(1, 4))


# ---------------------------------------------------------------------------------------------- load_audio


def test_load_audio_downmixes_stereo(tmp_path):
    rng = np.random.default_rng(0)
    left = (rng.standard_normal(4000) * 0.1).astype(np.float32)
    right = (rng.standard_normal(4000) * 0.1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    soundfile.write(str(path), np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    wav = load_audio(path, 16000)
    assert wav.dtype == torch.float32 and wav.shape == (4000,)
    np.testing.assert_allclose(wav.numpy(), (left + right) / 2, rtol=0, atol=1e-7)


def test_load_audio_resamples_8k_to_16k(tmp_path):
    t = np.arange(8000) / 8000.0
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    path = tmp_path / "tone8k.wav"
    soundfile.write(str(path), tone, 8000, subtype="FLOAT")
    wav = load_audio(path, 16000)
    assert wav.shape == (16000,), "1 s at 8 kHz must become 16000 samples at 16 kHz"
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    peak_hz = np.argmax(spectrum) * 16000 / len(wav)
    assert abs(peak_hz - 440.0) <= 1.0, "resampling must keep the pitch"
    assert 0.3 < float(wav[4000:12000].abs().max()) < 0.6
    # and the other way round keeps the length ratio too
    assert load_audio(path, 4000).shape == (4000,)
    assert load_audio(path, 8000).shape == (8000,)


@pytest.mark.parametrize("suffix, fmt", [(".flac", "FLAC"), (".sph", "NIST"), (".wav", "WAV")])
def test_load_audio_reads_flac_and_sphere(tmp_path, suffix, fmt):
    rng = np.random.default_rng(1)
    pcm = rng.integers(-20000, 20000, size=3210, dtype=np.int16)
    path = tmp_path / f"x{suffix}"
    soundfile.write(str(path), pcm, 16000, format=fmt, subtype="PCM_16")
    assert soundfile.info(str(path)).format == fmt
    wav = load_audio(path, 16000)
    assert wav.dtype == torch.float32
    np.testing.assert_array_equal(wav.numpy(), pcm.astype(np.float32) / 32768.0)


def test_load_audio_real_an4_matches_soundfile(an4_wavs):
    paths, wavs = an4_wavs
    wav = load_audio(paths[0], 16000)
    np.testing.assert_array_equal(wav.numpy(), wavs[0])
