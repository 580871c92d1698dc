"""`speechrnn mic`: live transcription from the default input device, or from a file played through the same path.

    audio blocks of BLOCK_SECONDS (microphone callback, or a file read block by block at real-time pace / --fast)
      -> StreamResampler to the model's rate -> vad.StreamSegmenter (energy VAD or a frame tagger)
      -> while a segment is open: partial hypotheses. A unidirectional encoder (model.rnn.bidirectional=false)
         streams: each block goes through a streaming.StreamingDecoder (features, convs and RNN state carried
         across blocks, greedy text grows chunk by chunk). A bidirectional one has no state to carry: every
         PARTIAL_EVERY s of audio, a greedy re-decode of the whole open segment
      -> when it closes: the final text (the bundle's tuned beam search, or greedy), its latency
      -> at the end of the file or on Ctrl-C: a summary

Latency of a segment: wall time from the arrival of the audio block that closed it (the VAD closes a segment
`min_silence` seconds after the speech ends) to its final text being printed.
"""

import queue
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError
from .longaudio import LONG_RULES
from .vad import Segment, SegmentRules, StreamSegmenter

BLOCK_SECONDS = 0.1  # audio delivered at a time, by the microphone and by --input alike
PARTIAL_EVERY = 0.5  # s of audio between re-decodes of the open segment
# The segments of `transcribe`'s long recordings, so that live speech is read as the same audio in a file is. Chosen
# on AN4 dev (98 utterances played through `mic --input --fast`): joined back to back, WER 9.72 / 13.03 / 16.51 % for
# a min_silence of 0.3 / 0.5 / 0.7 s (longer pauses merge utterances into 25 s segments); with 1 s between them,
# 7.34 % for all three. A spelled sequence with long pauses then comes out as a few segments.
MIC_RULES = LONG_RULES
INSTALL = ("the microphone needs the sounddevice package and the PortAudio library: pip install 'speechrnn[mic]' "
           "(and on Debian/Ubuntu: apt-get install libportaudio2); or play a file with --input FILE")


def import_sounddevice():
    try:
        import sounddevice
    except (ImportError, OSError):  # OSError: sounddevice is there but the PortAudio library is not
        raise UserError(INSTALL) from None
    return sounddevice


def default_input(sd) -> dict:
    """The default input device's description, or a UserError naming the way out."""
    try:
        devices = list(sd.query_devices())
    except Exception:  # noqa: BLE001 - PortAudio errors come in several types
        devices = []
    if not any(d.get("max_input_channels", 0) > 0 for d in devices):
        raise UserError("no audio input device found (sounddevice lists none): connect or enable a microphone, "
                        "or play a recording through the same path with --input FILE")
    try:
        return sd.query_devices(kind="input")
    except Exception:  # noqa: BLE001
        raise UserError("no default audio input device is set: choose one in the system's sound settings, "
                        "or use --input FILE") from None


def microphone_blocks(rate: int) -> tuple[int, Iterator[tuple[np.ndarray, float]]]:
    """(sample rate, generator of (mono block, arrival time)) from the default input device."""
    sd = import_sounddevice()
    device = default_input(sd)
    try:
        sd.check_input_settings(channels=1, samplerate=rate, dtype="float32")
    except Exception:  # noqa: BLE001 - the device does not take the model's rate: record at its own, resample
        rate = int(device["default_samplerate"])
    blocks: queue.Queue = queue.Queue()

    def callback(data, frames, time_info, status):  # PortAudio's thread: hand the block over, nothing else
        blocks.put((data[:, 0].copy(), time.monotonic()))

    def generate():
        with sd.InputStream(samplerate=rate, channels=1, dtype="float32", blocksize=int(rate * BLOCK_SECONDS),
                            callback=callback):
            print(f"listening on {device['name']} at {rate} Hz; Ctrl-C stops", file=sys.stderr)
            while True:
                yield blocks.get()

    return rate, generate()


