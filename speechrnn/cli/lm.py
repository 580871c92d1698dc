"""`speechrnn lm build | lexicon | train | score | generate`: n-gram and character RNN language models, lexicons."""

from ..lm import UNITS  # speechrnn.lm imports no torch
from .common import add_command, add_threads_option, add_training_command, set_threads, training_config


def cmd_lm_build(args) -> None:
    """Interpolated modified Kneser-Ney n-gram LM (as KenLM's lmplz), written as ARPA text that the CTC beam
    decoder loads. Text is taken as it is: normalise it the way the model's tokenizer does (AN4: upper case)."""
    from ..lm import build_lm

    print(build_lm(args.text, args.output, order=args.order, unit=args.unit))


def cmd_lm_lexicon(args) -> None:
    """One line per distinct word, spelled with the model's characters (flashlight's WORD<TAB>W O R D | format)."""
    from ..bundle import load_bundle
    from ..decoder_files import write_lexicon
    from ..lm import read_sentences
    from ..text import Tokenizer

    tokenizer = Tokenizer.from_dict(load_bundle(args.bundle)["tokenizer"])
    words = [word for sentence in read_sentences(args.text) for word in sentence.split()]
    written, skipped = write_lexicon(words, tokenizer, args.output)
    print(f"wrote {args.output}: {written} words spelled with {args.bundle}'s characters ({skipped} left out)")


def cmd_lm_wordlist(args) -> None:
    """An open-vocabulary lexicon and a unigram word LM from a word-count list (WORD<TAB>COUNT, as
    data_prep/english_text.py's words.tsv), for beam search over general English (`tune --lexicon L --lm A`). Words
    the model cannot spell are left out, with one warning."""
    from pathlib import Path

    from ..bundle import load_bundle
    from ..decoder_files import spelled, write_lexicon
    from ..lm import read_word_counts, unigram_arpa, with_case_variants
    from ..text import Tokenizer

    tokenizer = Tokenizer.from_dict(load_bundle(args.bundle)["tokenizer"])
    counts = read_word_counts(args.words)
    if args.case_variants:
        counts = with_case_variants(counts)
    if args.in_domain:  # p(w) = share * p_in_domain(w) + (1 - share) * p_list(w)
        from collections import Counter

        from ..lm import read_sentences

        in_domain = Counter(w for sentence in read_sentences(args.in_domain) for w in sentence.split())
        listed_total, in_domain_total = sum(counts.values()), sum(in_domain.values())
        counts = {w: (1 - args.in_domain_share) * c / listed_total for w, c in counts.items()}
        for word, count in in_domain.items():
            counts[word] = counts.get(word, 0.0) + args.in_domain_share * count / in_domain_total
    spellable = {}
    for word, count in counts.items():
        norm = spelled(word, tokenizer)
        if norm:
            spellable[norm] = spellable.get(norm, 0.0) + count
    written, _ = write_lexicon(counts, tokenizer, args.lexicon)
    Path(args.arpa).write_text(unigram_arpa(spellable), encoding="utf-8")
    print(f"wrote {args.lexicon} ({written} words) and the unigram LM {args.arpa}")


def cmd_lm_train(args) -> None:
    """Train a character language model (an RNN of any cell, reading lines of text left to right) through the one
    training loop. Writes last.pt/best.pt, train_log.jsonl and the bundle model.pt under train.exp_dir; the epoch
    with the lowest dev bits per character is kept."""
    from ..tasks.lm.task import load_lm_config, train

    train(training_config(load_lm_config, args), resume=args.resume, overwrite=args.overwrite)


def cmd_lm_score(args) -> None:
    """Bits per character of a held-out text (one line per line; each line end counts as a character): a character
    LM bundle, or a character n-gram ARPA file (`lm build --unit char`)."""
    from ..tasks.lm.data import read_lines

    set_threads(args.threads)
    lines = read_lines(args.text)
    if str(args.model).endswith(".arpa"):
        from ..lm import bits_per_char_arpa

        bpc = bits_per_char_arpa(args.model, lines)
    else:
        from ..tasks.lm.inference import bits_per_char, load_lm

        bpc = bits_per_char(*load_lm(args.model)[:2], lines)
    print(f"{args.model}: {bpc:.4f} bits per character on {args.text} ({len(lines)} lines, "
          f"{sum(len(line) + 1 for line in lines)} characters)")


