"""streaming.StreamingDecoder: chunk-by-chunk CTC log-probs of a unidirectional model equal the offline forward pass
on the whole utterance (real AN4 audio, several chunk sizes, every rnn cell, with and without the conv front-end);
only the lookahead is held back; what cannot stream is refused with one line; `speechrnn mic`'s loop streams
the partials of a unidirectional model."""

import io
import re
import time

import numpy as np
import pytest
import soundfile
import torch

from speechrnn.config import Config
from speechrnn.decode import greedy_decode
from speechrnn.features import FeatureConfig, StrokeFrames
from speechrnn.model import CTCModel, ModelConfig, build_speech_model
from speechrnn.rnn import RNNConfig
from speechrnn.streaming import StreamingDecoder, StreamingError, check_streamable, streaming_refusal
from speechrnn.text import TextConfig, Tokenizer

CHUNKS = (1600, 3200, 737)  # 0.1 s, 0.2 s, and a size that lines up with no hop or stride


@pytest.fixture(scope="module")
def an4_wavs(shared_data) -> list[torch.Tensor]:
    paths = sorted((shared_data / "an4" / "wav" / "an4test_clstk").glob("*/*.wav"))[:2]
    return [torch.from_numpy(soundfile.read(path, dtype="float32")[0]) for path in paths]


def small_model(cell="lstm", conv=8, bidirectional=False, kind="fbank", wav=None, layers=2, lookahead=0) -> CTCModel:
    torch.manual_seed(0)
    features = FeatureConfig(kind=kind, n_mels=40)
    rnn = RNNConfig(cell=cell, hidden_size=32, num_layers=layers, bidirectional=bidirectional, lookahead=lookahead)
    model = build_speech_model(29, ModelConfig(conv_channels=conv, rnn=rnn), features, None).eval()
    if wav is not None:  # CMVN from the utterance itself, so the features have a trained model's scale
        feats, _ = model.frontend.raw(wav[None], torch.tensor([len(wav)]))
        model.frontend.set_cmvn(feats[0].mean(0), feats[0].std(0))
    return model


def stream(model, wav: torch.Tensor, chunk: int) -> tuple[torch.Tensor, StreamingDecoder]:
    decoder = StreamingDecoder(model)
    outputs = []
    for start in range(0, len(wav), chunk):
        outputs.append(decoder.push(wav[start:start + chunk].numpy()))
        assert decoder.frames == decoder.frames_available(decoder.received)  # nothing held back but the lookahead
    outputs.append(decoder.flush())
    return torch.cat(outputs), decoder


@pytest.mark.parametrize("cell,conv", [("lstm", 8), ("gru", 8), ("elman", 8), ("jordan", 8), ("indrnn", 8),
                                       ("lstm", 0)])
def test_streamed_log_probs_equal_offline(an4_wavs, cell, conv):
    for wav in an4_wavs:
        model = small_model(cell, conv, wav=wav)
        with torch.no_grad():
            offline, lens = model(wav[None], torch.tensor([len(wav)]))
        (expected,) = greedy_decode(offline, lens)
        offline = offline[0]
        # indrnn is relu without a bound: random-init log-probs reach the hundreds, so compare relative to them
        tolerance = 1e-4 * max(1.0, float(offline.abs().max()) / 10) if cell == "indrnn" else 1e-4
        for chunk in CHUNKS:
            streamed, decoder = stream(model, wav, chunk)
            assert streamed.shape == offline.shape, (chunk, streamed.shape, offline.shape)
            assert (streamed - offline).abs().max() < tolerance, (chunk, float((streamed - offline).abs().max()))
            assert decoder.tokens == expected  # incremental greedy: repeats merged across chunk boundaries


def test_lookahead_is_derived_and_minimal(an4_wavs):
    model = small_model(wav=an4_wavs[0])
    decoder = StreamingDecoder(model)
    assert decoder.lookahead["feature_frames"] == 3 and decoder.lookahead["samples"] == 680
    assert decoder.lookahead["ms"] == pytest.approx(42.5)
    assert decoder.lookahead["held_back_ms"] == pytest.approx((42.5, 82.5))
    # encoder frame k (feature frames 4k-3 .. 4k+3) comes out exactly when sample (4k + 3) * 160 + 199 arrives
    wav = an4_wavs[0].numpy()
    for k in range(4):
        last_needed = (4 * k + 3) * 160 + 199
        decoder.push(wav[decoder.received:last_needed])  # every sample before it
        assert decoder.frames == k, (k, decoder.received)
        decoder.push(wav[last_needed:last_needed + 1])
        assert decoder.frames == k + 1, (k, decoder.received)
    # frames with no conv front-end: one per feature frame, 200 samples (12.5 ms) of lookahead
    assert StreamingDecoder(small_model(conv=0)).lookahead["samples"] == 200