def file_blocks(path: str | Path, fast: bool) -> tuple[int, Iterator[tuple[np.ndarray, float]]]:
    """(sample rate, generator of (mono block, arrival time)) from a file, at real-time pace unless `fast`."""
    from .audio import open_audio

    f = open_audio(path)
    rate = f.samplerate

    def generate():
        with f:
            start, fed = time.monotonic(), 0
            for block in f.blocks(blocksize=max(1, int(rate * BLOCK_SECONDS)), dtype="float32", always_2d=True):
                fed += len(block)
                if not fast:  # a block arrives once it has been "recorded"
                    time.sleep(max(0.0, start + fed / rate - time.monotonic()))
                yield block.mean(axis=1), time.monotonic()

    return rate, generate()


@dataclass
class Summary:
    segments: int = 0
    words: int = 0
    audio: float = 0.0  # s of audio taken in
    speech: float = 0.0  # s in segments
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    streamed_chunks: int = 0  # blocks decoded chunk by chunk (unidirectional models)
    streamed_audio: float = 0.0  # s of audio in them
    streamed_compute: float = 0.0  # s spent on them

    def line(self) -> str:
        latency = (f"mean latency {np.mean(self.latencies):.3f} s (max {max(self.latencies):.3f} s)"
                   if self.latencies else "no latency measured")
        streamed = ""
        if self.streamed_chunks:
            chunks = self.streamed_chunks
            streamed = (f", streamed {chunks} chunk(s): {1000 * self.streamed_compute / chunks:.1f} ms compute per "
                        f"{1000 * self.streamed_audio / chunks:.0f} ms chunk")
        return (f"summary: {self.segments} segment(s), {self.words} word(s), {self.audio:.1f} s of audio "
                f"({self.speech:.1f} s in segments), {latency}, {self.wall:.1f} s wall{streamed}")


class Display:
    """Partial hypotheses on stderr (rewritten in place on a terminal, one line each otherwise), finals on stdout."""

    def __init__(self, out=None, err=None):
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.live = self.err.isatty()
        self.pending = False  # a partial is on the terminal's last line

    def partial(self, start: float, text: str) -> None:
        if self.live:
            self.err.write(f"\r\033[K[{start:8.2f} ...     ] {text} ...")
            self.pending = True
        else:
            self.err.write(f"partial [{start:8.2f}] {text}\n")
        self.err.flush()

    def final(self, segment: Segment, text: str, latency: float) -> None:
        if self.pending:
            self.err.write("\r\033[K")
            self.err.flush()
            self.pending = False
        self.out.write(f"[{segment.start:8.2f} - {segment.end:8.2f}] {text}   (latency {latency:.3f} s)\n")
        self.out.flush()

    def summary(self, summary: Summary) -> None:
        if self.pending:
            self.err.write("\r\033[K")
            self.err.flush()
        self.out.write(summary.line() + "\n")
        self.out.flush()


def greedy_text(recognizer, audio: np.ndarray) -> str:
    import torch

    from .decode import greedy_decode

    with torch.inference_mode():
        wav = torch.from_numpy(audio)[None].to(recognizer.device)
        log_probs, lens = recognizer.model(wav, torch.tensor([wav.shape[1]], device=recognizer.device))
    return recognizer.tokenizer.decode(greedy_decode(log_probs.cpu(), lens.cpu())[0])


def streaming_decoder(recognizer):
    """A streaming.StreamingDecoder for the recognizer's model, or None when it cannot stream (bidirectional)."""
    from .streaming import StreamingDecoder, streaming_refusal

    if streaming_refusal(recognizer.model) is not None:
        return None
    return StreamingDecoder(recognizer.model, recognizer.tokenizer)


