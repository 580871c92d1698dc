"""Word and character timestamps with confidences, from a CTC forced alignment of a decoded hypothesis.

The hypothesis (greedy or beam) is aligned to the model's log-probs with `torchaudio.functional.forced_align`
(Viterbi over the CTC graph of exactly those tokens). A character spans the frames aligned to it; a word runs
from its first character's first frame to its last character's last frame. Frame i of the model's output
covers input time [i * frame_shift, (i + 1) * frame_shift), where the shift includes the conv subsampling
(`CTCModel.frame_shift`).

Confidence of a character: its mean posterior probability over the frames aligned to it. Confidence of a word:
the lowest of its characters' (one unsure letter makes the word unsure), in [0, 1].

`end_reach` (frames) is for a right-to-left aligner trained with a word separator at each end of its transcripts
(recognizer.py): reading backwards, it puts a word's last character on that letter's onset, blanks over its fading
tail, and the separator after the word on the frame where it first has the word in reach (lookahead). So a word
ends no earlier than `end_reach` frames before the separator aligned after it; 3 frames was chosen on AN4 dev
(benchmarks/eval_timestamps.py --end-reach).

Too few frames: CTC needs a frame per character (and a blank between repeated ones), so a text can be longer than
a very short input can hold (under about 120 ms of audio; also a beam or lexicon decoder can choose such a text).
Then no alignment exists, and the characters are *spread*: the input's time is split evenly between them (spaces
included), each character's confidence is its mean posterior over the frames its share overlaps, words are built
from them as usual, and `Alignment.spread` says so. Every word keeps a time and a confidence; nothing raises.
"""

from dataclasses import asdict, dataclass, field
from math import ceil

import torch
import torchaudio.functional as AF

from .output import Span
from .text import Tokenizer


@dataclass
class Alignment:
    text: str
    words: list[Span] = field(default_factory=list)
    chars: list[Span] = field(default_factory=list)
    spread: bool = False  # too few frames to align: the characters share the input's time evenly (module doc)

    def to_dict(self) -> dict:
        return asdict(self)


def ctc_frames_needed(tokens: list[int]) -> int:
    """CTC needs one frame per token plus one blank between each pair of repeated tokens."""
    return len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))


def align(log_probs: torch.Tensor, tokens: list[int], tokenizer: Tokenizer, shift: float,
          scores: torch.Tensor | None = None, end_reach: int = 0) -> Alignment:
    """log_probs (T, V) of one utterance (valid frames only), tokens the hypothesis' ids (blanks dropped, repeats
    merged, spaces kept). Returns the text with per-word and per-character times and confidences. `scores` (T, V):
    what the path is chosen on when it is not log_probs (CTCModel.alignment_scores of a model with a prior).
    `end_reach`: frames before the separator that follows a word where it ends at the earliest (module doc).
    A text that needs more frames than there are is spread over them (module doc), never refused."""
    text = tokenizer.decode(tokens)
    tokens = [t for t in tokens if t != 0]
    if not tokens or log_probs.shape[0] == 0:
        return Alignment(text)
    emissions = log_probs.detach().float().cpu()[None]  # (T, V) -> (1, T, V)
    probs = emissions[0].exp()  # (T, V)
    spread = ctc_frames_needed(tokens) > len(probs)
    if spread:
        chars = _spread_chars(probs, tokens, tokenizer, shift)
    else:
        chosen_on = emissions if scores is None else scores.detach().float().cpu()[None]  # (T, V) -> (1, T, V)
        chars = _aligned_chars(chosen_on, probs, tokens, tokenizer, shift)
    words = _words(chars, shift, end_reach)
    return Alignment(" ".join(w.text for w in words) if words else text, words, [c for c in chars if c.text != " "],
                     spread)


def _aligned_chars(chosen_on: torch.Tensor, probs: torch.Tensor, tokens: list[int], tokenizer: Tokenizer,
                   shift: float) -> list[Span]:
    """Characters (spaces included) on the Viterbi path through `chosen_on` (1, T, V); confidences from probs."""
    targets = torch.tensor([tokens], dtype=torch.int32)  # (1, L)
    path, _ = AF.forced_align(chosen_on, targets, blank=0)  # (1, T) token id per frame
    path = path[0]
    spans = AF.merge_tokens(path, probs[torch.arange(len(path)), path])  # runs of one token, blanks dropped
    return [Span(tokenizer.symbols[span.token], span.start * shift, span.end * shift,
                 float(probs[span.start:span.end, span.token].mean())) for span in spans]


def _spread_chars(probs: torch.Tensor, tokens: list[int], tokenizer: Tokenizer, shift: float) -> list[Span]:
    """Characters sharing the T frames of probs (T, V) evenly: character i spans [i, i + 1) * T / L frames, its
    confidence the mean posterior of its token over the frames that share overlaps."""
    frames, count = len(probs), len(tokens)
    chars = []
    for i, token in enumerate(tokens):
        start, end = i * frames / count, (i + 1) * frames / count
        first = min(int(start), frames - 1)
        last = max(first + 1, min(frames, ceil(end)))
        chars.append(Span(tokenizer.symbols[token], start * shift, end * shift, float(probs[first:last, token].mean())))
    return chars


def _words(chars: list[Span], shift: float, end_reach: int) -> list[Span]:
    """Words from characters split at spaces: first character's start, last one's end (no earlier than `end_reach`
    frames before the separator after it), the lowest character confidence."""
    words: list[Span] = []
    word: list[Span] = []
    for char in chars + [None]:  # None closes the last word
        if char is None or char.text == " ":
            if word:
                end = word[-1].end
                if char is not None and end_reach:  # a separator aligned after the word
                    end = max(end, char.start - end_reach * shift)
                words.append(Span("".join(c.text for c in word), word[0].start, end, min(c.confidence for c in word)))
            word = []
        else:
            word.append(char)
    return words
