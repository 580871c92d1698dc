"""`speechrnn eval | tune | calibrate`: score a bundle on a manifest; tune and store its beam search; calibrate and
store its word confidences."""

import sys
from pathlib import Path

from ..errors import UserError
from .common import (add_command, add_device_option, add_hotword_option, add_positionals, add_report_arguments,
                     add_threads_option, parse_hotwords, set_threads)

# The defaults of speechrnn.tune.tune_decoder, written out here so that building the parser needs no torch
# (tests/test_cli.py checks that they agree).
LM_WEIGHTS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0]
WORD_SCORES = [-2.0, -1.0, 0.0, 1.0, 2.0]
BEAM_THRESHOLD = 25.0  # decode.BeamConfig.beam_threshold
FUSION_BEAM = 16  # fusion.FusionConfig.beam_size
FUSION_WEIGHTS = [0.75, 1.0, 1.25, 1.5]  # tune.FUSION_WEIGHTS
CHAR_BONUSES = [1.0, 2.0, 3.0, 4.0]  # tune.CHAR_BONUSES


def beam_decoder(args, tokenizer, extra: dict):
    """The beam decoder `eval`'s options ask for (--tuned, --beam), or None for greedy decoding."""
    if args.tuned:
        from ..fusion import stored_decoder

        beam = stored_decoder(extra, tokenizer, workers=2, hotwords=parse_hotwords(args.hotword))
        if beam is None:
            raise UserError(f"{args.bundle}: the bundle has no tuned decoder; run `speechrnn tune` first")
        return beam
    if args.beam:
        from ..decode import BeamConfig, BeamDecoder

        return BeamDecoder(tokenizer, BeamConfig(beam_size=args.beam, lm=args.lm, lexicon=args.lexicon,
                                                 lm_weight=args.lm_weight, word_score=args.word_score,
                                                 hotwords=parse_hotwords(args.hotword)))
    if args.hotword:
        raise UserError("--hotword works with beam search: add --beam N --lexicon FILE, or --tuned")
    return None


def cmd_eval(args) -> None:
    """Writes NAME.per_utt.jsonl (ref, hyp, errors) and NAME.summary.json to --out and prints the summary line."""
    from ..bundle import load_model
    from ..data import load_dataset, make_loader, manifest_texts
    from ..device import select_device
    from ..metrics import write_report
    from ..tasks.ctc import evaluate

    device = select_device(args.device or "auto")
    model, tokenizer, config, extra = load_model(args.bundle, device)
    set_threads(args.threads)
    config.data.num_workers = 0
    loader = make_loader(load_dataset(config, args.manifest, tokenizer), config, False, 0)
    tokenizer.report_unknown(args.manifest)
    result = evaluate(model, loader, tokenizer, device, beam_decoder(args, tokenizer, extra))
    name = args.name or Path(args.manifest).stem
    rates = write_report(args.out, name, result["ids"], result["refs"], result["hyps"])
    missing = len(manifest_texts(args.manifest)) - len(result["ids"])
    print(f"{name}: {rates.summary()}" + (f" ({missing} unreadable utterance(s) not scored)" if missing else ""))
    if missing:
        sys.exit(1)


def cmd_tune(args) -> None:
    """Beam search over the lexicon (and LM) for each grid point on the dev manifest; the setting with the lowest dev
    WER is written into the bundle together with the lexicon and LM text, and `transcribe` / `eval --tuned` then
    decode with it. With --char-lm instead of --lexicon: lexicon-free beam search fused with a character RNN LM
    (`speechrnn lm train`), its LM weight and per-character bonus searched, the LM stored in the bundle. Never tune
    on test."""
    from ..tune import tune_decoder, tune_fusion

    if bool(args.lexicon) == bool(args.char_lm):
        raise UserError("tune: give --lexicon FILE (lexicon beam search, with an optional word --lm) or --char-lm "
                        "BUNDLE (lexicon-free, fused with a character LM), not both or neither")
    if args.char_lm:
        if args.lm or args.fallback:
            raise UserError("tune: --lm and --fallback go with --lexicon; with --char-lm leave them out")
        print(tune_fusion(args.bundle, args.dev, args.char_lm, beam=args.beam or FUSION_BEAM,
                          lm_weights=args.lm_weights or FUSION_WEIGHTS, char_bonuses=args.char_bonuses,
                          threads=args.threads))
        return
    print(tune_decoder(args.bundle, args.dev, args.lexicon, lm=args.lm, beam=args.beam or 50,
                       lm_weights=args.lm_weights or LM_WEIGHTS,
                       word_scores=args.word_scores, beam_threshold=args.beam_threshold,
                       token_min_logp=args.token_min_logp, oov_margins=args.oov_margins, workers=args.workers,
                       threads=args.threads, fallback=args.fallback))


def cmd_calibrate(args) -> None:
    """Transcribes the dev manifest with word timestamps (the bundle's tuned decoder, or greedy), fits a map from
    raw word confidence to the chance that the word is right (Platt scaling; right = aligned equal to a reference
    word) and writes it into the bundle, so that `transcribe`, `serve` and the Python API report calibrated
    confidences. Prints the dev expected calibration error before and after. Never calibrate on test."""
    from ..calibration import fit_calibration, manifest_words, store_calibration
    from ..pretrained import MODELS
    from ..recognizer import Recognizer

    if args.bundle in MODELS and not Path(args.bundle).exists():
        raise UserError(f"{args.bundle}: a shipped model's name, and calibrate rewrites the bundle file it is given; "
                        f"copy {MODELS[args.bundle].path} and calibrate the copy")
    set_threads(args.threads)
    recognizer = Recognizer.load(args.bundle, decoding=args.decoding)
    if recognizer.config.modality != "audio":
        raise UserError(f"{args.bundle}: a handwriting model; calibrate takes a speech recognizer and an audio "
                        "manifest")
    confidences, outcomes, unreadable = manifest_words(recognizer, args.dev)
    calibration = {**fit_calibration(confidences, outcomes, args.bins), "decoding": args.decoding}
    store_calibration(args.bundle, calibration)
    print(f"{args.bundle}: confidence calibration stored (platt a {calibration['a']:.4f}, b {calibration['b']:.4f}); "
          f"dev {calibration['words']} words, accuracy {100 * sum(outcomes) / len(outcomes):.2f} %, ECE "
          f"{calibration['dev_ece_before']:.4f} -> {calibration['dev_ece_after']:.4f}"
          + (f" ({unreadable} unreadable utterance(s) skipped)" if unreadable else ""))