def listen(recognizer, rate: int, blocks: Iterator[tuple[np.ndarray, float]], vad,
           rules: SegmentRules = MIC_RULES, display: Display | None = None) -> Summary:
    """Run the live loop over (block, arrival time) pairs at `rate` until they end or Ctrl-C; returns the summary
    (also printed)."""
    import torch

    from .audio import StreamResampler

    display = display or Display()
    model_rate = recognizer.config.features.sample_rate
    resampler = StreamResampler(rate, model_rate)
    segmenter = StreamSegmenter(vad, model_rate, rules)
    summary = Summary()
    started = time.monotonic()
    partial_at = None  # segmenter.seconds at the last partial of the open segment
    stream = streaming_decoder(recognizer)  # None: partials are re-decodes
    streamed = 0  # samples of the open segment fed to `stream`

    def finish(segments: list[Segment], arrived: float) -> None:
        for segment in segments:
            (result,) = recognizer.transcribe_inputs([torch.from_numpy(segment.audio)])
            latency = time.monotonic() - arrived
            summary.segments += 1
            summary.words += len(result.text.split())
            summary.speech += segment.end - segment.start
            summary.latencies.append(latency)
            display.final(segment, result.text, latency)

    try:
        for block, arrived in blocks:
            closed = segmenter.push(resampler.push(block))
            if closed:
                partial_at = None
                finish(closed, arrived)
            opened = segmenter.open_audio()
            if stream is not None and (closed or opened is None) and streamed:
                stream.reset()
                streamed = 0
            if opened is None:
                partial_at = None
            elif stream is not None:  # chunk by chunk: the new samples of the open segment
                before = (stream.text, stream.compute_seconds)
                stream.push(opened[1][streamed:])
                summary.streamed_chunks += 1
                summary.streamed_audio += (len(opened[1]) - streamed) / model_rate
                summary.streamed_compute += stream.compute_seconds - before[1]
                streamed = len(opened[1])
                if stream.text and stream.text != before[0]:
                    display.partial(opened[0], stream.text)
            elif partial_at is None:
                partial_at = segmenter.seconds  # the first partial PARTIAL_EVERY s after the segment opens
            elif segmenter.seconds - partial_at >= PARTIAL_EVERY:
                partial_at = segmenter.seconds
                display.partial(opened[0], greedy_text(recognizer, opened[1]))
    except KeyboardInterrupt:
        pass
    arrived = time.monotonic()
    finish(segmenter.push(resampler.flush()) + segmenter.flush(), arrived)
    summary.audio = segmenter.seconds
    summary.wall = time.monotonic() - started
    display.summary(summary)
    return summary


def transcribe_live(bundle: str | Path | None = None, input_file: str | Path | None = None, fast: bool = False,
                    vad: str = "energy", threshold: float = MIC_RULES.threshold,
                    min_silence: float = MIC_RULES.min_silence, max_segment: float = MIC_RULES.max_length,
                    greedy: bool = False, device: str = "auto", threads: int = 1) -> Summary:
    """`speechrnn mic`: live transcription with `bundle` (default: the shipped AN4 model) from the default input
    device, or from `input_file` played through the same path (at real-time pace, or as fast as possible with
    `fast`); segments cut by `vad` ('energy' or a frame-tagger bundle) with MIC_RULES but `threshold`,
    `min_silence` and `max_segment` (seconds). Runs until the file ends or Ctrl-C; returns the summary."""
    import torch

    from .pretrained import default_bundle
    from .recognizer import Recognizer
    from .vad import load_vad

    torch.set_num_threads(max(1, threads))
    if input_file:
        rate, blocks = file_blocks(input_file, fast)
    else:
        if fast:
            raise UserError("--fast plays a file as fast as possible: give it with --input FILE")
        rate, blocks = None, None  # the device is opened after the model is loaded (it starts recording)
        default_input(import_sounddevice())  # but its errors come before the wait
    bundle = bundle or default_bundle("audio")
    recognizer = Recognizer.load(bundle, device=device, decoding="greedy" if greedy else "tuned")
    if recognizer.config.modality != "audio":
        raise UserError(f"{bundle}: a {recognizer.config.modality} model; the microphone needs a speech model")
    detector = load_vad(vad, recognizer.device)
    rules = SegmentRules(threshold=threshold, min_silence=min_silence, min_speech=MIC_RULES.min_speech,
                         pad=MIC_RULES.pad, max_length=max_segment)
    if blocks is None:
        rate, blocks = microphone_blocks(recognizer.config.features.sample_rate)
    return listen(recognizer, rate, blocks, detector, rules)
