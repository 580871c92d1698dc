"""The Python API: load a bundle, transcribe audio or ink with it.

    from speechrnn import Recognizer
    recognizer = Recognizer.load("exp/default/model.pt")          # tuned beam search if the bundle has one
    for result in recognizer.transcribe(["a.wav", (samples, 8000), ink]):
        print(result.text, [(w.text, w.start, w.end, w.confidence) for w in result.words])
    print(recognizer.transcribe("b.wav").text)                    # one input -> one Transcript

Inputs: file paths (audio: wav/flac/ogg/mp3/sphere; ink: .json/.inkml/IAM-OnDB .xml), `(waveform, sample_rate)`
pairs, waveforms already at the model's rate (numpy or torch, 1-D), and `ink.Ink` objects. They are decoded in
batches of similar length. Word times are seconds for audio and resampled-point positions for ink.

Word times come from the CTC forced alignment of the chosen text. A bundle may carry *aligners* (`speechrnn
add-aligner`, recipes/an4/aligner.sh): unidirectional models whose alignments follow the audio, where a
bidirectional recognizer puts the first character at frame 0 (it has heard the whole utterance). Then word starts
come from the left-to-right aligner, ends from the right-to-left one (at least `recognizer.end_reach` frames
before the separator it aligns after the word, speechrnn/align.py), and confidences from the recognizer.
Word confidences go through the bundle's calibration map where `speechrnn calibrate` stored one
(speechrnn/calibration.py), so that they estimate how often such a word is right.

Audio longer than `split_over` seconds (30, given at load) is not decoded whole: it is read in blocks, cut at pauses
by the voice-activity detector given at load (`vad`: energy-based by default, or a frame tagger; speechrnn/vad.py)
and transcribed segment by segment, with bounded memory however long it is (speechrnn/longaudio.py).
Silence, noise and clicks (a dot of ink) give an empty transcript: the gate (speechrnn/gate.py; on by default,
`gate=False` at load turns it off) stops them before the model, and each Transcript's `gate` says what it decided.
`transcribe_each` takes any number of inputs a chunk at a time and yields each one's Transcript, or the UserError
that input raised, in input order (what `speechrnn transcribe` prints).
"""

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch

from .align import align, ctc_frames_needed
from .audio import load_audio, resample, source_seconds
from .bundle import load_model
from .calibration import KEY as CALIBRATION, calibrate
from .config import Config
from .decode import BeamConfig, BeamDecoder, greedy_decode
from .fusion import stored_decoder
from .device import select_device
from .errors import UserError
from .features import pad_inputs
from .gate import Gate, passes
from .ink import Ink, check_ink, featurize, read_ink
from .longaudio import transcribe_long
from .model import CTCModel
from .orientation import choose_y_down, stored_probe
from .output import Span, Transcript
from .pretrained import resolve
from .text import Tokenizer
from .vad import load_vad

END_REACH = 3  # frames (align.align's end_reach), chosen on AN4 dev: recipes/an4/RESULTS.md "Word times"
SINGLE_INPUTS = (str, Path, tuple, Ink, np.ndarray, torch.Tensor)
ORIENTATIONS = ("auto", "y-up", "y-down")  # of ink: Recognizer.load(orientation=...)  # transcribe(x) of one of these: one Transcript
# long_progress(input, its seconds): a context manager giving the callback that long-recording progress (seconds of
# audio read so far) is reported to, e.g. a progress bar's
LongProgress = Callable[[object, float], AbstractContextManager[Callable[[float], None] | None]]
# long_groups(input): the callback (or None) that each decoded group of a long recording (longaudio.Group: its texts
# and words, times in the recording) is handed to as soon as it is decoded, e.g. to be written
LongGroups = Callable[[object], Callable[[object], None] | None]


