"""Tuning beam search on dev: grid-search the LM weight and word score, then store the chosen decoder (settings,
lexicon and LM text) inside the model bundle, so `transcribe` and `eval --tuned` decode with it by default. With a
character RNN LM instead (shallow fusion, speechrnn.fusion), the LM weight and the per-character bonus are searched,
and the LM's weights are stored in the bundle.

The log-probs of the dev set are computed once; each grid point is one beam-search pass over them. Settings are
chosen by dev WER only (ties go to the first grid point); the test set is never looked at here.
"""

import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from .bundle import load_bundle, load_model, pack_text, update_extra
from .data import collate, load_dataset
from .decode import BeamConfig, BeamDecoder, greedy_decode, prefer_lexicon_free
from .errors import UserError
from .fusion import CharLMScorer, FusionConfig, FusionDecoder, stored_fusion_decoder
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


def grid_search(tokenizer: Tokenizer, base: dict, grid: dict, refs, log_probs, lens, workers: int = 1,
                alternatives: list[list[int]] | None = None):
    """The setting of `grid` ({name: values}, the product is searched) with the lowest WER on (refs, log_probs),
    and every (setting, rates) tried, in grid order. `alternatives`: the open-vocabulary fallback's lexicon-free
    transcripts (token ids per utterance; None: greedy)."""
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
            chosen = nbests if margin == float("inf") else \
                prefer_lexicon_free(nbests, log_probs, lens, tokenizer, margin,
                                    None if alternatives is None else (lambda rows: [alternatives[b] for b in rows]))
            tried.append(({**setting, "oov_margin": margin}, error_rates(refs, [nbest[0].text for nbest in chosen])))
    best = min(tried, key=lambda item: item[1].wer)  # min keeps the first of equal WERs
    return best, tried


def store_decoding(bundle_path, beam: BeamConfig, dev_wer: float, fallback: dict | None = None) -> None:
    """Rewrite the bundle (atomically) with `beam`'s settings and the text of its lexicon and LM files (and the
    character-LM decoding whose transcripts its open-vocabulary fallback takes)."""
    decoding = {"beam_size": beam.beam_size, "lm_weight": beam.lm_weight, "word_score": beam.word_score,
                "sil_score": beam.sil_score, "oov_margin": beam.oov_margin, "beam_threshold": beam.beam_threshold,
                "token_min_logp": beam.token_min_logp, "dev_wer": dev_wer,
                "lexicon": pack_text(Path(beam.lexicon).read_text(encoding="utf-8")) if beam.lexicon else None,
                "lm": pack_text(Path(beam.lm).read_text(encoding="utf-8")) if beam.lm else None, "fallback": fallback}
    update_extra(bundle_path, decoding=decoding)


