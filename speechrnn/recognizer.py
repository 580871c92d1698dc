"""The Python API: load a bundle, transcribe audio or ink with it.

    from speechrnn import Recognizer
    recognizer = Recognizer.load("exp/default/model.pt")          # tuned beam search if the bundle has one
    for result in recognizer.transcribe(["a.wav", (samples, 8000), ink]):
        print(result.text, [(w.text, w.start, w.end, w.confidence) for w in result.words])

Inputs: file paths (audio: wav/flac/ogg/mp3/sphere; ink: .json/.inkml/IAM-OnDB .xml), `(waveform, sample_rate)`
pairs, waveforms already at the model's rate (numpy or torch, 1-D), and `ink.Ink` objects. They are decoded in
batches of similar length. Word times are seconds for audio and resampled-point positions for ink.

Audio longer than `recognizer.split_over` seconds (30) is not decoded whole: it is read in blocks, cut at pauses
by a voice-activity detector (`recognizer.vad`, energy-based unless set, see speechrnn/vad.py) and transcribed
segment by segment, with bounded memory however long it is (speechrnn/longaudio.py).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF

from .align import Span, align, frame_shift
from .audio import load_audio
from .bundle import load_bundle
from .errors import BundleError, UserError
from .config import Config, from_dict
from .data import collate
from .decode import greedy_decode
from .ink import Ink, check_ink, featurize, read_ink
from .model import CTCModel, build_model
from .text import Tokenizer


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CTCModel, Tokenizer, Config, dict]:
    """Bundle -> (model in eval mode on `device`, tokenizer, config, bundle extras)."""
    bundle = load_bundle(path)
    if bundle.get("extra", {}).get("task") == "classify":
        raise BundleError(f"{path}: an utterance classifier, not a recognizer; use `speechrnn classify eval`")
    if bundle.get("extra", {}).get("task") == "tagger":
        raise BundleError(f"{path}: a speech / non-speech frame tagger, not a recognizer; use `speechrnn tagger eval`")
    config = from_dict(bundle["config"])
    tokenizer = Tokenizer.from_dict(bundle["tokenizer"])
    model = build_model(len(tokenizer), config)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), tokenizer, config, bundle.get("extra", {})


@dataclass
class Transcript:
    name: str  # the path, or "<input N>" for in-memory inputs
    text: str
    words: list[Span] = field(default_factory=list)  # with times and confidences (when asked for)
    duration: float = 0.0  # seconds of audio (resampled points of ink)


class Recognizer:
    """A model, its tokenizer and config, and a decoder: greedy, or a `decode.BeamDecoder`."""

    def __init__(self, model: CTCModel, tokenizer: Tokenizer, config: Config, device: torch.device,
                 decoder=None, max_batch_seconds: float = 240.0):
        self.model, self.tokenizer, self.config, self.device = model, tokenizer, config, device
        self.decoder = decoder
        self.shift = frame_shift(model, config)
        self.max_batch_seconds = max_batch_seconds  # padded input per batch (points / 100 for ink)
        self.split_over = 30.0  # s: longer audio is cut into segments at pauses (transcribe_long)
        self.vad = None  # the VAD that cuts it: an object with frame_shift and speech_probability; None: EnergyVAD

    @classmethod
    def load(cls, bundle: str | Path, device: str = "cpu", decoding: str = "tuned", workers: int = 1,
             **beam) -> "Recognizer":
        """decoding: "tuned" (the bundle's stored beam search, greedy when it has none), "greedy", or "beam" with
        `beam` as decode.BeamConfig fields (lexicon, lm, lm_weight, ...)."""
        from .decode import BeamConfig, BeamDecoder
        from .tune import stored_decoder

        model, tokenizer, config, extra = load_model(bundle, device)
        decoder = None
        if decoding == "tuned":
            decoder = stored_decoder(extra, tokenizer, workers, **beam)
            if decoder is None and beam:
                raise UserError(f"{bundle}: no tuned decoder in the bundle to apply {', '.join(beam)} to; "
                                f"give a lexicon (--lexicon) or run `speechrnn tune`")
        elif decoding == "beam":
            decoder = BeamDecoder(tokenizer, BeamConfig(**beam), workers=workers)
        return cls(model, tokenizer, config, torch.device(device), decoder)

    # ------------------------------------------------------------------------------------------ inputs

    def load_input(self, item) -> torch.Tensor:
        """One input as the model takes it: a waveform (N,) at the model's rate, or ink features (T, F)."""
        if self.config.modality == "ink":
            if isinstance(item, (str, Path)):
                item = check_ink(read_ink(item), str(item))
            if not isinstance(item, Ink):
                raise TypeError(f"a handwriting model takes ink files or Ink objects, not {type(item).__name__}")
            return torch.from_numpy(featurize(item, self.config.ink)).float()
        rate = self.config.features.sample_rate
        if isinstance(item, (str, Path)):
            return load_audio(item, rate)
        if isinstance(item, tuple):
            wav, source_rate = item
            wav = torch.as_tensor(np.asarray(wav, dtype=np.float32))
            return AF.resample(wav, int(source_rate), rate) if int(source_rate) != rate else wav
        return torch.as_tensor(np.asarray(item, dtype=np.float32))

    def _units(self, length: int) -> float:
        """Seconds of audio (or points / 100 of ink) in an input of `length`."""
        return length / (100.0 if self.config.modality == "ink" else self.config.features.sample_rate)

    # ------------------------------------------------------------------------------------------ decoding

    @torch.no_grad()
    def transcribe_inputs(self, inputs: list[torch.Tensor], timestamps: bool = False) -> list[Transcript]:
        """Model inputs (from load_input) -> transcripts, batched by length, in input order."""
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
        results: list[Transcript | None] = [None] * len(inputs)
        batch: list[int] = []
        for index in order + [None]:  # None: flush the last batch
            full = index is None or self._units(len(inputs[index])) * (len(batch) + 1) > self.max_batch_seconds
            if full and batch:
                for i, transcript in zip(batch, self._decode_batch([inputs[i] for i in batch], timestamps)):
                    results[i] = transcript
                batch = []
            if index is not None:
                batch.append(index)
        return results

    def _decode_batch(self, inputs: list[torch.Tensor], timestamps: bool) -> list[Transcript]:
        batch = collate([{"id": str(i), "inputs": x, "tokens": torch.zeros(0, dtype=torch.long), "text": ""}
                         for i, x in enumerate(inputs)])
        log_probs, lens = self.model(batch["inputs"].to(self.device), batch["input_lens"].to(self.device))
        log_probs, lens = log_probs.cpu(), lens.cpu()
        if self.decoder is None:
            token_lists = greedy_decode(log_probs, lens)
            texts = [self.tokenizer.decode(ids) for ids in token_lists]
        else:
            best = [nbest[0] for nbest in self.decoder.decode(log_probs, lens)]
            # our ids only: a tokenizer without a space gets an extra word-boundary column from the decoder
            token_lists = [[t for t in h.tokens if t < len(self.tokenizer)] for h in best]
            texts = [h.text for h in best]
        transcripts = []
        for row, (tokens, text) in enumerate(zip(token_lists, texts)):
            words = []
            if timestamps and tokens:
                words = align(log_probs[row, : lens[row]], tokens, self.tokenizer, self.shift).words
                if self.decoder is not None and self.decoder.config.lexicon:
                    for word, spelled in zip(words, text.split()):  # lexicon words as the lexicon writes them
                        word.text = spelled
            duration = len(inputs[row]) * (1 if self.config.modality == "ink" else 1 / self.config.features.sample_rate)
            transcripts.append(Transcript("", text, words, duration))
        return transcripts

    def is_long(self, item) -> bool:
        """Audio longer than split_over seconds (a file's length from its header), for transcribe_long."""
        if self.config.modality == "ink" or isinstance(item, Ink):
            return False
        return self.long_seconds(item) > self.split_over

    def long_seconds(self, item) -> float:
        from .longaudio import source_seconds

        return source_seconds(item, self.config.features.sample_rate) or 0.0

    def transcribe_long(self, item, timestamps: bool = False, progress=None) -> Transcript:
        """One recording of any length (path, (waveform, rate) or waveform): read in blocks, cut at pauses by
        self.vad, segments decoded in batches; word times from the start of the recording."""
        from .longaudio import transcribe_long

        return transcribe_long(self, item, timestamps, vad=self.vad, progress=progress)

    def transcribe(self, items: list, timestamps: bool = False) -> list[Transcript]:
        """Paths, (waveform, rate) pairs, waveforms or Ink objects -> transcripts in the same order. A file that
        cannot be read raises its UserError (AudioError / InkError); `cli transcribe` reports and skips it.
        Audio longer than split_over seconds goes through transcribe_long."""
        results: list[Transcript | None] = [None] * len(items)
        short = []
        for k, item in enumerate(items):
            if self.is_long(item):
                results[k] = self.transcribe_long(item, timestamps)
            else:
                short.append(k)
        for k, result in zip(short, self.transcribe_inputs([self.load_input(items[k]) for k in short], timestamps)):
            results[k] = result
        for k, (item, result) in enumerate(zip(items, results)):
            result.name = str(item) if isinstance(item, (str, Path)) else f"<input {k}>"
        return results

    def transcribe_inks(self, inks: list[Ink]) -> list[str]:
        return [t.text for t in self.transcribe(inks)]
