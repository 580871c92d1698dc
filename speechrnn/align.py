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
"""

from dataclasses import asdict, dataclass, field

import torch
import torchaudio.functional as AF

from .output import Span
from .text import Tokenizer


@dataclass
class Alignment:
    text: str
    words: list[Span] = field(default_factory=list)
    chars: list[Span] = field(default_factory=list)

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
    `end_reach`: frames before the separator that follows a word where it ends at the earliest (module doc)."""
    text = tokenizer.decode(tokens)
    tokens = [t for t in tokens if t != 0]
    if not tokens or log_probs.shape[0] == 0:
        return Alignment(text)
    emissions = log_probs.detach().float().cpu()[None]  # (T, V) -> (1, T, V)
    targets = torch.tensor([tokens], dtype=torch.int32)  # (1, L)
    chosen_on = emissions if scores is None else scores.detach().float().cpu()[None]  # (T, V) -> (1, T, V)
    path, _ = AF.forced_align(chosen_on, targets, blank=0)  # (1, T) token id per frame
    path = path[0]
    probs = emissions[0].exp()  # (T, V)
    chars, words = [], []
    spans = AF.merge_tokens(path, probs[torch.arange(len(path)), path])  # runs of one token, blanks dropped
    for span in spans:
        chars.append(Span(tokenizer.symbols[span.token], span.start * shift, span.end * shift,
                          float(probs[span.start:span.end, span.token].mean())))
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
    return Alignment(" ".join(w.text for w in words) if words else text, words, [c for c in chars if c.text != " "])
