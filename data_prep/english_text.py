#!/usr/bin/env python3
"""English text for language models, from packages of the Debian and Python package registries (no downloads).

    python data_prep/english_text.py --out DIR [--in-domain TRAIN.jsonl ...] [--word-lines N] [--lexicon-words N]

Sources (each is used when installed; the script names the command that installs what is missing):
    fortunes      Debian `fortunes`: quotations, jokes and poems (/usr/share/games/fortunes)       -> prose lines
    wordnet       Debian `wordnet-base`: WordNet 3.0 glosses and their example sentences            -> prose lines
    wamerican     Debian `wamerican`: the SCOWL American English word list, with its capitals       -> word list
    wordfreq      PyPI `wordfreq`: English word frequencies (lower case)                            -> word counts
    in-domain     the transcripts of a recipe's *training* manifest(s) given with --in-domain        -> lines as written

Writes to DIR:
    train.txt, dev.txt, test.txt   one line of text each: the prose sentences, plus --word-lines single words drawn by
                                   frequency from wordfreq (a recogniser of isolated words starts and ends a word at a
                                   line boundary), plus the in-domain lines; 2 % of the lines go to dev and 2 % to
                                   test, chosen by the md5 of the line, so the split is deterministic and a line that
                                   occurs twice is never on both sides
    words.tsv                      WORD<TAB>COUNT: the --lexicon-words most frequent wordfreq words (counts per
                                   billion words), in lower case except those wamerican writes only with capitals
                                   ("Paris"), and the in-domain words; an open-vocabulary lexicon for beam search
    SOURCES.md                     each source used, its package, version, licence file and how many lines it gave

Never give a recognition dev or test manifest to --in-domain: everything here is training text.
"""

import argparse
import hashlib
import json
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

from common import PrepError, run

FORTUNES = Path("/usr/share/games/fortunes")
WORDNET = Path("/usr/share/wordnet")
WAMERICAN = Path("/usr/share/dict/american-english")
INSTALL = {"fortunes": "apt-get install fortunes", "wordnet": "apt-get install wordnet-base",
           "wamerican": "apt-get install wamerican", "wordfreq": "pip install wordfreq"}
LICENCES = {"fortunes": "/usr/share/doc/fortunes/copyright (BSD fortune files)",
            "wordnet": "/usr/share/doc/wordnet-base/copyright (WordNet 3.0 licence, Princeton University)",
            "wamerican": "/usr/share/doc/wamerican/copyright (SCOWL, permissive)",
            "wordfreq": "wordfreq's LICENSE.txt (code Apache-2.0, data CC BY-SA 4.0)",
            "in-domain": "the corpus of the recipe whose training transcripts were given"}
MAX_LINE = 300  # characters; longer paragraphs are cut at sentence ends
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
DEV_PERCENT, TEST_PERCENT = 2, 2