def tune_decoder(bundle: str | Path, dev: str | Path, lexicon: str | Path, lm: str | Path | None = None,
                 beam: int = 50, lm_weights: Sequence[float] = LM_WEIGHTS, word_scores: Sequence[float] = WORD_SCORES,
                 beam_threshold: float = BeamConfig.beam_threshold, token_min_logp: float | None = None,
                 oov_margins: Sequence[float] = (float("inf"),), workers: int = 2, threads: int = 0,
                 fallback: str | Path | None = None) -> str:
    """Grid-search the LM weight (with `lm`), word score and OOV margin of a beam search over `lexicon` on the
    `dev` manifest, print every grid point's rates to stderr, and store the best decoder in `bundle` (rewritten
    atomically). Returns the one-line summary. `threads`: torch CPU threads (0: torch's choice). `fallback`: a
    bundle holding a tuned character-LM decoding (tune --char-lm) whose transcripts the open-vocabulary fallback
    takes instead of the greedy ones (the OOV margins are searched with them)."""
    model, tokenizer, config, _ = load_model(bundle)
    fallback_decoding = None
    if fallback:
        fallback_decoding = load_bundle(fallback)["extra"].get("decoding") or {}
        if not fallback_decoding.get("char_lm"):
            raise UserError(f"tune --fallback {fallback}: that bundle holds no character-LM decoding; tune a copy with "
                            f"--char-lm first")
    if threads:
        torch.set_num_threads(threads)
    if lm and not lexicon:
        raise UserError("tune: --lm needs --lexicon here (a word LM scores lexicon words; for a char LM use eval)")
    refs, log_probs, lens = posteriors(model, tokenizer, config, dev)
    base = {"beam_size": beam, "lexicon": lexicon, "lm": lm, "beam_threshold": beam_threshold,
            "token_min_logp": token_min_logp}
    grid = {"lm_weight": list(lm_weights) if lm else [0.0], "word_score": list(word_scores),
            "oov_margin": list(oov_margins)}
    greedy = error_rates(refs, [tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)])
    alternatives = None
    if fallback_decoding:
        fused = stored_fusion_decoder(fallback_decoding, tokenizer).decode(log_probs, lens)
        alternatives = [nbest[0].tokens if nbest else [] for nbest in fused]
    (best, best_rates), tried = grid_search(tokenizer, base, grid, refs, log_probs, lens, workers, alternatives)
    print(f"dev {dev}: greedy WER {100 * greedy.wer:.2f} %", file=sys.stderr)
    for setting, rates in tried:
        mark = "  <- chosen" if setting == best else ""
        print("  " + ", ".join(f"{k} {v:g}" for k, v in setting.items()) + f": WER {100 * rates.wer:.2f} %, "
              f"CER {100 * rates.cer:.2f} %{mark}", file=sys.stderr)
    store_decoding(bundle, BeamConfig(**base, **best), best_rates.wer, fallback_decoding)
    return (f"{bundle}: decoding stored (beam {beam}, threshold {beam_threshold:g}, "
            + ", ".join(f"{k} {v:g}" for k, v in best.items())
            + f"; dev WER {100 * best_rates.wer:.2f} % vs greedy {100 * greedy.wer:.2f} %)")


FUSION_WEIGHTS = [0.75, 1.0, 1.25, 1.5]
CHAR_BONUSES = [1.0, 2.0, 3.0, 4.0]


def tune_fusion(bundle: str | Path, dev: str | Path, char_lm: str | Path, beam: int = FusionConfig.beam_size,
                lm_weights: Sequence[float] = FUSION_WEIGHTS, char_bonuses: Sequence[float] = CHAR_BONUSES,
                threads: int = 0) -> str:
    """Grid-search the LM weight and character bonus of lexicon-free beam search fused with the character LM bundle
    `char_lm` on the `dev` manifest, print every grid point to stderr, and store the best decoder, LM included, in
    `bundle` (rewritten atomically). Returns the one-line summary."""
    from .tasks.lm.inference import load_lm

    if threads:
        torch.set_num_threads(threads)
    model, tokenizer, config, _ = load_model(bundle)
    lm_model, alphabet, _ = load_lm(char_lm)
    scorer = CharLMScorer(lm_model, alphabet, tokenizer, str(char_lm))
    refs, log_probs, lens = posteriors(model, tokenizer, config, dev)
    greedy = error_rates(refs, [tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)])
    tried = []
    for weight in lm_weights:
        for bonus in char_bonuses:
            setting = FusionConfig(beam_size=beam, lm_weight=weight, char_bonus=bonus)
            nbests = FusionDecoder(tokenizer, scorer, setting).decode(log_probs, lens)
            tried.append((setting, error_rates(refs, [nbest[0].text if nbest else "" for nbest in nbests])))
            print(f"  lm_weight {weight:g}, char_bonus {bonus:g}: WER {100 * tried[-1][1].wer:.2f} %, CER "
                  f"{100 * tried[-1][1].cer:.2f} %", file=sys.stderr)
    best, rates = min(tried, key=lambda item: (item[1].wer, item[1].cer))
    lm_bundle = load_bundle(char_lm)
    update_extra(bundle, decoding={**asdict(best), "dev_wer": rates.wer, "char_lm": {
        "config": lm_bundle["config"], "alphabet": lm_bundle["tokenizer"]["alphabet"],
        "state_dict": {k: v.half() for k, v in lm_bundle["state_dict"].items()}, "dev_bpc": lm_bundle["extra"].get(
            "dev_bpc")}})
    return (f"{bundle}: character-LM decoding stored (beam {beam}, lm_weight {best.lm_weight:g}, char_bonus "
            f"{best.char_bonus:g}; dev WER {100 * rates.wer:.2f} %, CER {100 * rates.cer:.2f} % vs greedy "
            f"{100 * greedy.wer:.2f} %, {100 * greedy.cer:.2f} %)")