def cmd_lm_generate(args) -> None:
    """Text written by a character LM, one character at a time after the prompt, until the model ends the line
    (or --max-chars). The same --seed gives the same text; --temperature 0 takes the likeliest character."""
    from ..tasks.lm.inference import generate, load_lm

    set_threads(args.threads)
    model, alphabet, _ = load_lm(args.bundle)
    for index in range(args.samples):
        print(generate(model, alphabet, args.prompt, args.temperature, args.seed + index, args.max_chars))


def add_parsers(commands) -> None:
    p = commands.add_parser("lm", help="language models: n-gram and character RNN",
                            description="Language models: n-gram (ARPA) and character RNN bundles.")
    lm_commands = p.add_subparsers(dest="lm_command", required=True, metavar="LM_COMMAND")

    p = add_command(lm_commands, "build", cmd_lm_build,
                    "build a modified Kneser-Ney n-gram LM from text, written as ARPA")
    p.add_argument("text", help="training text: one sentence per line, or a JSONL manifest (.jsonl) with \"text\"")
    p.add_argument("-o", "--output", required=True, help="ARPA file to write, e.g. lm.arpa")
    p.add_argument("--order", type=int, default=3, help="n-gram order (default: 3)")
    p.add_argument("--unit", choices=UNITS, default="word",
                   help="word: whitespace tokens; char: characters with | for the space (default: word)")

    p = add_command(lm_commands, "lexicon", cmd_lm_lexicon,
                    "write the lexicon of a text's words for `eval --beam --lexicon`")
    p.add_argument("bundle", help="model bundle whose characters spell the words")
    p.add_argument("text", help="text file (one sentence per line) or JSONL manifest (.jsonl) with \"text\"")
    p.add_argument("-o", "--output", required=True, help="lexicon file to write")

    p = add_command(lm_commands, "wordlist", cmd_lm_wordlist,
                    "open-vocabulary lexicon + unigram LM from a word-count list")
    p.add_argument("bundle", help="model bundle whose characters spell the words")
    p.add_argument("words", help="WORD<TAB>COUNT lines, e.g. exp/text/words.tsv of data_prep/english_text.py")
    p.add_argument("--lexicon", required=True, help="lexicon file to write")
    p.add_argument("--arpa", required=True, help="unigram ARPA file to write")
    p.add_argument("--case-variants", action="store_true",
                   help="add each word with a capital first letter and in capitals (for a model that reads case)")
    p.add_argument("--in-domain", metavar="TEXT",
                   help="training text or manifest (.jsonl) whose words are mixed in with --in-domain-share")
    p.add_argument("--in-domain-share", type=float, default=0.5,
                   help="probability mass of the in-domain words (default: 0.5; choose it on dev)")

    add_training_command(lm_commands, cmd_lm_train, "train a character RNN language model from a YAML config",
                         "keys: data.train_text, data.dev_text, model.rnn.cell (lstm | gru | elman | jordan | indrnn), "
                         "model.rnn.hidden_size, model.rnn.num_layers, train.max_epochs, train.exp_dir",
                         "see recipes/english_lm/conf/", "model.rnn.cell=gru train.max_epochs=2")

    p = add_command(lm_commands, "score", cmd_lm_score, "bits per character of a text under an LM")
    p.add_argument("model", help="character LM bundle (lm train) or character n-gram .arpa (lm build --unit char)")
    p.add_argument("text", help="text file, one line per line")
    add_threads_option(p)

    p = add_command(lm_commands, "generate", cmd_lm_generate, "write text with a character LM")
    p.add_argument("bundle", help="character LM bundle (`speechrnn lm train`), or a recogniser that decodes with one "
                                  "(the shipped unipen)")
    p.add_argument("--prompt", default="", help="text the generated text continues (default: a new line)")
    p.add_argument("--temperature", type=float, default=0.8,
                   help="sampling temperature; 0 = always the likeliest character (default: 0.8)")
    p.add_argument("--seed", type=int, default=0, help="random seed; sample i uses seed + i (default: 0)")
    p.add_argument("--max-chars", type=int, default=300, help="characters after the prompt at most (default: 300)")
    p.add_argument("-n", "--samples", type=int, default=1, help="how many texts to write (default: 1)")
    add_threads_option(p)
