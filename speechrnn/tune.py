"""Tuning beam search on dev: grid-search the LM weight and word score, then store the chosen decoder (settings,
lexicon and LM text) inside the model bundle, so `transcribe` and `eval --tuned` decode with it by default.

The log-probs of the dev set are computed once; each grid point is one beam-search pass over them. Settings are
chosen by dev WER only (ties go to the first grid point); the test set is never looked at here.
"""

import sys
import tempfile
from pathlib import Path

import torch
from tqdm import tqdm

from .bundle import load_bundle, save_bundle
from .data import collate, load_dataset
from .decode import BeamConfig, BeamDecoder, greedy_decode, prefer_lexicon_free
from .errors import UserError
from .metrics import error_rates
from .text import Tokenizer, normalize

LM_WEIGHTS = [0.0, 0.25, 0.5, 1.0, 1.5, 2.0]
WORD_SCORES = [-2.0, -1.0, 0.0, 1.0, 2.0]


@torch.no_grad()
def posteriors(model, tokenizer: Tokenizer, config, manifest, device="cpu", batch_size: int = 32):
    """(normalised refs, log-probs (B, T, V) padded, valid frames (B,)) for a manifest, in manifest order."""
    dataset = load_dataset(config, manifest, tokenizer)
    refs, rows = [], []
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        if not batch["ids"]:
            continue
        out, out_lens = model(batch["inputs"].to(device), batch["input_lens"].to(device))
        refs += [normalize(t, tokenizer.config) for t in batch["texts"]]
        rows += [out[i, :n].cpu() for i, n in enumerate(out_lens.tolist())]
    lens = torch.tensor([len(r) for r in rows])
    return refs, torch.nn.utils.rnn.pad_sequence(rows, batch_first=True).float().contiguous(), lens


def grid_search(tokenizer: Tokenizer, base: dict, grid: dict, refs, log_probs, lens, workers: int = 1):
    """The setting of `grid` ({name: values}, the product is searched) with the lowest WER on (refs, log_probs),
    and every (setting, rates) tried, in grid order."""
    grid = dict(grid)
    margins = grid.pop("oov_margin", [float("inf")])  # applied to each beam search's output: no decode of its own
    settings = [{}]
    for name, values in grid.items():
        settings = [{**s, name: v} for s in settings for v in values]
    tried = []
    for setting in tqdm(settings, desc="grid", unit="setting", disable=None, leave=False):
        with BeamDecoder(tokenizer, BeamConfig(**base, **setting), workers=workers) as decoder:
            nbests = decoder.decode(log_probs, lens)
        for margin in margins:
            chosen = nbests if margin == float("inf") else prefer_lexicon_free(nbests, log_probs, lens, tokenizer, margin)
            tried.append(({**setting, "oov_margin": margin}, error_rates(refs, [nbest[0].text for nbest in chosen])))
    best = min(tried, key=lambda item: item[1].wer)  # min keeps the first of equal WERs
    return best, tried


def store_decoding(bundle_path, beam: BeamConfig, dev_wer: float) -> None:
    """Rewrite the bundle (atomically) with `beam`'s settings and the text of its lexicon and LM files."""
    bundle = load_bundle(bundle_path)
    decoding = {"beam_size": beam.beam_size, "lm_weight": beam.lm_weight, "word_score": beam.word_score,
                "sil_score": beam.sil_score, "oov_margin": beam.oov_margin, "beam_threshold": beam.beam_threshold,
                "token_min_logp": beam.token_min_logp, "dev_wer": dev_wer,
                "lexicon": Path(beam.lexicon).read_text(encoding="utf-8") if beam.lexicon else None,
                "lm": Path(beam.lm).read_text(encoding="utf-8") if beam.lm else None}
    save_bundle(bundle_path, bundle["state_dict"], bundle["config"], bundle["tokenizer"],
                {**bundle.get("extra", {}), "decoding": decoding}, bundle["weights"])


def stored_decoder(extra: dict, tokenizer: Tokenizer, workers: int = 1, **overrides) -> BeamDecoder | None:
    """The BeamDecoder a bundle's tuned `decoding` describes (None when the bundle has none). Its lexicon and LM
    are written to a temporary folder that lives as long as the decoder."""
    decoding = extra.get("decoding")
    if not decoding:
        return None
    folder = tempfile.TemporaryDirectory(prefix="speechrnn-decoding-")
    files = {}
    for key in ("lexicon", "lm"):
        if decoding.get(key):
            files[key] = str(Path(folder.name) / {"lexicon": "lexicon.txt", "lm": "lm.arpa"}[key])
            Path(files[key]).write_text(decoding[key], encoding="utf-8")
    settings = {k: decoding[k] for k in ("beam_size", "lm_weight", "word_score", "sil_score")}
    for key in ("oov_margin", "beam_threshold", "token_min_logp"):  # bundles tuned before these were stored: defaults
        if key in decoding:
            settings[key] = decoding[key]
    decoder = BeamDecoder(tokenizer, BeamConfig(**{**settings, **files, **overrides}), workers=workers)
    decoder.files = folder  # removed with the decoder
    return decoder