def clean(text: str) -> str:
    """NFC, printable characters only, whitespace runs as one space."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(text.split())


def sentences(paragraph: str) -> list[str]:
    """A paragraph as lines of at most MAX_LINE characters, cut at sentence ends (a sentence longer than that is
    dropped: tables, ASCII art)."""
    lines, line = [], ""
    for sentence in SENTENCE_END.split(clean(paragraph)):
        if len(sentence) > MAX_LINE:
            continue
        if line and len(line) + 1 + len(sentence) > MAX_LINE:
            lines.append(line)
            line = sentence
        else:
            line = f"{line} {sentence}".strip()
    return lines + ([line] if line else [])


def looks_like_prose(text: str) -> bool:
    """Mostly letters and spaces (not ASCII art, code or tables)."""
    letters = sum(c.isalpha() or c == " " for c in text)
    return len(text) >= 8 and letters >= 0.85 * len(text)


def fortune_lines() -> list[str]:
    files = sorted(p for p in FORTUNES.glob("*") if p.is_file() and not p.suffix and p.name not in ("art", "ascii-art"))
    lines = []
    for path in files:
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines += [s for s in sentences(entry) if looks_like_prose(s)]
    return lines


def wordnet_lines() -> list[str]:
    """The gloss and the quoted examples of every synset: "a domesticated carnivorous mammal ...; "the dog barked"."""
    lines = []
    for part in ("noun", "verb", "adj", "adv"):
        for raw in (WORDNET / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("  ") or "|" not in raw:  # the licence header
                continue
            for piece in raw.split("|", 1)[1].split(";"):
                piece = clean(piece.strip().strip('"'))
                if looks_like_prose(piece) and len(piece) <= MAX_LINE:
                    lines.append(piece)
    return lines


def in_domain_lines(manifests: list[str]) -> list[str]:
    lines = []
    for manifest in manifests:
        path = Path(manifest)
        if not path.is_file():
            raise PrepError(f"{path}: --in-domain manifest not found")
        for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if raw.strip():
                try:
                    text = clean(str(json.loads(raw)["text"]).replace('"', ""))
                except (ValueError, KeyError, TypeError):
                    raise PrepError(f"{path}:{number}: not a manifest line with a \"text\" field") from None
                if text:
                    lines.append(text)
    return lines


def wordfreq_counts(n: int) -> dict[str, float]:
    """The n most frequent English words (letters and apostrophes only) -> count per billion words."""
    import wordfreq

    counts = {}
    for word in wordfreq.top_n_list("en", 3 * n):
        if re.fullmatch(r"[a-z]+(?:'[a-z]+)?", word):
            counts[word] = round(wordfreq.word_frequency(word, "en") * 1e9, 1)
            if len(counts) == n:
                break
    return counts


def proper_spellings() -> dict[str, str]:
    """Lower-case form -> spelling, for the wamerican words written only with capitals: "paris" -> "Paris"."""
    listed = WAMERICAN.read_text(encoding="utf-8", errors="replace").split()
    lower = set(word for word in listed if word == word.lower())
    return {word.lower(): word for word in listed if word != word.lower() and word.lower() not in lower}


def share(line: str) -> str:
    bucket = int(hashlib.md5(line.encode("utf-8")).hexdigest(), 16) % 100
    return "test" if bucket < TEST_PERCENT else "dev" if bucket < TEST_PERCENT + DEV_PERCENT else "train"


def package_version(source: str) -> str:
    if source == "wordfreq":
        from importlib.metadata import version

        return version("wordfreq")
    package = {"wordnet": "wordnet-base"}.get(source, source)
    done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
    return done.stdout.strip() or "?"


def missing_sources() -> list[str]:
    missing = [name for name, path in (("fortunes", FORTUNES), ("wordnet", WORDNET / "data.noun"),
                                       ("wamerican", WAMERICAN)) if not path.exists()]
    try:
        import wordfreq  # noqa: F401
    except ImportError:
        missing.append("wordfreq")
    return missing


def prepare(out: str, in_domain: list[str], word_lines: int, lexicon_words: int, seed: int) -> None:
    missing = missing_sources()
    if missing:
        raise PrepError("english_text: missing " + ", ".join(missing) + "; install with: "
                        + "; ".join(INSTALL[m] for m in missing))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = wordfreq_counts(lexicon_words)
    rng = random.Random(seed)
    words, weights = list(counts), list(counts.values())
    sources = {"fortunes": fortune_lines(), "wordnet": wordnet_lines(),
               "wordfreq": rng.choices(words, weights=weights, k=word_lines), "in-domain": in_domain_lines(in_domain)}
    split: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for lines in sources.values():
        for line in lines:
            split[share(line)].append(line)
    for name, lines in split.items():
        rng.shuffle(lines)
        tmp = out_dir / f"{name}.txt.tmp"
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        tmp.replace(out_dir / f"{name}.txt")

    proper = proper_spellings()
    lexicon: Counter = Counter()
    for word, count in counts.items():
        lexicon[proper.get(word, word)] += count
    in_domain_words = Counter(w for line in sources["in-domain"] for w in line.split())
    for word in in_domain_words:
        lexicon[word] = max(lexicon[word], 1.0)  # present; the count wordfreq gives it, at least 1 per billion
    tmp = out_dir / "words.tsv.tmp"
    tmp.write_text("".join(f"{w}\t{c:g}\n" for w, c in sorted(lexicon.items(), key=lambda x: (-x[1], x[0]))),
                   encoding="utf-8")
    tmp.replace(out_dir / "words.tsv")

    report = ["# Sources of this English text", "",
              "| source | package version | licence | lines (all splits) |", "|---|---|---|---|"]
    for name, lines in sources.items():
        if name == "in-domain" and not lines:
            continue
        version = ", ".join(in_domain) if name == "in-domain" else package_version(name)
        report.append(f"| {name} | {version} | {LICENCES[name]} | {len(lines)} |")
    capitalised = sum(1 for word in counts if word in proper)
    report.append(f"| wamerican | {package_version('wamerican')} | {LICENCES['wamerican']} | 0 (spells {capitalised} "
                  f"words.tsv words with their capitals) |")
    report += ["", f"train {len(split['train'])} lines, dev {len(split['dev'])}, test {len(split['test'])}; "
               f"words.tsv {len(lexicon)} words; seed {seed}"]
    (out_dir / "SOURCES.md").write_text("\n".join(report) + "\n", encoding="utf-8")
    print(f"{out_dir}: train {len(split['train'])} lines ({sum(map(len, split['train'])) / 1e6:.1f} M characters), "
          f"dev {len(split['dev'])}, test {len(split['test'])}; words.tsv {len(lexicon)} words", file=sys.stderr)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder to write train/dev/test.txt, words.tsv, SOURCES.md")
    parser.add_argument("--in-domain", nargs="*", default=[], metavar="MANIFEST",
                        help="training manifests (JSONL with \"text\") whose transcripts are added (never dev/test)")
    parser.add_argument("--word-lines", type=int, default=300000,
                        help="single-word lines drawn by wordfreq frequency (default: 300000)")
    parser.add_argument("--lexicon-words", type=int, default=100000,
                        help="most frequent wordfreq words in words.tsv (default: 100000)")
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    return run(prepare, args.out, args.in_domain, args.word_lines, args.lexicon_words, args.seed)


if __name__ == "__main__":
    sys.exit(main())
