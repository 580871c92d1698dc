"""N-gram language models for CTC beam search: build, write and read ARPA files.

`build_arpa` estimates an interpolated modified Kneser-Ney model (Chen & Goodman 1998, section 3.5),
the estimate of KenLM's `lmplz` and SRILM's `ngram-count -kndiscount -interpolate`, without pruning,
and returns it as ARPA text, the format flashlight-text's KenLM (torchaudio's `ctc_decoder`) reads.
`load_arpa` reads an ARPA file back and `score` scores a sentence with it by standard back-off.

The estimate, for an n-gram `h w` (context `h`, word `w`) of order n:

    p(w | h) = (a(h w) - D_n(a(h w))) / sum_x a(h x)  +  gamma(h) * p(w | h')      h' = h without its first word
    gamma(h) = (D_n1 * N1(h) + D_n2 * N2(h) + D_n3+ * N3+(h)) / sum_x a(h x)

where N1(h), N2(h), N3+(h) count the words x with a(h x) = 1, 2, >= 3, and a(.) is the adjusted count:
the raw count for the highest order and for n-grams that begin with <s> (they cannot be extended to
the left), otherwise the continuation count, the number of distinct words v with `v h w` seen.
Unigrams are interpolated with the uniform distribution over the vocabulary (every word seen, </s>
and <unk>, but not <s>, which is never predicted), so <unk>, never seen, gets gamma() / |vocabulary|.
<s> gets log10 probability -99, as in KenLM.

In the ARPA file the probability of a seen n-gram is the interpolated p(w | h) above, and the back-off
weight of a context h is gamma(h); with standard back-off, p(w | h) = gamma(h) p(w | h') for unseen `h w`
then gives exactly the interpolated model, which sums to one over the vocabulary for every context.

Discounts (Chen & Goodman equation 26), per order from the count-of-counts t_k, the number of n-grams
of that order with adjusted count k:

    Y = t1 / (t1 + 2 t2),    D_k = k - (k + 1) Y t_(k+1) / t_k    for k = 1, 2, 3 (D3 is used for counts >= 3)

The closed form needs t1, t2, t3 > 0 and gives 0 < D_k <= k only on natural data. When it fails for an
order (tiny or artificial corpora), that order uses FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5), the defaults of
KenLM's `lmplz --discount_fallback`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Sequence

from .errors import UserError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
SPACE = "|"  # stands for the space between words in character-level models
UNITS = ("word", "char")
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
BOS_LOG10_PROB = -99.0  # <s> is never predicted; -99 is the ARPA convention for "probability zero"

Ngram = tuple[str, ...]
Model = dict[int, dict[Ngram, tuple[float, float]]]  # order -> n-gram -> (log10 prob, log10 back-off)
Entries = dict[int, dict[Ngram, tuple[float, float | None]]]  # the same, back-off None where not a context


# ------------------------------------------------------------------------------------------------- public API


def build_arpa(sentences: Iterable[str], order: int = 3, unit: str = "word") -> str:
    """Estimate an interpolated modified Kneser-Ney `order`-gram model on `sentences` and return it as ARPA text.

    unit "word": whitespace-separated tokens; "char": characters, with "|" for the space between words.
    Raises UserError for an empty corpus, an order below 1 or an unknown unit.
    """
    return format_arpa(estimate(sentences, order, unit))


def write_arpa(path: str | Path, sentences: Iterable[str], order: int = 3, unit: str = "word") -> dict[int, int]:
    """Build the model (see build_arpa), write it to `path`, and return the number of n-grams per order."""
    entries = estimate(sentences, order, unit)
    Path(path).write_text(format_arpa(entries), encoding="utf-8")
    return {n: len(entries[n]) for n in entries}


def load_arpa(path: str | Path) -> Model:
    """Read an ARPA file: {order: {n-gram tuple: (log10 prob, log10 back-off, 0.0 when absent)}}.

    A file that does not follow the format (a bad line, a section or count that disagrees with the
    \\data\\ header, no \\end\\) raises UserError naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: ARPA file not found")
    declared: dict[int, int] = {}
    model: Model = {}
    section = None  # None before \data\, 0 inside \data\, n inside \n-grams:, -1 after \end\
    number = 0
    with open(path, encoding="utf-8") as lines:
        for number, raw in enumerate(lines, 1):
            line = raw.strip()
            where = f"{path}:{number}"
            if section == -1:
                if line:
                    raise UserError(f"{where}: text after \\end\\")
                continue
            if not line:
                continue
            if section is None:  # free text may precede \data\
                if line == "\\data\\":
                    section = 0
                continue
            if line == "\\end\\":
                _check_complete(model, declared, where)
                section = -1
            elif line.startswith("\\"):
                n = _section_order(line, where)
                expected = len(model) + 1
                if n != expected or n not in declared:
                    raise UserError(f"{where}: section {line} where \\{expected}-grams: was expected")
                if section > 0:
                    _check_count(model, declared, section, where)
                model[n] = {}
                section = n
            elif section == 0:
                n, count = _header_line(line, where)
                if n != len(declared) + 1:
                    raise UserError(f"{where}: header line for order {n} where order {len(declared) + 1} was expected")
                declared[n] = count
            else:
                gram, entry = _entry_line(line, section, where)
                if gram in model[section]:
                    raise UserError(f"{where}: n-gram {' '.join(gram)!r} listed twice")
                model[section][gram] = entry
    if section != -1:
        raise UserError(f"{path}:{number}: the file ends before \\end\\ (truncated?)")
    return model