def run(args) -> None:
    """`speechrnn tune`: grid search on dev, then store the best decoder in the bundle."""
    from .recognizer import load_model

    model, tokenizer, config, _ = load_model(args.bundle)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.lm and not args.lexicon:
        raise UserError("tune: --lm needs --lexicon here (a word LM scores lexicon words; for a char LM use eval)")
    refs, log_probs, lens = posteriors(model, tokenizer, config, args.dev)
    base = {"beam_size": args.beam, "lexicon": args.lexicon, "lm": args.lm, "beam_threshold": args.beam_threshold,
            "token_min_logp": args.token_min_logp}
    grid = {"lm_weight": args.lm_weights if args.lm else [0.0], "word_score": args.word_scores,
            "oov_margin": args.oov_margins}
    greedy = error_rates(refs, [tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)])
    (best, best_rates), tried = grid_search(tokenizer, base, grid, refs, log_probs, lens, args.workers)
    print(f"dev {args.dev}: greedy WER {100 * greedy.wer:.2f} %", file=sys.stderr)
    for setting, rates in tried:
        mark = "  <- chosen" if setting == best else ""
        print("  " + ", ".join(f"{k} {v:g}" for k, v in setting.items()) + f": WER {100 * rates.wer:.2f} %, "
              f"CER {100 * rates.cer:.2f} %{mark}", file=sys.stderr)
    store_decoding(args.bundle, BeamConfig(**base, **best), best_rates.wer)
    print(f"{args.bundle}: decoding stored (beam {args.beam}, threshold {args.beam_threshold:g}, "
          + ", ".join(f"{k} {v:g}" for k, v in best.items())
          + f"; dev WER {100 * best_rates.wer:.2f} % vs greedy {100 * greedy.wer:.2f} %)")


def add_parser(commands) -> None:
    p = commands.add_parser(
        "tune", help="grid-search LM weight and word score on dev; store the best decoder in the bundle",
        description="Beam search over the lexicon (and LM) for each grid point on the dev manifest; the setting "
                    "with the lowest dev WER is written into the bundle together with the lexicon and LM text, and "
                    "`transcribe` / `eval --tuned` then decode with it. Never tune on test.")
    p.add_argument("bundle", help="model bundle, rewritten in place (atomically)")
    p.add_argument("dev", help="dev manifest (JSONL)")
    p.add_argument("--lexicon", required=True, help="lexicon file (`speechrnn lm lexicon`)")
    p.add_argument("--lm", help="word ARPA LM (`speechrnn lm build`); without it only the word score is tuned")
    p.add_argument("--beam", type=int, default=50, help="beam size (50)")
    p.add_argument("--lm-weights", type=float, nargs="+", default=LM_WEIGHTS, metavar="W",
                   help=f"LM weights to try ({' '.join(f'{w:g}' for w in LM_WEIGHTS)})")
    p.add_argument("--word-scores", type=float, nargs="+", default=WORD_SCORES, metavar="S",
                   help=f"word scores to try ({' '.join(f'{s:g}' for s in WORD_SCORES)})")
    p.add_argument("--beam-threshold", type=float, default=BeamConfig.beam_threshold, metavar="T",
                   help=f"drop hypotheses this far below the best ({BeamConfig.beam_threshold:g}; pyctcdecode: 10)")
    p.add_argument("--token-min-logp", type=float, default=None, metavar="L",
                   help="per frame, try tokens below log-prob L only where needed (default: try all; pyctcdecode: "
                        "-5, several times faster on a peaky model; check dev WER)")
    p.add_argument("--oov-margins", type=float, nargs="+", default=[float("inf")], metavar="M",
                   help="open vocabulary: keep the lexicon-free transcript when its CTC log-likelihood beats the "
                        "lexicon hypothesis' by more than M; margins to try (default: inf = never)")
    p.add_argument("--workers", type=int, default=2, help="decoding processes (2)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads for the model (default: torch's)")
    p.set_defaults(run=run)
