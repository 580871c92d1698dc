"""Chunk-by-chunk decoding for models whose encoder is unidirectional (model.rnn.bidirectional=false).

    dec = StreamingDecoder(model, tokenizer)       # model in eval mode; refuses what cannot stream (see below)
    for chunk in chunks:                           # waveform pieces of any size at the model's rate
        new_log_probs = dec.push(chunk)            # (T_new, V): the CTC frames whose right context has arrived
        print(dec.text)                            # greedy text so far (repeats merged across chunk boundaries)
    dec.flush()                                    # end of the audio: the held-back frames, zero right padding

The frames streamed this way are those of the offline forward pass on the whole utterance (same numbers up to
float rounding; tests/test_streaming.py checks 1e-4 on AN4 audio), because every stage is causal except for a
fixed right context, which is held back until it arrives:

  * log-mel fbank with centred STFT (n_fft 400, hop 160, zero padding of n_fft // 2 at both ends): feature frame
    t is the window of samples [t*hop - 200, t*hop + 200); it is computed once sample t*hop + 199 has arrived.
    The stream keeps the last n_fft - hop samples as left context. Global CMVN (training statistics) is per frame.
  * ConvSubsampling: two kernel-3, stride-2, padding-1 convs over time; output j of a stage reads its inputs
    2j-1, 2j, 2j+1, so it waits for input 2j+1 (one frame of right context per stage: 1 feature frame for the first,
    2 for the second) and keeps one input frame of left context. At the end, padding=1 is a zero frame, as offline.
    LayerNorm is per frame.
  * the RNN layers carry their hidden state (torch's hx; JordanRNN and IndRNN take hx the same way), the head and
    log_softmax are per frame.

Lookahead (right context of encoder frame k past the centre sample of its feature frame 4k): 3 feature frames
(30 ms) + n_fft - n_fft // 2 samples (12.5 ms) = 680 samples = 42.5 ms. Because an encoder frame comes every 4 hops
(40 ms), the audio received but not yet reflected in an emitted frame is between 42.5 and 82.5 ms (`lookahead`).
A model trained with model.rnn.lookahead=k (output t also sees encoder frames up to t + k) adds k x 40 ms: the stream
holds back k more encoder frames, and at the end feeds the k zero frames the offline stack appends.

What cannot stream, refused with one line (`streaming_refusal`): a bidirectional encoder (its backward direction
starts at the utterance's end; mic partials there are re-decodes of the open segment), features.kind=mfcc
(torchaudio's MFCC clamps dB values to top_db = 80 dB below the *utterance's* maximum, which depends on audio not
heard yet), and pen-stroke models (their point features are resampled and normalised per whole ink).
"""

import inspect
import time

import numpy as np
import torch
import torchaudio.functional as AF
from torch import nn
from torch.nn import functional as F

from .errors import UserError
from .features import Features


class StreamingError(UserError):
    """A model that has no chunk-by-chunk path."""


def streaming_refusal(model) -> str | None:
    """Why `model` (a CTCModel) cannot be decoded chunk by chunk, as one line; None when it can."""
    frontend = model.frontend
    if not isinstance(frontend, Features):
        return ("no streaming path for a pen-stroke (ink) model: its point features are resampled and normalised "
                "over the whole ink")
    rnn = model.encoder.rnn
    if rnn.config.bidirectional:
        return ("no streaming path: the encoder is bidirectional (model.rnn.bidirectional=true), so every output "
                "frame depends on the end of the utterance; partial results are re-decodes of the whole segment "
                "(train with model.rnn.bidirectional=false to stream)")
    if rnn.config.reverse:
        return ("no streaming path: the encoder reads right to left (model.rnn.reverse=true), so every output frame "
                "depends on the end of the utterance")
    if frontend.config.kind != "fbank":
        return (f"no exact streaming path for features.kind={frontend.config.kind}: torchaudio's MFCC clamps its dB "
                "values to 80 dB below the maximum of the whole utterance (top_db), which depends on audio not yet "
                "heard; use features.kind=fbank")
    for layer in rnn.forward_layers:
        if "hx" not in inspect.signature(layer.forward).parameters:
            return (f"no streaming path: the rnn cell {rnn.config.cell!r} ({type(layer).__name__}) does not take an "
                    "initial state (hx), so its state cannot be carried across chunks")
    return None


def check_streamable(model) -> None:
    reason = streaming_refusal(model)
    if reason is not None:
        raise StreamingError(reason)