def score(model: Model, words: Sequence[str] | str) -> float:
    """log10 probability of one sentence under `model` (from load_arpa), including the final </s>.

    `words` are the model's tokens (a string is split on whitespace; for a character model pass
    tokenize(text, "char")). Tokens outside the vocabulary are scored as <unk>.
    """
    if isinstance(words, str):
        words = words.split()
    order = max(model)
    tokens = [word if (word,) in model[1] else UNK for word in words] + [EOS]
    history: list[str] = [BOS]
    total = 0.0
    for word in tokens:
        context = tuple(history[len(history) - order + 1:]) if order > 1 else ()
        total += conditional_log10(model, context, word)
        history.append(word)
    return total


def bits_per_char_arpa(path: str | Path, lines: Sequence[str]) -> float:
    """Mean bits per character of `lines` under a character ARPA model (`build_arpa(..., unit="char")`), each line's
    end (</s>) counted as one more character, as a character RNN LM counts its line end."""
    model = load_arpa(path)
    total = sum(score(model, tokenize(line, "char")) for line in lines)
    return -total / math.log10(2) / sum(len(tokenize(line, "char")) + 1 for line in lines)


def conditional_log10(model: Model, context: Ngram, word: str) -> float:
    """log10 p(word | context) by standard back-off: the longest n-gram `context[i:] + word` in the model,
    plus the back-off weights of the contexts given up on the way (0 for a context not in the model)."""
    backoff = 0.0
    while True:
        gram = context + (word,)
        entry = model.get(len(gram), {}).get(gram)
        if entry is not None:
            return backoff + entry[0]
        if not context:
            if (UNK,) not in model[1]:
                raise UserError(f"{word!r} is not in the language model, which has no {UNK} entry")
            return backoff + model[1][(UNK,)][0]
        backoff += model.get(len(context), {}).get(context, (0.0, 0.0))[1]
        context = context[1:]


def tokenize(sentence: str, unit: str = "word") -> list[str]:
    """Split a sentence into model tokens: words, or characters with "|" for each space between words."""
    if unit == "word":
        return sentence.split()
    if unit == "char":
        return list(SPACE.join(sentence.split()))
    raise UserError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")


# ------------------------------------------------------------------------------------------------- estimation