def add_eval_parser(commands) -> None:
    p = add_command(commands, "eval", cmd_eval, "greedy-decode a manifest and score WER/CER")
    add_positionals(p, bundle="model bundle (exp/.../model.pt)",
                    manifest="JSONL manifest with audio_filepath, duration, text")
    add_report_arguments(p, "the manifest's file name")
    add_device_option(p)
    add_threads_option(p)
    p.add_argument("--beam", type=int, default=0, metavar="N",
                   help="beam search with N hypotheses (flashlight-text) instead of greedy decoding")
    p.add_argument("--lexicon",
                   help="with --beam: lexicon file (WORD<TAB>c h a r s |), words outside it are never output")
    p.add_argument("--lm", help="with --beam: ARPA n-gram LM (`speechrnn lm build`); a word LM needs --lexicon, "
                                "a char LM (--unit char) must go without")
    p.add_argument("--lm-weight", type=float, default=0.5, help="with --lm: weight of the LM's log10 scores (0.5)")
    p.add_argument("--word-score", type=float, default=0.0, help="with --lexicon: score added per word (0)")
    p.add_argument("--tuned", action="store_true", help="decode with the beam search stored by `speechrnn tune`")
    add_hotword_option(p)


def add_tune_parser(commands) -> None:
    p = add_command(commands, "tune", cmd_tune,
                    "grid-search LM weight and word score on dev; store the best decoder in the bundle")
    add_positionals(p, bundle="model bundle, rewritten in place (atomically)", dev="dev manifest (JSONL)")
    p.add_argument("--lexicon", help="lexicon file (`speechrnn lm lexicon`, `lm wordlist`)")
    p.add_argument("--lm", help="word ARPA LM (`speechrnn lm build`); without it only the word score is tuned")
    p.add_argument("--char-lm", metavar="BUNDLE",
                   help="instead of --lexicon: a character LM bundle (`speechrnn lm train`) fused into lexicon-free "
                        "beam search; the LM weight and --char-bonuses are tuned")
    p.add_argument("--beam", type=int, default=0, help=f"beam size (50 with --lexicon, {FUSION_BEAM} with --char-lm)")
    p.add_argument("--lm-weights", type=float, nargs="+", default=None, metavar="W",
                   help=f"LM weights to try ({' '.join(f'{w:g}' for w in LM_WEIGHTS)}; with --char-lm "
                        f"{' '.join(f'{w:g}' for w in FUSION_WEIGHTS)})")
    p.add_argument("--char-bonuses", type=float, nargs="+", default=CHAR_BONUSES, metavar="B",
                   help=f"with --char-lm: bonuses per emitted character to try "
                        f"({' '.join(f'{b:g}' for b in CHAR_BONUSES)})")
    p.add_argument("--word-scores", type=float, nargs="+", default=WORD_SCORES, metavar="S",
                   help=f"word scores to try ({' '.join(f'{s:g}' for s in WORD_SCORES)})")
    p.add_argument("--beam-threshold", type=float, default=BEAM_THRESHOLD, metavar="T",
                   help=f"drop hypotheses this far below the best ({BEAM_THRESHOLD:g}; pyctcdecode: 10)")
    p.add_argument("--token-min-logp", type=float, default=None, metavar="L",
                   help="per frame, try tokens below log-prob L only where needed (default: try all; pyctcdecode: "
                        "-5, several times faster on a peaky model; check dev WER)")
    p.add_argument("--oov-margins", type=float, nargs="+", default=[float("inf")], metavar="M",
                   help="open vocabulary: keep the lexicon-free transcript when its CTC log-likelihood beats the "
                        "lexicon hypothesis' by more than M; margins to try (default: inf = never)")
    p.add_argument("--fallback", metavar="BUNDLE",
                   help="with --lexicon and --oov-margins: a bundle tuned with --char-lm, whose character-LM beam "
                        "search gives the open-vocabulary fallback's transcripts instead of greedy decoding")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (2)")
    add_threads_option(p, meaning="for the model; default: torch's")


def add_calibrate_parser(commands) -> None:
    p = add_command(commands, "calibrate", cmd_calibrate,
                    "fit word-confidence calibration on dev; store it in the bundle")
    add_positionals(p, bundle="model bundle, rewritten in place (atomically)", dev="dev manifest (JSONL)")
    p.add_argument("--decoding", choices=("tuned", "greedy"), default="tuned",
                   help="the decoder whose words are calibrated: the bundle's tuned beam search (default; greedy "
                        "when it has none) or greedy; calibrate with the one you transcribe with")
    p.add_argument("--bins", type=int, default=10, help="confidence bins of the reported ECE (10)")
    add_threads_option(p, meaning="for the model; default: torch's")


def add_parsers(commands) -> None:
    add_eval_parser(commands)
    add_tune_parser(commands)
    add_calibrate_parser(commands)
