"""Long recordings (minutes to hours) with bounded memory: the file is read in blocks (soundfile), each block is
resampled to the model's rate (`audio.StreamResampler`: the same samples as resampling the whole file), a VAD cuts the
stream into speech segments at pauses (`vad.StreamSegmenter`; a segment that never pauses is split at its quietest
frame after `max_length` seconds), segments are transcribed in groups of about `GROUP_SECONDS` (sorted by length
into batches by `Recognizer.transcribe_inputs`), and the texts and word times are stitched with each segment's
offset in the file. At most one block, the VAD's context, one open segment and one group of segments are in
memory at a time, whatever the length of the file. Groups are short (tens of seconds), so progress advances steadily
and each group's texts and words can be handed on (`on_group`) as soon as they are decoded, e.g. to be written.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .audio import audio_blocks
from .gate import passes
from .output import Span, Transcript
from .vad import EnergyVAD, Segment, SegmentRules, StreamSegmenter

GROUP_SECONDS = 30.0  # seconds of segments collected before they are decoded together (then reported)
# Segments for transcription: pauses of 0.3 s end a segment, and a segment never runs past 25 s (the models are
# trained on utterances of a few seconds; a BiLSTM degrades slowly past that, but memory and padding grow).
LONG_RULES = SegmentRules(threshold=0.5, min_silence=0.3, min_speech=0.2, pad=0.1, max_length=25.0)


@dataclass
class Group:
    """One decoded group of segments, as handed to transcribe_long's `on_group`."""
    texts: list[str]  # the segments' non-empty texts, in order (the transcript's text is all groups' joined by " ")
    words: list[Span]  # word times in seconds from the start of the recording
    start: float  # s: where the group's first segment starts in the recording
    end: float  # s: where its last segment ends


def transcribe_long(recognizer, source, timestamps: bool = False, vad=None, rules: SegmentRules = LONG_RULES,
                    group_seconds: float = GROUP_SECONDS, progress: Callable[[float], None] | None = None,
                    on_group: Callable[[Group], None] | None = None):
    """One long recording -> one Transcript: the segments' texts joined, word times in seconds from the start of
    the recording. `recognizer`: a recognizer.Recognizer (its config and transcribe_inputs are used).
    `progress(seconds)` is called with the audio read so far after each group, and `on_group(Group)` with each
    group's texts and words as soon as it is decoded (an exception it raises stops the transcription)."""
    rate = recognizer.config.features.sample_rate
    texts: list[str] = []
    words: list[Span] = []
    group: list[Segment] = []
    passed = [0, 0]  # segments the recognizer's gate let through, segments (speechrnn/gate.py)

    def decode() -> None:
        results = recognizer.transcribe_inputs([torch.from_numpy(s.audio) for s in group], timestamps)
        first_text, first_word = len(texts), len(words)
        for segment, result in zip(group, results):
            passed[0] += passes(result.gate)
            passed[1] += 1
            if result.text.strip():
                texts.append(result.text.strip())
            words.extend(Span(w.text, w.start + segment.start, w.end + segment.start, w.confidence)
                         for w in result.words)
        if on_group:
            on_group(Group(texts[first_text:], words[first_word:], group[0].start, group[-1].end))
        if progress:
            progress(group[-1].closed_at)
        group.clear()

    segmenter = StreamSegmenter(vad or EnergyVAD(), rate, rules)
    for block in audio_blocks(source, rate):
        for segment in segmenter.push(block):
            group.append(segment)
            if sum(len(s.audio) for s in group) >= group_seconds * rate:
                decode()
    group.extend(segmenter.flush())
    if group:
        decode()
    if progress:
        progress(segmenter.seconds)
    gate = None if getattr(recognizer, "gate", None) is None else {
        "speech": passed[0] > 0, "reason": f"{passed[0]} of {passed[1]} segment(s) cut at pauses have speech"}
    return Transcript("", " ".join(texts), words, segmenter.seconds, gate)