def estimate(sentences: Iterable[str], order: int = 3, unit: str = "word") -> Entries:
    """The model as {order: {n-gram: (log10 prob, log10 back-off or None when not a context)}}, sorted."""
    if order < 1:
        raise UserError(f"the n-gram order must be at least 1, not {order}")
    if unit not in UNITS:
        raise UserError(f"unknown unit {unit!r}; use one of {', '.join(UNITS)}")
    corpus = [tokens for tokens in (tokenize(s, unit) for s in sentences) if tokens]
    if not corpus:
        raise UserError("the corpus has no sentences (every line is empty); the language model needs some text")
    for tokens in corpus:
        special = {BOS, EOS} & set(tokens)
        if special:
            sentence = " ".join(tokens)
            raise UserError(f"the corpus contains the reserved token {special.pop()} in {sentence!r}; remove it")

    counts = adjusted_counts(count_ngrams(corpus, order), order)
    vocabulary = [gram for gram in counts[1] if gram != (BOS,)]  # includes </s> and <unk>
    probs: dict[int, dict[Ngram, float]] = {}
    gammas: dict[int, dict[Ngram, float]] = {}
    for n in range(1, order + 1):
        discounts = kn_discounts(count_of_counts(counts[n]))
        lower = probs.get(n - 1, {(): 1.0 / len(vocabulary)})
        grams = vocabulary if n == 1 else list(counts[n])
        probs[n], gammas[n - 1] = interpolate(counts[n], grams, discounts, lower)
    probs[1][(BOS,)] = 0.0

    entries: Entries = {}
    for n in range(1, order + 1):
        contexts = gammas.get(n, {})
        entries[n] = {
            gram: (BOS_LOG10_PROB if gram == (BOS,) else math.log10(probs[n][gram]),
                   math.log10(contexts[gram]) if gram in contexts else None)
            for gram in sorted(probs[n])
        }
    return entries


def count_ngrams(corpus: list[list[str]], order: int) -> dict[int, Counter]:
    """Raw counts of every n-gram of orders 1..order in the sentences padded as <s> w1 .. wk </s>."""
    counts = {n: Counter() for n in range(1, order + 1)}
    for tokens in corpus:
        padded = [BOS] + tokens + [EOS]
        for n in range(1, order + 1):
            counts[n].update(tuple(padded[i:i + n]) for i in range(len(padded) - n + 1))
    return counts


def adjusted_counts(raw: dict[int, Counter], order: int) -> dict[int, dict[Ngram, int]]:
    """Kneser-Ney adjusted counts: raw counts at the highest order and for n-grams that begin with <s>,
    elsewhere continuation counts (distinct left extensions). Unigrams <s> and <unk> get 0, as in KenLM."""
    adjusted = {order: dict(raw[order])}
    for n in range(order - 1, 0, -1):
        left_extensions = Counter(gram[1:] for gram in raw[n + 1])
        adjusted[n] = {gram: count if gram[0] == BOS else left_extensions[gram] for gram, count in raw[n].items()}
    adjusted[1][(BOS,)] = 0
    adjusted[1].setdefault((UNK,), 0)
    return adjusted


def count_of_counts(counts: dict[Ngram, int]) -> list[int]:
    """[t1, t2, t3, t4]: how many n-grams have (adjusted) count 1, 2, 3, 4."""
    histogram = Counter(counts.values())
    return [histogram[k] for k in (1, 2, 3, 4)]