class _ConvStage:
    """One kernel-3, stride-2, padding-1 Conv2d over time (+ activation), run on frames as they arrive.
    Frames are (1, C, T, F); `push` returns the outputs whose right-context input has arrived."""

    def __init__(self, conv: nn.Conv2d, activation: nn.Module):
        assert conv.kernel_size[0] == 3 and conv.stride[0] == 2 and conv.padding[0] == 1
        self.conv, self.activation = conv, activation
        self.buffer: torch.Tensor | None = None  # input frames from index `base` on (base -1 is the zero padding)
        self.base = -1
        self.received = 0  # input frames so far
        self.emitted = 0  # output frames so far

    def push(self, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        if self.buffer is None:
            self.buffer = x.new_zeros(1, x.shape[1], 1, x.shape[3])  # input frame -1: the left zero padding
        self.buffer = torch.cat([self.buffer, x], dim=2)
        self.received += x.shape[2]
        if final:  # offline output count; the right padding (input frame `received`) is a zero frame
            end = (self.received - 1) // 2 + 1 if self.received > 0 else 0
            self.buffer = F.pad(self.buffer, (0, 0, 0, 1))
        else:  # output j needs input 2j + 1
            end = self.received // 2
        if end <= self.emitted:
            return x.new_zeros(1, self.conv.out_channels, 0, (x.shape[3] - 1) // 2 + 1)
        first, last = 2 * self.emitted - 1, 2 * end - 1  # input frames first .. last read by outputs emitted..end-1
        window = self.buffer[:, :, first - self.base:last + 1 - self.base]
        conv = self.conv
        y = self.activation(F.conv2d(window, conv.weight, conv.bias, stride=conv.stride, padding=(0, conv.padding[1])))
        self.buffer = self.buffer[:, :, last - self.base:]  # input `last` is the left context of the next output
        self.base, self.emitted = last, end
        return y


class StreamingDecoder:
    """Audio chunk by chunk -> CTC log-probs (and greedy text) equal to the offline pass; see the module docstring.
    `chunk_seconds` / `compute_seconds` accumulate the audio pushed and the time spent on it (latency reports)."""

    def __init__(self, model, tokenizer=None):
        check_streamable(model)
        if model.training:
            raise ValueError("StreamingDecoder needs the model in eval mode (model.eval()): dropout and dither "
                             "would make the streamed frames differ from the offline ones")
        self.model, self.tokenizer = model, tokenizer
        frontend = model.frontend
        self.frontend = frontend
        self.spectrogram = frontend.transform.spectrogram
        self.mel_scale = frontend.transform.mel_scale
        self.n_fft, self.hop = self.spectrogram.n_fft, self.spectrogram.hop_length
        self.rate = frontend.config.sample_rate
        self.device = next(model.parameters()).device
        conv = model.encoder.conv
        self.stride = model.subsampling  # feature frames per output frame
        self.delay = model.encoder.rnn.config.lookahead  # encoder frames the RNN stack looks ahead (model.rnn.lookahead)
        # feature frames of right context of an output frame: the convs' 3, and `delay` encoder frames of stride each
        self.lookahead_frames = (3 if conv else 0) + self.delay * self.stride
        self.chunks, self.audio_seconds, self.compute_seconds, self.max_chunk_compute = 0, 0.0, 0.0, 0.0
        self.reset()

    # ------------------------------------------------------------------------------------------ state

    def reset(self) -> None:
        """Start a new utterance (keeps the accumulated timing)."""
        half = self.n_fft // 2
        self.samples = torch.zeros(half, device=self.device)  # the padded stream from padded index `sample_base`
        self.sample_base = 0
        self.received = 0  # samples pushed
        self.features_done = 0
        conv = self.model.encoder.conv
        self.stages = [_ConvStage(block, conv.activation) for block in conv.blocks] if conv else []
        self.states = [None] * len(self.model.encoder.rnn.forward_layers)
        self.to_skip = self.delay  # the stack's first `delay` outputs precede output frame 0
        self.frames = 0  # encoder (CTC) frames emitted
        self.tokens: list[int] = []
        self.previous = 0  # the last frame's best id (0 = blank): repeats merge across chunk boundaries
        self.finished = False

    @property
    def text(self) -> str:
        return self.tokenizer.decode(self.tokens) if self.tokenizer is not None else ""

    @property
    def lookahead(self) -> dict:
        """Right context of an output frame in feature frames, samples and ms (past the centre sample of its
        feature frame), and held_back_ms: the audio received past the newest emitted frame's centre ranges from
        the lookahead (just after an emission) to just under lookahead + one output stride."""
        samples = self.lookahead_frames * self.hop + self.n_fft - self.n_fft // 2
        held_max = samples + self.stride * self.hop
        return {"feature_frames": self.lookahead_frames, "samples": samples, "ms": 1000 * samples / self.rate,
                "held_back_ms": (1000 * samples / self.rate, 1000 * held_max / self.rate)}

    def frames_available(self, num_samples: int) -> int:
        """Encoder frames that can be emitted once `num_samples` samples have arrived (before flush)."""
        features = max(0, (num_samples - (self.n_fft - self.n_fft // 2)) // self.hop + 1)
        for _ in self.stages:
            features //= 2
        return max(0, features - self.delay)

    # ------------------------------------------------------------------------------------------ streaming

    @torch.inference_mode()
    def push(self, samples) -> torch.Tensor:
        """Add a chunk of mono samples at the model's rate; returns the new log-probs (T_new, V) on the CPU."""
        if self.finished:
            raise RuntimeError("StreamingDecoder.push after flush: call reset() for a new utterance")
        started = time.perf_counter()
        wav = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1).to(self.device)
        self.received += wav.shape[0]
        out = self._advance(wav, final=False)
        self._count(started, wav.shape[0])
        return out

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of the utterance: the frames held back for right context (zero padding, as offline)."""
        if self.finished:
            return torch.zeros(0, self.model.head.out_features)
        started = time.perf_counter()
        out = self._advance(torch.zeros(self.n_fft // 2, device=self.device), final=True)
        self.finished = True
        self._count(started, 0)
        return out

    def _count(self, started: float, samples: int) -> None:
        spent = time.perf_counter() - started
        self.chunks += 1
        self.audio_seconds += samples / self.rate
        self.compute_seconds += spent
        self.max_chunk_compute = max(self.max_chunk_compute, spent)

    def _advance(self, wav: torch.Tensor, final: bool) -> torch.Tensor:
        x = self._features(wav, final)  # (1, T_new, F)
        if self.stages:
            y = x.unsqueeze(1)  # (1, T, F) -> (1, 1, T, F)
            for stage in self.stages:
                if y.shape[2] == 0 and not final:
                    return self._empty()
                y = stage.push(y, final)  # (1, C, T', F')
            batch, channels, frames, freq = y.shape
            x = self.model.encoder.conv.norm(y.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq))
        if final and self.delay:  # zero frames after the end, as the offline stack feeds them
            x = torch.cat([x, x.new_zeros(1, self.delay, x.shape[2])], dim=1)
        if x.shape[1] == 0:
            return self._empty()
        for index, layer in enumerate(self.model.encoder.rnn.forward_layers):
            x, self.states[index] = layer(x, self.states[index])
        skip = min(self.to_skip, x.shape[1])
        x, self.to_skip = x[:, skip:], self.to_skip - skip  # (1, T_new, H)
        log_probs = self.model.head(x).float().log_softmax(dim=-1)[0].cpu()  # (T_new, V)
        self.frames += log_probs.shape[0]
        for best in log_probs.argmax(dim=-1).tolist():
            if best != 0 and best != self.previous:
                self.tokens.append(best)
            self.previous = best
        return log_probs

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, self.model.head.out_features)

    def _features(self, wav: torch.Tensor, final: bool) -> torch.Tensor:
        """New normalised fbank frames (1, T_new, F) from the padded stream."""
        self.samples = torch.cat([self.samples, wav])
        end = self.sample_base + self.samples.shape[0]  # padded samples so far
        available = (end - self.n_fft) // self.hop + 1 if end >= self.n_fft else 0
        if final:  # offline frame count of the whole utterance (center=True)
            available = min(available, self.received // self.hop + 1)
        if available <= self.features_done:
            return torch.zeros(1, 0, self.frontend.dim, device=self.device)
        first = self.features_done * self.hop - self.sample_base
        last = (available - 1) * self.hop + self.n_fft - self.sample_base
        sp = self.spectrogram
        spec = AF.spectrogram(self.samples[first:last][None], 0, sp.window, sp.n_fft, sp.hop_length, sp.win_length,
                              sp.power, sp.normalized, center=False, onesided=sp.onesided)  # (1, n_fft//2+1, T)
        feats = torch.log(self.mel_scale(spec) + 1e-6).transpose(1, 2)  # (1, T, F)
        feats = (feats - self.frontend.cmvn_mean) / self.frontend.cmvn_std
        keep_from = available * self.hop  # the next frame's first padded sample
        self.samples = self.samples[keep_from - self.sample_base:]
        self.sample_base = keep_from
        self.features_done = available
        return feats