class Recognizer:
    """A model, its tokenizer and config, a decoder (greedy, or a `decode.BeamDecoder`), and for audio the VAD that
    cuts recordings longer than `split_over` seconds (None: EnergyVAD)."""

    def __init__(self, model: CTCModel, tokenizer: Tokenizer, config: Config, device: torch.device,
                 decoder=None, max_batch_seconds: float = 240.0, aligner: CTCModel | None = None,
                 end_aligner: CTCModel | None = None, vad=None, split_over: float = 30.0, gate: Gate | None = None):
        self.model, self.tokenizer, self.config, self.device = model, tokenizer, config, device
        self.decoder = decoder
        self.aligner = aligner  # a CTCModel whose alignment gives word starts (None: the recognizer's own)
        self.end_aligner = end_aligner or aligner  # ... and word ends
        self.end_reach = END_REACH  # frames: a right-to-left aligner's word end vs its separator (align.py)
        self.shift = model.frame_shift  # seconds (points for ink) per output frame
        self.max_batch_seconds = max_batch_seconds  # padded input per batch (points / 100 for ink)
        self.split_over = split_over  # s: longer audio is cut into segments at pauses (transcribe_long)
        self.vad = vad  # the VAD that cuts it: an object with frame_shift and speech_probability; None: EnergyVAD
        self.gate = gate  # no speech / no ink -> an empty transcript, undecoded (speechrnn/gate.py); None: no gate
        self.bundle_path: Path | None = None  # the bundle file it was loaded from (Recognizer.load)
        self.calibration: dict | None = None  # word confidence map (speechrnn/calibration.py); None: raw
        self.orientation = "auto"  # ink: "auto" (as the ink states, else decided), "y-up" or "y-down"
        self.orientation_probe: dict | None = None  # speechrnn/orientation.py's probe; None: by confidence

    @classmethod
    def load(cls, bundle: str | Path, device: str = "cpu", decoding: str = "tuned", workers: int = 1,
             vad="energy", split_over: float = 30.0, gate: bool = True, orientation: str = "auto",
             **beam) -> "Recognizer":
        """decoding: "tuned" (the bundle's stored beam search, greedy when it has none), "greedy", or "beam" with
        `beam` as decode.BeamConfig fields (lexicon, lm, lm_weight, ...). For a speech bundle, audio longer than
        `split_over` seconds is cut at pauses by `vad`: "energy", a frame-tagger bundle path, or a VAD object.
        `gate`: silence, noise, clicks (a dot of ink) give an empty transcript (speechrnn/gate.py); False: off.
        `orientation` (ink): "auto" reads each ink as it states its y axis (Ink.y_down), and when it does not, both
        ways, keeping the reading that looks upright (speechrnn/orientation.py); "y-up" / "y-down" overrides."""
        if orientation not in ORIENTATIONS:
            raise UserError(f"orientation {orientation!r}: expected one of {', '.join(ORIENTATIONS)}")
        device = select_device(str(device))  # "auto": CUDA when present; a missing GPU is one line
        model, tokenizer, config, extra = load_model(bundle, device)
        decoder = None
        if decoding == "tuned":
            decoder = stored_decoder(extra, tokenizer, workers, **beam)
            if decoder is None and beam:
                raise UserError(f"{bundle}: no tuned decoder in the bundle to apply {', '.join(beam)} to; "
                                f"give a lexicon (--lexicon) or run `speechrnn tune`")
        elif decoding == "beam":
            decoder = BeamDecoder(tokenizer, BeamConfig(**beam), workers=workers)
        if config.modality == "ink":
            vad = None
        elif isinstance(vad, (str, Path)):
            vad = load_vad(str(vad), device)
        recognizer = cls(model, tokenizer, config, device, decoder,
                   aligner=extra.get("aligner", {}).get("model"), end_aligner=extra.get("aligner_end", {}).get("model"),
                   vad=vad, split_over=split_over, gate=Gate() if gate else None)
        recognizer.bundle_path = resolve(bundle)  # the file it came from (a shipped model's, for a name)
        recognizer.calibration = extra.get(CALIBRATION)  # `speechrnn calibrate`'s map, None without one
        recognizer.orientation, recognizer.orientation_probe = orientation, stored_probe(extra)
        return recognizer

    # ------------------------------------------------------------------------------------------ inputs

    def load_input(self, item) -> torch.Tensor:
        """One input as the model takes it: a waveform (N,) at the model's rate, or ink features (T, F)."""
        if self.config.modality == "ink":
            if isinstance(item, (str, Path)):
                item = check_ink(read_ink(item), str(item))
            if not isinstance(item, Ink):
                raise TypeError(f"a handwriting model takes ink files or Ink objects, not {type(item).__name__}")
            features = self.ink_features(item)
            if self.gate is not None:  # decided on the ink itself: the features are scaled to the writing's size
                features.gate = self.gate.ink(item)
            return features
        rate = self.config.features.sample_rate
        if isinstance(item, (str, Path)):
            return load_audio(item, rate, manifest=False)
        if isinstance(item, tuple):
            wav, source_rate = item
            return resample(torch.as_tensor(np.asarray(wav, dtype=np.float32)), int(source_rate), rate, "<audio>")
        return torch.as_tensor(np.asarray(item, dtype=np.float32))

    def ink_features(self, ink: Ink) -> torch.Tensor:
        """Model input (T, F) of one ink, turned y-up as self.orientation, the ink itself, or the model decides."""
        if self.orientation != "auto" or ink.y_down is not None:
            y_down = self.orientation == "y-down" if self.orientation != "auto" else ink.y_down
            return torch.from_numpy(featurize(ink, self.config.ink, y_down=y_down)).float()
        both = tuple(torch.from_numpy(featurize(ink, self.config.ink, y_down=y_down)).float() for y_down in (False, True))
        return both[choose_y_down(self.model, both, self.orientation_probe)]

    def _units(self, length: int) -> float:
        """Seconds of audio (or points / 100 of ink) in an input of `length`."""
        return length / (100.0 if self.config.modality == "ink" else self.config.features.sample_rate)

    # ------------------------------------------------------------------------------------------ decoding

    @torch.no_grad()
    def transcribe_inputs(self, inputs: list[torch.Tensor], timestamps: bool = False) -> list[Transcript]:
        """Model inputs (from load_input) -> transcripts, batched by length, in input order. An input the gate stops
        (no speech, no ink) is not decoded: its transcript is empty; each transcript carries the gate's decision."""
        gates = [self.gate_decision(x) for x in inputs]  # None: no gate
        order = sorted((i for i in range(len(inputs)) if passes(gates[i])), key=lambda i: len(inputs[i]))
        per_unit = 1 if self.config.modality == "ink" else self.config.features.sample_rate  # duration: s or points
        results: list[Transcript | None] = [None if passes(decision) else Transcript("", "", [], len(x) / per_unit)
                                            for x, decision in zip(inputs, gates)]
        batch: list[int] = []
        for index in order + [None]:  # None: flush the last batch
            full = index is None or self._units(len(inputs[index])) * (len(batch) + 1) > self.max_batch_seconds
            if full and batch:
                for i, transcript in zip(batch, self._decode_batch([inputs[i] for i in batch], timestamps)):
                    results[i] = transcript
                batch = []
            if index is not None:
                batch.append(index)
        for result, decision in zip(results, gates):
            result.gate = decision
        return results

    def gate_decision(self, x: torch.Tensor) -> dict | None:
        """The gate's decision on a model input (speechrnn/gate.py), None without a gate. Ink is judged by
        load_input, on the ink itself."""
        if self.gate is None:
            return None
        if self.config.modality == "ink":
            return getattr(x, "gate", None)
        return self.gate.audio(x.detach().cpu().numpy(), self.config.features.sample_rate)

    def _forward(self, inputs: list[torch.Tensor], timestamps: bool) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Model inputs -> log-probs (B, T, V) and output lengths (B,) on the CPU, and with `timestamps` each
        aligner's alignment scores (B, T, V) on the same frames (add_aligner checks that they share them)."""
        padded, input_lens = pad_inputs(inputs)  # (B, N) or (B, T, F), (B,)
        padded, input_lens = padded.to(self.device), input_lens.to(self.device)
        log_probs, lens = self.model(padded, input_lens)
        aligned = {aligner: aligner.alignment_scores(aligner(padded, input_lens)[0]).cpu()
                   for aligner in ({self.aligner, self.end_aligner} - {None} if timestamps else ())}
        return log_probs.cpu(), lens.cpu(), aligned

    def _decode_batch(self, inputs: list[torch.Tensor], timestamps: bool) -> list[Transcript]:
        log_probs, lens, aligned = self._forward(inputs, timestamps)
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
                words = self._timed_words(log_probs[row, : lens[row]], tokens, text,
                                          {aligner: scores[row, : lens[row]] for aligner, scores in aligned.items()})
            duration = len(inputs[row]) * (1 if self.config.modality == "ink" else 1 / self.config.features.sample_rate)
            transcripts.append(Transcript("", text, words, duration))
        return transcripts

    @torch.no_grad()
    def force_align(self, x: torch.Tensor, text: str) -> tuple[str, list[Span], bool]:
        """A given transcript aligned to one model input `x` (load_input's): `text` as the tokenizer normalises it,
        its words with times and confidences as transcribe(timestamps=True) gives them (the aligners' times when
        the bundle has them), and whether there were too few frames for it (then the characters are spread over
        them, align.py)."""
        tokens = self.tokenizer.encode(text)
        log_probs, lens, aligned = self._forward([x], timestamps=True)  # (1, T, V), (1,), {aligner: (1, T, V)}
        frames = int(lens[0])
        normalised = self.tokenizer.decode(tokens)
        scores = {aligner: aligner_scores[0, :frames] for aligner, aligner_scores in aligned.items()}
        words = self._timed_words(log_probs[0, :frames], tokens, normalised, scores) if tokens else []
        edges = 2 if any(aligner.edge_silence for aligner in aligned) else 0  # an aligner's separator at each end
        return normalised, words, ctc_frames_needed(tokens) + edges > frames

    def _timed_words(self, frames: torch.Tensor, tokens: list[int], text: str,
                     aligned: dict[CTCModel, torch.Tensor]) -> list[Span]:
        """Words of one utterance with times and confidences: frames (T, V) its log-probs, `aligned` the aligners'
        alignment scores (T, V) on the same frames."""
        words = align(frames, tokens, self.tokenizer, self.shift, self.model.alignment_scores(frames)).words
        if aligned:  # times from the aligners, confidences from the recognizer
            timed = {aligner: self._aligned_words(aligner, scores, tokens) for aligner, scores in aligned.items()}
            starts, ends = timed[self.aligner], timed[self.end_aligner]
            next_starts = [start.start for start in starts[1:]] + [float("inf")]
            last = len(frames) * self.shift  # the end of the last frame
            for word, start, end, next_start in zip(words, starts, ends, next_starts):
                # a word ends by the time the next starts, and lasts at least a frame (within the frames)
                word.start = start.start
                word.end = min(max(min(end.end, next_start), start.start + self.shift), last)
        if self.decoder is not None and self.decoder.config.lexicon:
            for word, spelled in zip(words, text.split()):  # lexicon words as the lexicon writes them
                word.text = spelled
        for word in words if self.calibration else ():  # align.py's raw confidence -> a calibrated one
            word.confidence = calibrate(word.confidence, self.calibration)
        return words

    def _aligned_words(self, aligner: CTCModel, scores: torch.Tensor, tokens: list[int]) -> list[Span]:
        edge = [self.tokenizer.index[" "]] if aligner.edge_silence else []  # the text as the aligner was trained on
        reach = self.end_reach if aligner.edge_silence and aligner.encoder.rnn.config.reverse else 0
        return align(scores, edge + tokens + edge, self.tokenizer, self.shift, end_reach=reach).words

    # ------------------------------------------------------------------------------------------ long recordings

    def is_long(self, item) -> bool:
        """Audio longer than split_over seconds (a file's length from its header), for transcribe_long."""
        if self.config.modality == "ink" or isinstance(item, Ink):
            return False
        return self.long_seconds(item) > self.split_over

    def long_seconds(self, item) -> float:
        return source_seconds(item, self.config.features.sample_rate) or 0.0

    def transcribe_long(self, item, timestamps: bool = False, progress=None, on_group=None) -> Transcript:
        """One recording of any length (path, (waveform, rate) or waveform): read in blocks, cut at pauses by
        self.vad, segments decoded in batches; word times from the start of the recording. `progress(seconds)`
        and `on_group(longaudio.Group)` are told of each group of segments as it is decoded."""
        return transcribe_long(self, item, timestamps, vad=self.vad, progress=progress, on_group=on_group)

    # ------------------------------------------------------------------------------------------ the API

    def transcribe_each(self, items: Iterable, timestamps: bool = False, chunk: int = 64,
                        long_progress: LongProgress | None = None,
                        long_groups: LongGroups | None = None) -> Iterator[Transcript | UserError]:
        """Paths, (waveform, rate) pairs, waveforms or Ink objects -> per input, in order, its Transcript or the
        UserError (AudioError / InkError, ...) it raised. `chunk` inputs are read and decoded together at a time;
        audio longer than split_over seconds goes through transcribe_long when it is met, with
        `long_progress(item, seconds)` (see LongProgress) told how far it has got and `long_groups(item)`'s
        callback (see LongGroups) handed each group of segments as it is decoded."""
        items = list(items)
        for start in range(0, len(items), max(1, chunk)):
            done: list[tuple[int, Transcript | UserError | None]] = []  # None: decoded with `inputs`
            inputs = []
            for k in range(start, min(start + max(1, chunk), len(items))):
                try:
                    result = self._long_or_none(items[k], timestamps, long_progress, long_groups)
                    if result is None:
                        inputs.append(self.load_input(items[k]))
                except UserError as err:  # unreadable audio or ink: this input's result, and the others go on
                    result = err
                done.append((k, result))
            short = iter(self.transcribe_inputs(inputs, timestamps))
            for k, result in done:
                result = result if result is not None else next(short)
                if isinstance(result, Transcript):
                    result.name = str(items[k]) if isinstance(items[k], (str, Path)) else f"<input {k}>"
                yield result

    def _long_or_none(self, item, timestamps: bool, long_progress: LongProgress | None,
                      long_groups: LongGroups | None = None) -> Transcript | None:
        """The transcript of `item` when it is a long recording, None when it is decoded in a batch."""
        if not self.is_long(item):
            return None
        on_group = long_groups(item) if long_groups else None
        with (long_progress or (lambda *_: nullcontext()))(item, self.long_seconds(item)) as progress:
            return self.transcribe_long(item, timestamps, progress=progress, on_group=on_group)

    def transcribe(self, items, timestamps: bool = False) -> list[Transcript] | Transcript:
        """A list of inputs (paths, (waveform, rate) pairs, waveforms, Ink objects) -> their transcripts in the same
        order; one input (not in a list) -> its transcript. A file that cannot be read raises its UserError
        (AudioError / InkError); transcribe_each reports it and goes on. Audio longer than split_over seconds goes
        through transcribe_long."""
        single = isinstance(items, SINGLE_INPUTS)
        items = [items] if single else list(items)
        results = []
        for result in self.transcribe_each(items, timestamps, chunk=len(items)):
            if isinstance(result, UserError):
                raise result
            results.append(result)
        return results[0] if single else results

    def transcribe_inks(self, inks: list[Ink]) -> list[str]:
        return [t.text for t in self.transcribe(inks)]