def kn_discounts(t: Sequence[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts (D1, D2, D3+) from the count-of-counts [t1, t2, t3, t4].

    Chen & Goodman's closed form; FALLBACK_DISCOUNTS when it is undefined (some of t1, t2, t3 is zero)
    or out of range (a D_k not in (0, k]), as happens on tiny corpora.
    """
    t1, t2, t3, t4 = t
    if min(t1, t2, t3) == 0:
        return FALLBACK_DISCOUNTS
    y = t1 / (t1 + 2 * t2)
    discounts = (1 - 2 * y * t2 / t1, 2 - 3 * y * t3 / t2, 3 - 4 * y * t4 / t3)
    if any(not 0 < d <= k for k, d in enumerate(discounts, 1)):
        return FALLBACK_DISCOUNTS
    return discounts


def interpolate(counts: dict[Ngram, int], grams: Iterable[Ngram], discounts: tuple[float, float, float],
                lower: dict[Ngram, float]) -> tuple[dict[Ngram, float], dict[Ngram, float]]:
    """One order of the recursion: p(w | h) for each n-gram `h w` in `grams`, and gamma(h) for each context h.

    `lower` holds p(w | h') of the order below (for unigrams: {(): 1 / |vocabulary|}, the uniform share).
    """
    def discounted(count: int) -> float:
        return count - (discounts[min(count, 3) - 1] if count else 0.0)

    totals: dict[Ngram, int] = defaultdict(int)
    mass: dict[Ngram, float] = defaultdict(float)
    for gram in grams:
        count = counts[gram]
        totals[gram[:-1]] += count
        mass[gram[:-1]] += count - discounted(count)
    gammas = {context: mass[context] / totals[context] for context in totals}

    probs = {}
    for gram in grams:
        context = gram[:-1]
        probs[gram] = discounted(counts[gram]) / totals[context] + gammas[context] * lower[gram[1:]]
    return probs, gammas


# ------------------------------------------------------------------------------------------------- ARPA text


def format_arpa(entries: Entries) -> str:
    """ARPA text: the \\data\\ header, then one `log10 prob<TAB>n-gram[<TAB>log10 back-off]` line per n-gram."""
    lines = ["\\data\\"]
    lines += [f"ngram {n}={len(entries[n])}" for n in entries]
    for n, grams in entries.items():
        lines += ["", f"\\{n}-grams:"]
        for gram, (prob, backoff) in grams.items():
            line = f"{prob:.7g}\t{' '.join(gram)}"
            lines.append(line if backoff is None else f"{line}\t{backoff:.7g}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


def _section_order(line: str, where: str) -> int:
    if line.endswith("-grams:"):
        try:
            return int(line[1:-len("-grams:")])
        except ValueError:
            pass
    raise UserError(f"{where}: {line!r} is not a section header like \\2-grams:")


def _header_line(line: str, where: str) -> tuple[int, int]:
    try:
        keyword, value = line.split(None, 1)
        n, count = (int(part) for part in value.split("="))
        if keyword == "ngram" and n >= 1 and count >= 0:
            return n, count
    except ValueError:
        pass
    raise UserError(f"{where}: {line!r} is not a header line like 'ngram 1=42'")


def _entry_line(line: str, n: int, where: str) -> tuple[Ngram, tuple[float, float]]:
    fields = line.split()
    if len(fields) not in (n + 1, n + 2):
        raise UserError(f"{where}: {line!r} is not '<log10 prob> <{n} words> [<log10 back-off>]'")
    try:
        prob = float(fields[0])
        backoff = float(fields[n + 1]) if len(fields) == n + 2 else 0.0
    except ValueError:
        raise UserError(f"{where}: {line!r} has a probability or back-off that is not a number") from None
    if prob > 0 or math.isnan(prob):
        raise UserError(f"{where}: log10 probability {fields[0]} is not <= 0")
    return tuple(fields[1:n + 1]), (prob, backoff)


def _check_count(model: Model, declared: dict[int, int], n: int, where: str) -> None:
    if len(model[n]) != declared[n]:
        raise UserError(f"{where}: the header declares {declared[n]} {n}-grams but the section lists {len(model[n])}")


def _check_complete(model: Model, declared: dict[int, int], where: str) -> None:
    if not declared:
        raise UserError(f"{where}: the \\data\\ header lists no n-grams")
    if len(model) != len(declared):
        raise UserError(f"{where}: \\end\\ after {len(model)} of the {len(declared)} sections in the header")
    if model:
        _check_count(model, declared, len(model), where)


# ------------------------------------------------------------------------------------------------- text files


# how a word of a lower-case word list is written, when case variants are asked for: as listed, with a capital first
# letter (a sentence's first word, a title), in capitals (a heading); a prior, tuned on nothing
CASE_SHARES = {"as listed": 0.8, "capital": 0.15, "upper": 0.05}


def read_word_counts(path: str | Path) -> dict[str, float]:
    """WORD<TAB>COUNT lines (data_prep/english_text.py's words.tsv) -> {word: count}; one line naming a bad line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: word list not found")
    counts: dict[str, float] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        word, _, count = line.partition("\t")
        try:
            counts[word.strip()] = counts.get(word.strip(), 0.0) + float(count)
        except ValueError:
            raise UserError(f"{path}:{number}: not WORD<TAB>COUNT: {line[:60]!r}") from None
    if not counts:
        raise UserError(f"{path}: no words")
    return counts


def with_case_variants(counts: dict[str, float]) -> dict[str, float]:
    """Each word also with a capital first letter and in capitals, its count shared out by CASE_SHARES (forms that
    coincide, as "Paris" listed and capitalised, add up)."""
    varied: dict[str, float] = {}
    for word, count in counts.items():
        forms = {"as listed": word, "capital": word[:1].upper() + word[1:], "upper": word.upper()}
        for kind, form in forms.items():
            varied[form] = varied.get(form, 0.0) + count * CASE_SHARES[kind]
    return varied


def unigram_arpa(counts: dict[str, float], unk_share: float = 1e-6, end_share: float = 0.1) -> str:
    """A unigram ARPA model of word counts: p(w) = count / total, scaled to leave `end_share` to </s> and
    `unk_share` to <unk>. KenLM reads bigram models and up, so the file has one bigram, `<s> </s>` at p(</s>), and
    <s> backs off with weight 1: every word's probability is its unigram one."""
    total = sum(counts.values())
    if total <= 0:
        raise UserError("the word counts add up to nothing")
    scale = (1.0 - end_share - unk_share) / total
    entries = {1: {(BOS,): (BOS_LOG10_PROB, 0.0), (EOS,): (math.log10(end_share), None),
                   (UNK,): (math.log10(unk_share), None)}, 2: {(BOS, EOS): (math.log10(end_share), None)}}
    for word, count in counts.items():
        if count > 0 and word not in (BOS, EOS, UNK):
            entries[1][(word,)] = (math.log10(count * scale), None)
    return format_arpa(entries)


def read_sentences(path: str | Path) -> list[str]:
    """Sentences from a text file (one per line) or, for a .jsonl path, the "text" field of each manifest line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: text file not found")
    if path.suffix == ".jsonl":
        from .data import iter_manifest  # imports torch: only when a manifest is given

        sentences = [str(entry["text"]) for entry in iter_manifest(path, fields=("text",))]
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            line = path.read_bytes()[: err.start].count(b"\n") + 1
            raise UserError(f"{path}:{line}: not UTF-8 text (byte {err.start + 1}); save it as UTF-8") from None
        sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not any(s.split() for s in sentences):
        raise UserError(f"{path}: no sentences (the file is empty or blank); the language model needs some text")
    return sentences


def build_lm(text: str | Path, output: str | Path, order: int = 3, unit: str = "word") -> str:
    """`speechrnn lm build`: the model of `text`'s sentences (see read_sentences) written to `output` as ARPA;
    returns the one-line summary."""
    sentences = read_sentences(text)
    counts = write_arpa(output, sentences, order, unit)
    listed = ", ".join(f"{n}-grams {count}" for n, count in counts.items())
    return f"wrote {output}: {order}-gram {unit} model from {len(sentences)} sentences ({listed})"
