"""Decoding CTC log-probs to text: greedy best path, and beam search with flashlight-text.

Beam search uses torchaudio's `ctc_decoder` (flashlight-text's LexiconDecoder / LexiconFreeDecoder, KenLM
for the n-gram LM), driven with our tokenizer's symbols:

* flashlight needs a word-boundary ("silence") token. Ours is the space ' ', a normal token of char
  tokenizers; flashlight sees it under the name "|" (`lm.SPACE`, which is also what a char ARPA model
  from `speechrnn.lm` uses for the space). The CTC blank keeps its name "<blank>". Token ids are ours.
* lexicon-free (config.lexicon None): any token sequence; an optional LM must be a token-level (char) LM,
  as flashlight scores every emitted token with it (`speechrnn lm build --unit char`). A word LM is refused.
* lexicon (config.lexicon a file, see `decoder_files.write_lexicon`): only words of the lexicon, spelled `c h a r s |`;
  an optional word LM scores each word. A lexicon word missing from the LM gets the LM's <unk> score.
  Our models never emit a space after the last word, so one extra frame holding only "|" is appended to
  each utterance in this mode: it lets the last word end (log-prob 0, so scores are unchanged).

LM scores are KenLM's log10 probabilities (acoustic scores are natural logs); lm_weight multiplies them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .bundle import unpack_text
from .decoder_files import check_lexicon, check_lm, flashlight_tokens, hotword_lexicon, lm_load_error
from .errors import UserError
from .lm import SPACE, UNK
from .text import BLANK, Tokenizer

TOKEN_PENALTY = 1000.0  # added (in nats) to the log-probs BeamConfig.token_min_logp prunes


def greedy_decode(log_probs: torch.Tensor, lens: torch.Tensor) -> list[list[int]]:
    """Best path: argmax per frame, merge repeats, drop blanks (id 0). log_probs (B, T, V) -> token ids per item."""
    best = log_probs.argmax(dim=-1).cpu()  # (B, T)
    results = []
    for row, length in zip(best, lens.tolist()):
        path = torch.unique_consecutive(row[:length])
        results.append([int(t) for t in path if t != 0])
    return results


def prefer_lexicon_free(nbests: list[list["Hypothesis"]], log_probs: torch.Tensor, lens: torch.Tensor | None,
                        tokenizer: Tokenizer, margin: float,
                        read_lexicon_free: Callable[[list[int]], list[list[int]]] | None = None
                        ) -> list[list["Hypothesis"]]:
    """Open vocabulary on top of lexicon beam search, word by word. Where the greedy transcript reads the lexicon
    hypothesis' words, it stands. For the other utterances, `read_lexicon_free(rows)` gives their lexicon-free
    transcripts (token ids, e.g. a character-LM beam search's; None: the greedy ones). Where one has as many words
    as the best lexicon hypothesis, each word it reads differently replaces the lexicon's word when that swap alone
    raises the transcript's CTC log-likelihood by more than `margin` (natural log): one unknown name in a line
    changes that word only. Otherwise the two whole transcripts are compared the same way. The changed transcript
    goes first. log_probs (B, T, V), lens (B,) as given to the decoder; returns new lists (the inputs are not
    changed)."""
    batch, frames, _ = log_probs.shape
    lens = torch.full((batch,), frames) if lens is None else torch.as_tensor(lens).reshape(-1).cpu()
    log_probs = log_probs.detach().float().cpu()
    greedy = greedy_decode(log_probs, lens)
    lexicon_words = [nbest[0].text.split() if nbest else [] for nbest in nbests]
    todo = [b for b, (ids, words) in enumerate(zip(greedy, lexicon_words)) if tokenizer.decode(ids).split() != words]
    lexicon_free = dict(zip(todo, read_lexicon_free(todo) if read_lexicon_free and todo else [greedy[b] for b in todo]))
    chosen = [list(nbest) for nbest in nbests]
    for b, free_ids in lexicon_free.items():
        words, free_words = lexicon_words[b], tokenizer.decode(free_ids).split()
        if not free_words or free_words == words:
            continue
        if len(free_words) == len(words):  # candidate i: the lexicon transcript with word i swapped
            swaps = [i for i, (w, f) in enumerate(zip(words, free_words)) if w != f]
            candidates = [tokenizer.encode(" ".join(words[:i] + [free_words[i]] + words[i + 1:])) for i in swaps]
        else:
            swaps, candidates = None, [free_ids]
        scores = ctc_log_likelihoods(log_probs[b, :lens[b]], [tokenizer.encode(" ".join(words))] + candidates)
        gains = (scores[1:] - scores[0]).tolist()
        if swaps is None:
            new_words = free_words if gains[0] > margin else words
        else:
            new_words = list(words)
            for i, gain in zip(swaps, gains):
                if gain > margin:
                    new_words[i] = free_words[i]
        if new_words != words:
            text = " ".join(new_words)
            chosen[b].insert(0, Hypothesis(text=text, score=float("nan"), tokens=tokenizer.encode(text), timesteps=[],
                                           words=new_words))
    return chosen


def ctc_log_likelihoods(log_probs: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """log p(target | log_probs) under CTC for each target (token ids) of one utterance's log_probs (T, V): (N,)."""
    count, frames = len(targets), log_probs.shape[0]
    flat = torch.tensor([t for target in targets for t in target], dtype=torch.long)
    loss = torch.nn.functional.ctc_loss(log_probs.unsqueeze(1).expand(frames, count, -1),  # (T, N, V)
                                        flat, torch.full((count,), frames), torch.tensor([len(t) for t in targets]),
                                        reduction="none", zero_infinity=False)
    return -loss


# ------------------------------------------------------------------------------------------------- beam search


@dataclass
class BeamConfig:
    """Beam search settings; the names are those of torchaudio.models.decoder.ctc_decoder."""

    beam_size: int = 50  # hypotheses kept after each frame
    beam_size_token: int | None = None  # tokens tried per frame (the best ones); None: all
    beam_threshold: float = 25.0  # drop hypotheses scoring this much below the best one (pyctcdecode: 10)
    token_min_logp: float | None = None  # per frame, a token below this log-prob (other than the frame's best) is
    # taken only where no hypothesis within beam_threshold can do without one; None: no such pruning. As
    # pyctcdecode's token_min_logp (its default: -5), which never takes them (ours would find no word end at times)
    lm: str | None = None  # ARPA (or KenLM binary) file; None: no LM
    lm_weight: float = 0.5  # multiplies the LM's log10 probabilities
    word_score: float = 0.0  # added per word (lexicon mode only)
    unk_score: float = float("-inf")  # added per out-of-lexicon word (lexicon mode); -inf: none allowed
    sil_score: float = 0.0  # added per word-boundary token ("|", our space)
    lexicon: str | None = None  # lexicon file (write_lexicon); None: lexicon-free decoding
    nbest: int = 1  # hypotheses returned per utterance
    log_add: bool = False  # merge equal hypotheses by log-add (True) or max (False)
    hotwords: dict[str, float] = field(default_factory=dict)  # word -> score added per occurrence (needs a lexicon;
    # words missing from it are added)
    # Open vocabulary with a lexicon: when the lexicon-free best path's transcript is more likely under the CTC model
    # than the lexicon hypothesis by more than this (natural log), keep the former (a word missing from the lexicon);
    # inf: never. Chosen on dev by `speechrnn tune --oov-margins`.
    oov_margin: float = float("inf")


@dataclass
class Hypothesis:
    text: str  # normalised text, words separated by single spaces
    score: float  # total: acoustic + lm_weight * LM + word/sil scores
    tokens: list[int]  # our token ids, repeats merged and blanks dropped (spaces kept)
    timesteps: list[int]  # the frame where each of `tokens` is first emitted
    words: list[str] = field(default_factory=list)  # the words of `text`
    am_score: float = 0.0  # acoustic part of `score` (sum of log-probs along the path)
    lm_score: float = 0.0  # LM part of `score` before lm_weight (log10)






class BeamDecoder:
    """CTC beam search over log-probs with our tokenizer: lexicon-free or lexicon-constrained, optional LM.

    `open_vocabulary`: a lexicon-free decoder (decode(log_probs, lens) -> n-best lists, e.g. fusion.FusionDecoder)
    whose transcripts replace the greedy ones in the open-vocabulary fallback (config.oov_margin).

    workers > 1 decodes the utterances of a batch in that many processes (flashlight holds the GIL, so
    threads do not run in parallel); results come back in input order and equal the serial ones. The pool
    is started on first use and kept: call close() (or use `with`) when done.
    """

    def __init__(self, tokenizer: Tokenizer, config: BeamConfig | None = None, workers: int = 1,
                 open_vocabulary=None):
        self.tokenizer = tokenizer
        self.open_vocabulary = open_vocabulary
        self.config = config = config or BeamConfig()
        self.workers = max(1, int(workers))
        self.names = flashlight_tokens(tokenizer)
        self.space_id = tokenizer.index.get(" ", len(tokenizer))  # "|": ours, or the appended column
        self.padded = " " not in tokenizer.index
        if config.nbest < 1 or config.beam_size < 1:
            raise UserError(f"nbest and beam_size must be at least 1 (got {config.nbest} and {config.beam_size})")
        if config.lexicon is not None:
            check_lexicon(config.lexicon, self.names)
        if config.lm is not None:
            check_lm(config.lm, config.lexicon is not None, self.names)
        self._hotword_files = None
        if config.hotwords:
            lexicon, hotwords, self._hotword_files = hotword_lexicon(config.lexicon, config.hotwords, tokenizer)
            config = replace(config, lexicon=lexicon, hotwords=hotwords)
        self._settings = (self.names, asdict(config))
        self._decoder = make_decoder(*self._settings)  # loads the LM: bad files fail here, not in a worker
        self._pool: Executor | None = None

    def decode(self, log_probs: torch.Tensor, lens: torch.Tensor | None = None) -> list[list[Hypothesis]]:
        """log_probs (B, T, V) CTC log-probabilities (V = len(tokenizer)), lens (B,) valid frames (None: all T).
        Returns, per utterance, up to config.nbest hypotheses, best first."""
        emissions = self._emissions(log_probs, lens)
        if self.workers > 1 and len(emissions) > 1:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(self.workers, mp_context=_mp_context(), initializer=_init_worker,
                                                 initargs=self._settings)
            chunk = max(1, len(emissions) // (4 * self.workers))
            raw = list(self._pool.map(_decode_in_worker, emissions, chunksize=chunk))
        else:
            raw = [run_decoder(self._decoder, e) for e in emissions]
        nbests = [[self._hypothesis(r, len(e) - self._extra_frames, e) for r in results]
                  for e, results in zip(emissions, raw)]
        if self.config.lexicon is not None and self.config.oov_margin != float("inf"):
            nbests = prefer_lexicon_free(nbests, log_probs, lens, self.tokenizer, self.config.oov_margin,
                                         self.lexicon_free(log_probs, lens))
        return nbests

    def lexicon_free(self, log_probs: torch.Tensor, lens: torch.Tensor | None):
        """prefer_lexicon_free's reader: rows -> the open_vocabulary decoder's best token ids for those utterances
        (only they are decoded); None without an open_vocabulary decoder (greedy is used)."""
        if self.open_vocabulary is None:
            return None
        batch, frames, _ = log_probs.shape
        lens = torch.full((batch,), frames) if lens is None else torch.as_tensor(lens).reshape(-1).cpu()

        def read(rows: list[int]) -> list[list[int]]:
            index = torch.tensor(rows)
            longest = int(lens[index].max())
            return [nbest[0].tokens if nbest else []
                    for nbest in self.open_vocabulary.decode(log_probs[index, :longest], lens[index])]
        return read

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> "BeamDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)

    @property
    def _extra_frames(self) -> int:
        return 1 if self.config.lexicon is not None else 0

    def _emissions(self, log_probs: torch.Tensor, lens: torch.Tensor | None) -> list[np.ndarray]:
        """Validate the batch; one contiguous float32 (T_i [+1], V [+1]) array per utterance."""
        if not isinstance(log_probs, torch.Tensor) or log_probs.dim() != 3:
            shape = tuple(log_probs.shape) if isinstance(log_probs, torch.Tensor) else type(log_probs).__name__
            raise UserError(f"beam search needs log-probs shaped (batch, frames, vocabulary), got {shape}")
        batch, frames, vocab = log_probs.shape
        if batch == 0 or frames == 0:
            raise UserError(f"beam search got empty log-probs (batch {batch}, frames {frames}); nothing to decode")
        if vocab != len(self.tokenizer):
            raise UserError(f"the log-probs have {vocab} classes but the tokenizer has {len(self.tokenizer)} symbols; "
                            f"decode with the tokenizer of the model that produced them")
        lens_list = [frames] * batch if lens is None else [int(n) for n in torch.as_tensor(lens).reshape(-1)]
        if len(lens_list) != batch or any(not 0 <= n <= frames for n in lens_list):
            raise UserError(f"lens must hold {batch} frame counts between 0 and {frames}, got {lens_list}")
        data = log_probs.detach().to("cpu", torch.float32)
        if self.config.token_min_logp is not None:  # flashlight drops these candidates at once (beam_threshold)
            keep = (data >= self.config.token_min_logp) | (data == data.amax(dim=-1, keepdim=True))
            data = torch.where(keep, data, data - TOKEN_PENALTY)
        if self.padded:  # a "|" column the model never emits
            data = torch.cat([data, data.new_full((batch, frames, 1), float("-inf"))], dim=-1)
        arrays = []
        for row, n in zip(data, lens_list):
            rows = row[:n]
            if self._extra_frames:  # one frame that is surely "|": the last word can end
                final = rows.new_full((1, rows.shape[1]), float("-inf"))
                final[0, self.space_id] = 0.0
                rows = torch.cat([rows, final])
            arrays.append(np.ascontiguousarray(rows.numpy()))
        return arrays

    def _hypothesis(self, raw: tuple, frames: int, emissions: np.ndarray) -> Hypothesis:
        score, am_score, lm_score, path, words = raw
        if self.config.token_min_logp is not None:  # take back the TOKEN_PENALTY of each pruned token on the path
            steps = np.asarray(path[1:frames + 1], dtype=np.int64)
            values = emissions[np.arange(len(steps)), steps]
            pruned = int(((values < self.config.token_min_logp) & (values < emissions[:len(steps)].max(axis=1))).sum())
            score, am_score = score + pruned * TOKEN_PENALTY, am_score + pruned * TOKEN_PENALTY
        tokens, timesteps = [], []
        previous = None
        for t, token in enumerate(path[1:frames + 1]):  # path[0] is the start state, path[t + 1] frame t
            if token != previous and token != 0:
                tokens.append(token)
                timesteps.append(t)
            previous = token
        if self.config.lexicon is None:
            text = self.tokenizer.decode(tokens)
            words = text.split()
        else:
            text = " ".join(words)
        return Hypothesis(text=text, score=score, tokens=tokens, timesteps=timesteps, words=list(words),
                          am_score=am_score, lm_score=lm_score)




def _hotword_lm(config: dict):
    """A flashlight LM that adds each hotword's boost to the score of the word LM (or of no LM) in lexicon mode.
    The decoder multiplies LM scores by lm_weight, so the boost is divided by it here. Returns (lm, lm_weight)."""
    from torchaudio.models.decoder import CTCDecoderLM
    from torchaudio.models.decoder._ctc_decoder import _create_word_dict, _load_words

    word_dict = _create_word_dict(_load_words(config["lexicon"]))  # the word ids ctc_decoder will use
    base = _kenlm(config["lm"], word_dict) if config["lm"] and config["lm_weight"] else None
    weight = config["lm_weight"] if base is not None else 1.0
    boosts = {word_dict.get_index(w): b / weight for w, b in config["hotwords"].items()}

    class HotwordLM(CTCDecoderLM):
        def __init__(self):
            super().__init__()
            from torchaudio.models.decoder import CTCDecoderLMState
            self.root = CTCDecoderLMState()

        def start(self, start_with_nothing):
            return base.start(start_with_nothing) if base is not None else self.root

        def score(self, state, word):
            state, score = base.score(state, word) if base is not None else (state, 0.0)
            return state, score + boosts.get(word, 0.0)

        def finish(self, state):
            return base.finish(state) if base is not None else (state, 0.0)

    return HotwordLM(), weight


def make_decoder(names: list[str], config: dict):
    """torchaudio's flashlight CTCDecoder for flashlight token names and BeamConfig fields (as a dict)."""
    from torchaudio.models.decoder import ctc_decoder

    try:
        with _quiet_stderr():  # KenLM draws a progress bar on stderr while it reads an ARPA file
            lm = config["lm"]
            if config["hotwords"]:
                lm, lm_weight = _hotword_lm(config)
                config = {**config, "lm_weight": lm_weight}
            elif lm is not None and config["lexicon"] is None:
                # The token LM must see token i as LM word i. Given a path, ctc_decoder maps the LM through a
                # word dictionary of the tokens in hash order (not token order), so it scores the wrong tokens
                # (fairseq fixed the same bug, facebookresearch/fairseq#5109). Load it here, in token order.
                lm = _kenlm(lm, names)
            return ctc_decoder(
                lexicon=config["lexicon"], tokens=names, lm=lm, nbest=config["nbest"],
                beam_size=config["beam_size"], beam_size_token=config["beam_size_token"],
                beam_threshold=config["beam_threshold"], lm_weight=config["lm_weight"],
                word_score=config["word_score"], unk_score=config["unk_score"], sil_score=config["sil_score"],
                log_add=config["log_add"], blank_token=BLANK, sil_token=SPACE, unk_word=UNK,
            )
    except (RuntimeError, ValueError) as err:  # KenLM's and the lexicon loader's errors
        message = " ".join(str(err).split())
        if config["lm"]:
            raise lm_load_error(Path(config["lm"]), message) from None
        raise UserError(f"{config['lexicon']}: the lexicon could not be loaded: {message}") from None






def _kenlm(path: str, names):
    """flashlight's KenLM with user index i = names[i] (names: a list, or a flashlight Dictionary)."""
    from flashlight.lib.text.dictionary import Dictionary

    try:
        from flashlight.lib.text.decoder.kenlm import KenLM
    except ImportError:
        from flashlight.lib.text.decoder import KenLM
    return KenLM(path, names if isinstance(names, Dictionary) else Dictionary(names))


@contextlib.contextmanager
def _quiet_stderr():
    """Send file descriptor 2 to /dev/null for the duration (C++ code writes there, not to sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_decoder(decoder, emissions: np.ndarray) -> list[tuple]:
    """Decode one utterance: [(score, am score, lm score, per-frame token path, words)] best first.

    The path has len(emissions) + 2 entries: the start state, one token per frame, the end state."""
    results = decoder.decoder.decode(emissions.ctypes.data, emissions.shape[0], emissions.shape[1])
    return [(r.score, r.emittingModelScore, r.lmScore, list(r.tokens),
             [decoder.word_dict.get_entry(w) for w in r.words if w >= 0] if decoder.word_dict is not None else [])
            for r in results[:decoder.nbest]]


_worker_decoder = None


def _init_worker(names: list[str], config: dict) -> None:
    global _worker_decoder
    _worker_decoder = make_decoder(names, config)


def _decode_in_worker(emissions: np.ndarray) -> list[tuple]:
    return run_decoder(_worker_decoder, emissions)


def _mp_context():
    import multiprocessing

    # fork starts a worker in milliseconds (spawn re-imports torch: seconds); the workers call no torch code
    return multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")


# ------------------------------------------------------------------------------------------------- stored decoder


def stored_decoder(extra: dict, tokenizer: Tokenizer, workers: int = 1, **overrides) -> BeamDecoder | None:
    """The BeamDecoder a bundle's tuned `decoding` (extra["decoding"], written by `speechrnn tune --lexicon`)
    describes; None when the bundle has none (fusion.stored_decoder also reads a character-LM decoder). Its lexicon
    and LM are written to a temporary folder that lives as long as the decoder. `overrides`: BeamConfig fields that
    replace the stored ones."""
    decoding = extra.get("decoding")
    if not decoding:
        return None
    folder = tempfile.TemporaryDirectory(prefix="speechrnn-decoding-")
    files = {}
    for key in ("lexicon", "lm"):
        if decoding.get(key) is not None:
            files[key] = str(Path(folder.name) / {"lexicon": "lexicon.txt", "lm": "lm.arpa"}[key])
            Path(files[key]).write_text(unpack_text(decoding[key]), encoding="utf-8")
    settings = {k: decoding[k] for k in ("beam_size", "lm_weight", "word_score", "sil_score")}
    for key in ("oov_margin", "beam_threshold", "token_min_logp"):  # bundles tuned before these were stored: defaults
        if key in decoding:
            settings[key] = decoding[key]
    decoder = BeamDecoder(tokenizer, BeamConfig(**{**settings, **files, **overrides}), workers=workers)
    decoder.files = folder  # removed with the decoder
    return decoder
