"""The Python API: load a bundle, transcribe audio or ink with it.

    from speechrnn import Recognizer
    recognizer = Recognizer.load("exp/default/model.pt")          # tuned beam search if the bundle has one
    for result in recognizer.transcribe(["a.wav", (samples, 8000), ink]):
        print(result.text, [(w.text, w.start, w.end, w.confidence) for w in result.words])

Inputs: file paths (audio: wav/flac/ogg/mp3/sphere; ink: .json/.inkml/IAM-OnDB .xml), `(waveform, sample_rate)`
pairs, waveforms already at the model's rate (numpy or torch, 1-D), and `ink.Ink` objects. They are decoded in
batches of similar length. Word times are seconds for audio and resampled-point positions for ink.

Word times come from the CTC forced alignment of the chosen text. A bundle may carry *aligners* (`speechrnn
add-aligner`, recipes/an4/aligner.sh): unidirectional models whose alignments follow the audio, where a
bidirectional recognizer puts the first character at frame 0 (it has heard the whole utterance). Then word starts
come from the left-to-right aligner, ends from the right-to-left one (at least `recognizer.end_reach` frames
before the separator it aligns after the word, speechrnn/align.py), and confidences from the recognizer.

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
from .bundle import load_bundle, save_bundle
from .errors import BundleError, UserError
from .config import Config, from_dict
from .data import collate
from .decode import greedy_decode
from .ink import Ink, check_ink, featurize, read_ink
from .model import CTCModel, build_model
from .text import Tokenizer


# a bundle's aligners: extra[role]["config"] and the weights under state_dict prefix "role."; "aligner" gives word
# starts (and ends, alone), "aligner_end" word ends
ALIGNERS = ("aligner", "aligner_end")
END_REACH = 3  # frames (align.align's end_reach), chosen on AN4 dev: recipes/an4/RESULTS.md "Word times"


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CTCModel, Tokenizer, Config, dict]:
    """Bundle -> (model in eval mode on `device`, tokenizer, config, bundle extras). The bundle's aligners, where
    it has them, are extras[role]["model"] for role in ALIGNERS (also in eval mode on `device`)."""
    bundle = load_bundle(path)
    if bundle.get("extra", {}).get("task") == "classify":
        raise BundleError(f"{path}: an utterance classifier, not a recognizer; use `speechrnn classify eval`")
    if bundle.get("extra", {}).get("task") == "tagger":
        raise BundleError(f"{path}: a speech / non-speech frame tagger, not a recognizer; use `speechrnn tagger eval`")
    config = from_dict(bundle["config"])
    tokenizer = Tokenizer.from_dict(bundle["tokenizer"])
    model = build_model(len(tokenizer), config)
    prefixes = tuple(role + "." for role in ALIGNERS)
    model.load_state_dict({name: value for name, value in bundle["state_dict"].items() if not name.startswith(prefixes)})
    extra = dict(bundle.get("extra", {}))
    for role in ALIGNERS:
        if role in extra:
            aligner = build_model(len(tokenizer), from_dict(extra[role]["config"]))
            aligner.load_state_dict({name[len(role) + 1:]: value for name, value in bundle["state_dict"].items()
                                     if name.startswith(role + ".")})
            extra[role] = {**extra[role], "model": aligner.to(device).eval()}
    return model.to(device).eval(), tokenizer, config, extra


def add_aligner(bundle_path: str | Path, aligner_path: str | Path, out_path: str | Path,
                end_aligner_path: str | Path | None = None) -> dict:
    """Write `bundle_path` with the recognizer bundle `aligner_path` inside as its aligner (word starts, and word
    ends unless `end_aligner_path` gives them) to `out_path` (atomically; it may be `bundle_path`), replacing the
    aligners it had. All must share tokenizer, features and frame rate. Returns {role: description} as stored in
    extra (config, dev_cer)."""
    bundle = load_bundle(bundle_path)
    config = from_dict(bundle["config"])
    shift = frame_shift(build_model(2, config), config)
    prefixes = tuple(role + "." for role in ALIGNERS)
    weights = {name: value for name, value in bundle["state_dict"].items() if not name.startswith(prefixes)}
    extra = {key: value for key, value in bundle["extra"].items() if key not in ALIGNERS}
    for role, path in zip(ALIGNERS, (aligner_path, end_aligner_path)):
        if path is None:
            continue
        aligner = load_bundle(path)
        aligner_config = from_dict(aligner["config"])
        if aligner.get("extra", {}).get("task") or aligner_config.modality != "audio" or config.modality != "audio":
            raise BundleError(f"{path}: not a speech recognizer bundle, or {bundle_path} is not; add-aligner joins "
                              f"speech recognizers")
        if aligner["tokenizer"] != bundle["tokenizer"]:
            raise BundleError(f"{path}: its vocabulary differs from {bundle_path}'s; train the aligner on the same "
                              f"text settings (recipes/an4/aligner.sh starts it from the recognizer)")
        if aligner_config.features != config.features:
            raise BundleError(f"{path}: its features ({aligner_config.features}) differ from {bundle_path}'s")
        aligner_shift = frame_shift(build_model(2, aligner_config), aligner_config)
        if aligner_shift != shift:
            raise BundleError(f"{path}: {aligner_shift:g} s per output frame, {bundle_path} has {shift:g} s; an "
                              f"aligner needs the recognizer's frame rate (model.conv_channels)")
        weights.update({f"{role}.{name}": value for name, value in aligner["state_dict"].items()})
        extra[role] = {"config": aligner["config"], "dev_cer": aligner.get("extra", {}).get("dev_cer")}
    save_bundle(out_path, weights, bundle["config"], bundle["tokenizer"], extra, bundle["weights"])
    return {role: extra[role] for role in ALIGNERS if role in extra}


@dataclass
class Transcript:
    name: str  # the path, or "<input N>" for in-memory inputs
    text: str
    words: list[Span] = field(default_factory=list)  # with times and confidences (when asked for)
    duration: float = 0.0  # seconds of audio (resampled points of ink)


class Recognizer:
    """A model, its tokenizer and config, and a decoder: greedy, or a `decode.BeamDecoder`."""

    def __init__(self, model: CTCModel, tokenizer: Tokenizer, config: Config, device: torch.device,
                 decoder=None, max_batch_seconds: float = 240.0, aligner: CTCModel | None = None,
                 end_aligner: CTCModel | None = None):
        self.model, self.tokenizer, self.config, self.device = model, tokenizer, config, device
        self.decoder = decoder
        self.aligner = aligner  # a CTCModel whose alignment gives word starts (None: the recognizer's own)
        self.end_aligner = end_aligner or aligner  # ... and word ends
        self.end_reach = END_REACH  # frames: a right-to-left aligner's word end vs its separator (align.py)
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
        return cls(model, tokenizer, config, torch.device(device), decoder,
                   aligner=extra.get("aligner", {}).get("model"), end_aligner=extra.get("aligner_end", {}).get("model"))

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
        aligned = {}  # aligner -> its alignment scores (B, T, V), on log_probs' frames (add_aligner checks)
        for aligner in {self.aligner, self.end_aligner} - {None} if timestamps else ():
            align_log_probs, _ = aligner(batch["inputs"].to(self.device), batch["input_lens"].to(self.device))
            aligned[aligner] = aligner.alignment_scores(align_log_probs).cpu()
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
                frames = log_probs[row, : lens[row]]  # (T, V)
                words = align(frames, tokens, self.tokenizer, self.shift, self.model.alignment_scores(frames)).words
                if aligned:  # times from the aligners, confidences from the recognizer
                    timed = {aligner: self._aligned_words(aligner, scores[row, : lens[row]], tokens)
                             for aligner, scores in aligned.items()}
                    starts, ends = timed[self.aligner], timed[self.end_aligner]
                    next_starts = [start.start for start in starts[1:]] + [float("inf")]
                    for word, start, end, next_start in zip(words, starts, ends, next_starts):
                        # a word ends by the time the next starts, and lasts at least a frame
                        word.start, word.end = start.start, max(min(end.end, next_start), start.start + self.shift)
                if self.decoder is not None and self.decoder.config.lexicon:
                    for word, spelled in zip(words, text.split()):  # lexicon words as the lexicon writes them
                        word.text = spelled
            duration = len(inputs[row]) * (1 if self.config.modality == "ink" else 1 / self.config.features.sample_rate)
            transcripts.append(Transcript("", text, words, duration))
        return transcripts

    def _aligned_words(self, aligner: CTCModel, scores: torch.Tensor, tokens: list[int]) -> list[Span]:
        edge = [self.tokenizer.index[" "]] if aligner.edge_silence else []  # the text as the aligner was trained on
        reach = self.end_reach if aligner.edge_silence and aligner.encoder.rnn.config.reverse else 0
        return align(scores, edge + tokens + edge, self.tokenizer, self.shift, end_reach=reach).words

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
