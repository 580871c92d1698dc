"""The files beam search reads, for `decode.BeamDecoder`: flashlight's names for our tokens, lexicons (written
with `write_lexicon`, checked with `check_lexicon`, extended with hotwords by `with_hotwords`) and n-gram LMs
(`check_lm`: the right unit for the mode, and the words the model can spell; `lm_load_error`: one line for a file
KenLM refuses).

Lexicon lines are `WORD<TAB>W O R D |`: the word, its characters under flashlight's token names, and the word
boundary "|" (our space, `lm.SPACE`).
"""

from __future__ import annotations

import itertools
import re
import sys
import tempfile
from pathlib import Path
from typing import Iterable

from .errors import UserError
from .lm import BOS, EOS, SPACE, UNK, load_arpa
from .text import Tokenizer, normalize

BAR = "<bar>"  # flashlight's name for a literal "|" character of a tokenizer, since "|" means the space


def flashlight_tokens(tokenizer: Tokenizer) -> list[str]:
    """Our symbols under the names flashlight sees: ' ' -> '|', a literal '|' -> '<bar>'; ids unchanged.
    A tokenizer without a space gets a '|' appended (id len(tokenizer)), which the decoder never emits."""
    if BAR in tokenizer.index:
        raise UserError(f"the tokenizer has the symbol {BAR!r}, which beam search reserves for '|'")
    names = [SPACE if s == " " else BAR if s == SPACE else s for s in tokenizer.symbols]
    return names if " " in tokenizer.index else names + [SPACE]


def lexicon_line(word: str, names: list[str], tokenizer: Tokenizer) -> str:
    """`WORD<TAB>W O R D |` and a newline: `word` (normalised, all its characters tokens) spelled in `names`."""
    return f"{word}\t{' '.join(names[tokenizer.index[c]] for c in word)} {SPACE}\n"


def spelled(word: str, tokenizer: Tokenizer) -> str | None:
    """`word` normalised as transcripts are (tokenizer.config), or None when it is no single word of the tokenizer's
    symbols (a character it lacks, nothing, or several words)."""
    norm = normalize(word, tokenizer.config)
    return norm if norm and " " not in norm and all(c in tokenizer.index for c in norm) else None


def write_lexicon(words: Iterable[str], tokenizer: Tokenizer, path: str | Path) -> tuple[int, int]:
    """Write a flashlight lexicon for `tokenizer`: one `WORD<TAB>W O R D |` line per distinct word.

    Words are normalised as transcripts are (tokenizer.config). Words whose characters are not all tokens of
    the tokenizer (or that normalise to nothing or to several words) are skipped, with one warning.
    Returns (words written, words skipped).
    """
    names = flashlight_tokens(tokenizer)
    written: dict[str, None] = {}
    skipped: dict[str, None] = {}
    for word in words:
        norm = spelled(word, tokenizer)
        if norm:
            written.setdefault(norm, None)
        elif word.strip():
            skipped.setdefault(word.strip(), None)
    if not written:
        raise UserError(f"{path}: no word of the list can be spelled with the tokenizer's symbols; lexicon not written")
    lines = [lexicon_line(w, names, tokenizer) for w in written]
    Path(path).write_text("".join(lines), encoding="utf-8")
    if skipped:
        shown = ", ".join(repr(w) for w in itertools.islice(skipped, 5))
        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        print(f"warning: {path}: {len(skipped)} word(s) left out of the lexicon, with characters the tokenizer "
              f"lacks: {shown}{more}", file=sys.stderr)
    return len(written), len(skipped)


def hotword_lexicon(lexicon: str | None, hotwords: dict[str, float], tokenizer: Tokenizer):
    """A lexicon that holds every hotword: a copy of `lexicon` plus the missing ones, in a temporary folder that the
    caller keeps alive. A hotword the model cannot spell is refused. Returns (its path, {normalised hotword:
    boost}, the folder)."""
    if lexicon is None:
        raise UserError("hotwords need a lexicon (--lexicon, or a bundle tuned with one): beam search boosts whole "
                        "words of the lexicon")
    names = flashlight_tokens(tokenizer)
    boosts = {}
    for word, boost in hotwords.items():
        norm = normalize(word, tokenizer.config)
        missing = [c for c in norm if c not in tokenizer.index]
        if not norm or " " in norm or missing:
            why = f"the model has no {missing[0]!r}" if missing else "it is not one word after normalisation"
            raise UserError(f"hotword {word!r} cannot be recognised: {why}; leave it out or spell it with the "
                            f"model's characters")
        boosts[norm] = float(boost)
    known = {line.split(maxsplit=1)[0] for line in Path(lexicon).read_text(encoding="utf-8").splitlines()
             if line.strip()}
    folder = tempfile.TemporaryDirectory(prefix="speechrnn-hotwords-")
    path = Path(folder.name) / "lexicon.txt"
    extra = "".join(lexicon_line(w, names, tokenizer) for w in boosts if w not in known)
    path.write_text(Path(lexicon).read_text(encoding="utf-8").rstrip("\n") + "\n" + extra, encoding="utf-8")
    return str(path), boosts, folder


ARPA_CHECK_MAX_BYTES = 200 << 20  # larger ARPA files are not re-read in Python to find the faulty line


