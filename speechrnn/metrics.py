"""WER / CER with substitutions, deletions and insertions, via jiwer."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer


@dataclass
class ErrorRates:
    wer: float
    cer: float
    words: int
    word_substitutions: int
    word_deletions: int
    word_insertions: int
    chars: int
    char_errors: int
    utterances: int
    sentence_errors: int

    def summary(self) -> str:
        return (f"WER {100 * self.wer:.2f} % [S {self.word_substitutions}, D {self.word_deletions}, "
                f"I {self.word_insertions} / {self.words} words], CER {100 * self.cer:.2f} % "
                f"[{self.char_errors} / {self.chars} chars], SER {self.sentence_errors}/{self.utterances}")


def error_rates(refs: list[str], hyps: list[str]) -> ErrorRates:
    """Corpus-level rates. Empty references are allowed (every hypothesis word counts as an insertion)."""
    # jiwer rejects empty references; score them apart.
    pairs = [(r, h) for r, h in zip(refs, hyps) if r.strip()]
    extra_words = sum(len(h.split()) for r, h in zip(refs, hyps) if not r.strip())
    extra_chars = sum(len(h) for r, h in zip(refs, hyps) if not r.strip())
    sub = dele = ins = words = char_err = chars = 0
    if pairs:
        pair_refs, pair_hyps = [p[0] for p in pairs], [p[1] for p in pairs]
        w = jiwer.process_words(pair_refs, pair_hyps)
        c = jiwer.process_characters(pair_refs, pair_hyps)
        sub, dele, ins = w.substitutions, w.deletions, w.insertions
        words = sub + dele + w.hits
        char_err = c.substitutions + c.deletions + c.insertions
        chars = c.substitutions + c.deletions + c.hits
    ins += extra_words
    char_err += extra_chars
    return ErrorRates(
        wer=(sub + dele + ins) / max(words, 1), cer=char_err / max(chars, 1), words=words,
        word_substitutions=sub, word_deletions=dele, word_insertions=ins, chars=chars, char_errors=char_err,
        utterances=len(refs), sentence_errors=sum(r.split() != h.split() for r, h in zip(refs, hyps)),
    )


def word_errors(ref: str, hyp: str) -> int:
    if not ref.strip():
        return len(hyp.split())
    w = jiwer.process_words(ref, hyp)
    return w.substitutions + w.deletions + w.insertions


def write_report(out_dir: str | Path, name: str, ids: list[str], refs: list[str], hyps: list[str]) -> ErrorRates:
    """Write `<name>.per_utt.jsonl` (id, ref, hyp, word errors) and `<name>.summary.json`; return the rates."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.per_utt.jsonl", "w", encoding="utf-8") as out:
        for utt_id, ref, hyp in zip(ids, refs, hyps):
            out.write(json.dumps({"id": utt_id, "ref": ref, "hyp": hyp, "word_errors": word_errors(ref, hyp),
                                  "ref_words": len(ref.split())}, ensure_ascii=False) + "\n")
    rates = error_rates(refs, hyps)
    (out_dir / f"{name}.summary.json").write_text(json.dumps(asdict(rates), indent=2) + "\n")
    return rates