@pytest.mark.parametrize("conv", [8, 0])
def test_rnn_lookahead_streams_exactly_and_holds_back_its_frames(an4_wavs, conv):
    """model.rnn.lookahead=k: output t sees encoder frames up to t + k; offline, a padded batch gives what each
    utterance gives alone, and the stream equals it while holding back k more encoder frames."""
    wav, other = an4_wavs
    model = small_model(conv=conv, wav=wav, lookahead=2)
    with torch.no_grad():
        offline, lens = model(wav[None], torch.tensor([len(wav)]))
        batch = torch.nn.utils.rnn.pad_sequence([other, wav], batch_first=True)
        batched, batch_lens = model(batch, torch.tensor([len(other), len(wav)]))
    assert int(batch_lens[1]) == offline.shape[1]
    assert (batched[1, :offline.shape[1]] - offline[0]).abs().max() < 1e-5  # padding never leaks in
    plain = StreamingDecoder(small_model(conv=conv, wav=wav))
    decoder = StreamingDecoder(model)
    assert decoder.lookahead["feature_frames"] == plain.lookahead["feature_frames"] + 2 * model.subsampling
    for chunk in CHUNKS:
        streamed, decoder = stream(model, wav, chunk)
        assert streamed.shape == offline[0].shape and (streamed - offline[0]).abs().max() < 1e-4, chunk
    assert StreamingDecoder(model).frames_available(len(wav)) == plain.frames_available(len(wav)) - 2


def test_lookahead_needs_a_unidirectional_stack():
    from speechrnn.errors import ConfigError

    with pytest.raises(ConfigError, match="bidirectional=false"):
        small_model(bidirectional=True, lookahead=2)
    with pytest.raises(ConfigError, match="lookahead=-1"):
        small_model(lookahead=-1)


def test_reset_and_flush_twice(an4_wavs):
    wav = an4_wavs[0]
    model = small_model(wav=wav)
    first, decoder = stream(model, wav, 1600)
    assert decoder.flush().shape[0] == 0  # a second flush gives nothing
    with pytest.raises(RuntimeError, match="reset"):
        decoder.push(wav[:10].numpy())
    decoder.reset()
    for start in range(0, len(wav), 3200):
        decoder.push(wav[start:start + 3200].numpy())
    decoder.flush()
    assert decoder.frames == first.shape[0] and decoder.chunks > 0 and decoder.compute_seconds > 0


def test_refusals_are_one_line():
    with pytest.raises(StreamingError) as err:
        StreamingDecoder(small_model(bidirectional=True))
    message = str(err.value)
    assert "\n" not in message and "bidirectional" in message and "re-decodes" in message
    reason = streaming_refusal(small_model(kind="mfcc"))
    assert "\n" not in reason and "mfcc" in reason and "top_db" in reason
    ink = CTCModel(29, ModelConfig(conv_channels=0, rnn=RNNConfig(bidirectional=False, num_layers=1)),
                   StrokeFrames(4, 2))
    assert "ink" in streaming_refusal(ink)
    assert streaming_refusal(small_model()) is None
    check_streamable(small_model())
    with pytest.raises(ValueError, match="eval"):
        StreamingDecoder(small_model().train())


def test_mic_loop_streams_a_unidirectional_model(an4_wavs):
    from speechrnn.mic import Display, listen
    from speechrnn.recognizer import Recognizer
    from speechrnn.vad import load_vad

    wav = an4_wavs[0]
    config = Config()
    config.features = FeatureConfig(n_mels=40)
    config.model = ModelConfig(conv_channels=8, rnn=RNNConfig(hidden_size=32, num_layers=2, bidirectional=False))
    tokenizer = Tokenizer(list(" ABCDEFGHIJKLMNOPQRSTUVWXYZ'"), TextConfig())
    model = small_model(wav=wav)
    recognizer = Recognizer(model, tokenizer, config, torch.device("cpu"))
    silence = np.zeros(16000, dtype=np.float32)
    audio = np.concatenate([silence, wav.numpy(), silence])
    blocks = ((audio[i:i + 1600], time.monotonic()) for i in range(0, len(audio), 1600))
    out, err = io.StringIO(), io.StringIO()
    summary = listen(recognizer, 16000, blocks, load_vad("energy"), display=Display(out, err))
    assert summary.segments == 1 and summary.streamed_chunks >= 20  # about one chunk per 0.1 s block of speech
    assert summary.streamed_audio == pytest.approx(summary.speech, abs=1.0)
    assert re.search(r"streamed \d+ chunk\(s\): [\d.]+ ms compute per 1\d\d ms chunk$", out.getvalue().strip())
    partials = err.getvalue().splitlines()  # chunk by chunk, each time the greedy text grows
    assert partials and all(line.startswith("partial [") for line in partials)
    # the bidirectional path is unchanged: no streaming, re-decodes
    recognizer.model = small_model(bidirectional=True, wav=wav)
    blocks = ((audio[i:i + 1600], time.monotonic()) for i in range(0, len(audio), 1600))
    summary = listen(recognizer, 16000, blocks, load_vad("energy"), display=Display(io.StringIO(), io.StringIO()))
    assert summary.segments == 1 and summary.streamed_chunks == 0