def lm_load_error(path: Path, message: str) -> UserError:
    """One line for an LM file KenLM refused: file:line and the problem. KenLM itself names a byte offset after
    the location in its own C++ source; for ARPA text, speechrnn.lm's reader finds the line and says what is wrong
    with it (files up to ARPA_CHECK_MAX_BYTES), else the byte offset is turned into a line number."""
    advice = "fix the file or rebuild it with `speechrnn lm build`"
    if arpa_unigrams(path) is not None and path.stat().st_size <= ARPA_CHECK_MAX_BYTES:
        try:
            load_arpa(path)
        except UserError as located:  # "file:line: what is wrong"
            return UserError(f"{located}; the language model could not be loaded ({advice})")
    reason = re.sub(r"^.*? threw \w+ because `.*?'\.\s*", "", message)  # drop KenLM's source location
    offset = re.search(r" at byte (\d+)", reason)
    reason = re.sub(r" at byte \d+|\s*Byte: \d+$", "", reason)
    where = str(path)
    if offset:
        with open(path, "rb") as head:
            line = head.read(int(offset.group(1))).count(b"\n") + 1
        where += f":{line}"
    return UserError(f"{where}: the language model could not be loaded: {reason}; {advice}")


def check_lexicon(path: str | Path, names: list[str]) -> int:
    """Fail with one line if the lexicon file is missing, empty, or spells a word with an unknown token."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: lexicon file not found (write one with speechrnn.decoder_files.write_lexicon)")
    known = set(names)
    count = 0
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path}:{number}: not UTF-8 text; write the lexicon as UTF-8 (`speechrnn lm "
                                "lexicon` does)") from None
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise UserError(f"{path}:{number}: {line.strip()!r} has no spelling; lines are 'WORD<TAB>W O R D |'")
            unknown = [t for t in fields[1:] if t not in known]
            if unknown:
                raise UserError(f"{path}:{number}: the spelling of {fields[0]!r} uses {unknown[0]!r}, which is not a "
                                f"token of the model; rewrite the lexicon with write_lexicon")
            count += 1
    if not count:
        raise UserError(f"{path}: the lexicon is empty")
    return count


_warned_lms: set = set()  # (file, its mtime, tokens, mode) already warned about: one warning per process


def check_lm(path: str | Path, with_lexicon: bool, names: list[str]) -> int:
    """Fail with one line if the LM file is missing, or an ARPA model of the wrong unit for the mode:
    lexicon-free decoding needs a token (char) LM, lexicon decoding a word LM, or one of whose words (symbols)
    the model can emit none. Warn (once per file) about the LM words (symbols) the model cannot emit, and
    return how many there are (0 for a KenLM binary, which is not read here)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: language model file not found (build one with `speechrnn lm build`)")
    units = arpa_unigrams(path)
    if units is None:  # not ARPA text (a KenLM binary): KenLM checks it
        return 0
    units -= {BOS, EOS, UNK}
    tokens = set(names)
    outside = units - tokens
    if not with_lexicon and len(outside) > len(units) / 2:
        example = sorted(outside, key=len)[-1]
        if len(example) == 1:
            raise UserError(f"{path}: most characters of the LM (e.g. {example!r}) are not tokens of the model; "
                            f"build it from text normalised as the model's transcripts are (e.g. the case)")
        raise UserError(f"{path}: a word LM (e.g. {example!r}) cannot score lexicon-free decoding, which needs a "
                        f"character LM (speechrnn lm build --unit char); or give a lexicon")
    if with_lexicon and SPACE in units and not outside - {SPACE}:
        raise UserError(f"{path}: a character LM (it has {SPACE!r}) cannot score lexicon decoding, which needs a "
                        f"word LM (speechrnn lm build --unit word); or decode without a lexicon")
    if with_lexicon:  # words: the model emits a word when it emits each of its characters
        chars = {n for n in names if len(n) == 1 and n != SPACE} | ({SPACE} if BAR in tokens else set())
        outside = {w for w in units if not set(w) <= chars}
        if units and outside == units:
            raise UserError(f"{path}: the model cannot spell any of the LM's {len(units)} words (e.g. "
                            f"{sorted(units)[0]!r}); build it from text normalised as the model's transcripts are "
                            f"(e.g. the case)")
    if outside:
        key = (str(path.resolve()), path.stat().st_mtime_ns, tuple(names), with_lexicon)
        if key not in _warned_lms:
            _warned_lms.add(key)
            what = ("words use characters the model cannot emit" if with_lexicon
                    else "symbols are not tokens of the model")
            shown = ", ".join(repr(u) for u in sorted(outside)[:5]) + (f" and {len(outside) - 5} more"
                                                                        if len(outside) > 5 else "")
            print(f"warning: {path}: {len(outside)} of {len(units)} LM {what}, so they are never recognised: "
                  f"{shown}", file=sys.stderr)
    return len(outside)


def arpa_unigrams(path: Path) -> set[str] | None:
    """The unigram words of an ARPA file, or None when the file is not ARPA text."""
    with open(path, "rb") as head:
        if b"\\data\\" not in head.read(1 << 16):  # a KenLM binary (or not an LM at all)
            return None
    units: set[str] = set()
    section = None  # None before the \data\ line, then the header line of the current section
    try:
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                line = line.strip()
                if section is None:
                    section = line if line == "\\data\\" else None
                elif line.startswith("\\"):
                    if section == "\\1-grams:":
                        break
                    section = line
                elif section == "\\1-grams:" and line:
                    fields = line.split()
                    if len(fields) >= 2:
                        units.add(fields[1])
    except UnicodeDecodeError:
        return None
    return units if section is not None else None
