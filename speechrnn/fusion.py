"""Shallow fusion: CTC prefix beam search with a character language model, lexicon-free.

Each hypothesis is a prefix of the recogniser's tokens; its score is

    log p_ctc(prefix | frames)  +  lm_weight * log p_lm(prefix)  +  char_bonus * len(prefix)

and, once the frames are done, lm_weight * log p_lm(end of line | prefix). p_ctc sums over the alignments ending in
a blank and in the last token (Hannun et al. 2014, "First-pass large vocabulary continuous speech recognition using
bi-directional recurrent DNNs", prefix beam search); the LM terms are natural logs.

The LM is asked only for the prefixes that are kept in the beam, once each: a prefix's next-character distribution
(and its recurrent state) is cached, and all the prefixes new at a frame are advanced in one batched step. Frames
where no token but the blank reaches `token_min_logp` only move probability mass (no LM call). Two scorers share the
interface: CharLMScorer (a `speechrnn lm train` bundle) and NgramScorer (a character ARPA model of `speechrnn lm
build --unit char`), so the two are timed on the same search (benchmarks/bench_fusion.py).

A recogniser whose characters have no lower-case letters (AN4's upper case) is read by the LM in lower case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .decode import Hypothesis
from .decode import stored_decoder as stored_flashlight_decoder
from .errors import UserError
from .text import Tokenizer

NEG_INF = -math.inf
LN10 = math.log(10)


@dataclass
class FusionConfig:
    beam_size: int = 16  # prefixes kept after each frame
    lm_weight: float = 0.5  # multiplies the LM's natural-log probabilities
    char_bonus: float = 0.0  # added per emitted token (balances the LM's cost of each character)
    token_min_logp: float = -8.0  # a token is tried at a frame only from this log-prob on ...
    token_beam: int = 8  # ... and only the best this many
    beam_threshold: float = 25.0  # prefixes scoring this much below the best are dropped
    nbest: int = 1

    @property
    def lexicon(self) -> None:
        """No lexicon (decoders' configs are asked for one)."""
        return None


def lm_characters(tokenizer: Tokenizer) -> list[str]:
    """The recogniser's token characters as the LM reads them ("" for the blank): lower-cased for a recogniser
    without lower-case letters."""
    chars = ["" if i == 0 else symbol for i, symbol in enumerate(tokenizer.symbols)]
    return chars if any(c.islower() for c in chars) else [c.lower() for c in chars]


def _lse(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b == NEG_INF:
        return a
    return a + math.log1p(math.exp(b - a))


class CharLMScorer:
    """Next-token log-probs (over the recogniser's tokens) under a character RNN LM, cached per (utterance, prefix).
    An LSTM stack steps through a fused matrix form (the embedding's input projection looked up from a table, one
    addmm per layer); other cells step through the model itself."""

    def __init__(self, model, alphabet, tokenizer: Tokenizer, where: str = "the language model"):
        chars = lm_characters(tokenizer)
        missing = [repr(tokenizer.symbols[i]) for i, c in enumerate(chars) if i and c not in alphabet.index]
        if missing:
            raise UserError(f"{where}: its alphabet lacks the recogniser's characters {' '.join(missing)}; train "
                            f"the LM on text that has them")
        self.model = model.eval()
        self.token_to_lm = torch.tensor([0] + [alphabet.index[c] for c in chars[1:]])  # (V_rec,)
        self.lstm = self._lstm_weights(model)
        self.cache: dict[tuple, tuple] = {}
        self.root = None

    @staticmethod
    @torch.no_grad()
    def _lstm_weights(model):
        """[(input table, W_ih^T, W_hh^T, bias)] per layer: the first layer's embedding times W_ih^T plus bias as a
        (V_lm, 4H) table (None for the others); None unless the layers are plain one-layer nn.LSTMs."""
        if not all(type(layer) is torch.nn.LSTM and layer.num_layers == 1 for layer in model.layers):
            return None
        weights = []
        for index, layer in enumerate(model.layers):
            w_ih, bias = layer.weight_ih_l0.t(), layer.bias_ih_l0 + layer.bias_hh_l0
            first = model.embedding.weight @ w_ih + bias if index == 0 else None  # (V_lm, 4H)
            weights.append((first, w_ih.contiguous(), layer.weight_hh_l0.t().contiguous(), bias))
        return weights

    @torch.no_grad()
    def _step(self, ids: torch.Tensor, state) -> tuple:
        """LM ids (N,) and the states before them -> (states after, (N, V_rec) token log-probs, (N,) line-end ones)."""
        if self.lstm is None:
            logits, state = self.model(ids[:, None], state)  # (N, 1) -> (N, 1, V_lm)
            logits = logits[:, 0]
        else:
            batch = len(ids)
            state = state or [(torch.zeros(1, batch, w[2].shape[0]), torch.zeros(1, batch, w[2].shape[0]))
                              for w in self.lstm]
            new_state, x = [], None
            for (table, w_ih, w_hh, bias), (h, c) in zip(self.lstm, state):
                gates = (table[ids] if x is None else torch.addmm(bias, x, w_ih)).addmm(h[0], w_hh)  # (N, 4H)
                i, f, g, o = gates.chunk(4, dim=1)
                c = torch.sigmoid(f) * c[0] + torch.sigmoid(i) * torch.tanh(g)  # (N, H)
                x = torch.sigmoid(o) * torch.tanh(c)
                new_state.append((x[None], c[None]))
            logits, state = self.model.output(x), new_state  # (N, V_lm)
        logp = torch.log_softmax(logits.float(), dim=-1)  # (N, V_lm)
        return state, logp[:, self.token_to_lm].numpy(), logp[:, 0].numpy()

    def reset(self) -> None:
        """Forget the cached prefixes; the LM states live in one growing buffer per state tensor, (1, rows, H)."""
        state, token_logp, end_logp = self._step(torch.zeros(1, dtype=torch.long), None)
        self.layout = [len(layer) if isinstance(layer, tuple) else 0 for layer in state]  # 0: a bare tensor
        self.buffers = [t.new_empty(1, 1024, t.shape[2]) for t in _flat(state)]
        self.rows = 0
        self._store(state)
        self.root = (0, token_logp[0], float(end_logp[0]))
        self.cache = {}

    def _store(self, state) -> int:
        """Append a batch of states to the buffers; returns the row of the first."""
        flat = _flat(state)
        count, first = flat[0].shape[1], self.rows
        if first + count > self.buffers[0].shape[1]:
            size = 2 * (first + count)
            self.buffers = [torch.cat([b[:, :first], b.new_empty(1, size - first, b.shape[2])], 1)
                            for b in self.buffers]
        for buffer, tensor in zip(self.buffers, flat):
            buffer[:, first:first + count] = tensor
        self.rows += count
        return first

    def _entry(self, key: tuple) -> tuple:
        return self.cache[key] if key[1] else self.root

    def advance(self, keys) -> None:
        """Compute the distributions of the (utterance, prefix) keys not cached yet (their parents are), in one
        batch."""
        todo = [key for key in dict.fromkeys(keys) if key[1] and key not in self.cache]
        if not todo:
            return
        parents = torch.tensor([self._entry((utt, prefix[:-1]))[0] for utt, prefix in todo])
        state = _nested([buffer[:, parents] for buffer in self.buffers], self.layout)  # each (1, N, H)
        state, token_logp, end_logp = self._step(self.token_to_lm[[prefix[-1] for _, prefix in todo]], state)
        first = self._store(state)
        for row, key in enumerate(todo):
            self.cache[key] = (first + row, token_logp[row], float(end_logp[row]))

    def next_logp(self, key: tuple) -> np.ndarray:
        return self._entry(key)[1]

    def end_logp(self, key: tuple) -> float:
        return self._entry(key)[2]


def _flat(state) -> list[torch.Tensor]:
    """A state (per layer a tensor, or a tuple of them) as one list of (1, B, H) tensors."""
    return [t for layer in state for t in (layer if isinstance(layer, tuple) else (layer,))]


def _nested(tensors: list[torch.Tensor], layout: list[int]) -> list:
    """_flat undone: `layout` holds per layer the size of its tuple (0 for a bare tensor)."""
    state, at = [], 0
    for size in layout:
        state.append(tuple(tensors[at:at + size]) if size else tensors[at])
        at += size or 1
    return state


class NgramScorer:
    """The same for a character ARPA model (speechrnn.lm): its space is "|", its line end </s>."""

    def __init__(self, path, tokenizer: Tokenizer):
        from .lm import BOS, EOS, SPACE, load_arpa

        self.model = load_arpa(path)
        chars = lm_characters(tokenizer)
        self.tokens = [None] + [SPACE if c == " " else c for c in chars[1:]]
        missing = [repr(tokenizer.symbols[i]) for i, t in enumerate(self.tokens) if i and (t,) not in self.model[1]]
        if missing:
            raise UserError(f"{path}: the n-gram lacks the recogniser's characters {' '.join(missing)}")
        self.order, self.bos, self.eos = max(self.model), BOS, EOS
        self.cache: dict[tuple, tuple] = {}

    def _distribution(self, prefix: tuple) -> tuple:
        from .lm import conditional_log10

        history = [self.bos] + [self.tokens[t] for t in prefix]
        context = tuple(history[len(history) - self.order + 1:]) if self.order > 1 else ()
        logp = np.array([0.0] + [conditional_log10(self.model, context, t) for t in self.tokens[1:]]) * LN10
        return logp, conditional_log10(self.model, context, self.eos) * LN10

    def reset(self) -> None:
        self.cache = {}

    def advance(self, keys) -> None:
        for _, prefix in keys:
            if prefix not in self.cache:
                self.cache[prefix] = self._distribution(prefix)

    def next_logp(self, key: tuple) -> np.ndarray:
        return self.cache[key[1]][0]

    def end_logp(self, key: tuple) -> float:
        return self.cache[key[1]][1]


def prefix_beam_search(utterance: int, log_probs: np.ndarray, scorer, config: FusionConfig):
    """One utterance's log-probs (T, V) -> [(token ids, score, the frame each token starts)], best first.

    A generator: before it reads the LM it yields the (utterance, prefix) keys it needs, and goes on once
    scorer.advance(keys) has run (decode_batch advances the keys of many utterances in one LM call)."""
    weight, bonus = config.lm_weight, config.char_bonus
    beam: dict[tuple, list[float]] = {(): [0.0, NEG_INF]}  # prefix -> [log p ending in blank, ... in its last token]
    fused = {(): 0.0}  # prefix -> weight * log p_lm(prefix) + bonus * len(prefix)
    starts = {(): ()}
    for t, row in enumerate(log_probs):
        blank = float(row[0])
        best = np.argpartition(row[1:], -config.token_beam)[-config.token_beam:] + 1 \
            if len(row) - 1 > config.token_beam else np.arange(1, len(row))
        candidates = [int(c) for c in best if row[c] >= config.token_min_logp]
        following: dict[tuple, list[float]] = {}
        if candidates:
            yield [(utterance, prefix) for prefix in beam]
        for prefix, (p_blank, p_token) in beam.items():
            total = _lse(p_blank, p_token)
            stay = following.setdefault(prefix, [NEG_INF, NEG_INF])
            stay[0] = _lse(stay[0], total + blank)
            last = prefix[-1] if prefix else -1
            if last >= 0:
                stay[1] = _lse(stay[1], p_token + float(row[last]))
            if not candidates:
                continue
            lm_next = scorer.next_logp((utterance, prefix))
            for c in candidates:
                longer = prefix + (c,)
                if longer not in fused:
                    fused[longer] = fused[prefix] + weight * float(lm_next[c]) + bonus
                    starts[longer] = starts[prefix] + (t,)
                grown = following.setdefault(longer, [NEG_INF, NEG_INF])
                # a repeated token needs a blank between: only the paths ending in a blank extend it
                grown[1] = _lse(grown[1], (p_blank if c == last else total) + float(row[c]))
        ranked = sorted(((_lse(*scores) + fused[p], p) for p, scores in following.items()), reverse=True)
        floor = ranked[0][0] - config.beam_threshold
        beam = {p: following[p] for score, p in ranked[:config.beam_size] if score >= floor}
    yield [(utterance, prefix) for prefix in beam]
    finished = sorted(((_lse(*scores) + fused[p] + weight * scorer.end_logp((utterance, p)), p)
                       for p, scores in beam.items()), reverse=True)
    return [(p, score, starts[p]) for score, p in finished[:config.nbest]]


def decode_batch(log_probs: list[np.ndarray], scorer, config: FusionConfig) -> list[list[tuple]]:
    """Prefix beam search of several utterances in lock step: at each step the LM advances every utterance's new
    prefixes in one batch. Returns each utterance's n-best [(token ids, score, token start frames)]."""
    scorer.reset()
    searches = {i: prefix_beam_search(i, rows, scorer, config) for i, rows in enumerate(log_probs)}
    needed = {i: next(search) for i, search in searches.items()}
    results: list[list[tuple]] = [[] for _ in log_probs]
    while needed:
        scorer.advance([key for keys in needed.values() for key in keys])
        for i in list(needed):
            try:
                needed[i] = next(searches[i])
            except StopIteration as done:
                results[i] = done.value
                del needed[i]
    return results


CHUNK_FRAMES = 40_000  # frames searched in lock step: the LM states cached for their prefixes take about 60 KB a
# frame (measured on UNIPEN lines), so a chunk stays within a few GB however many utterances a call brings


def frame_chunks(utterances: list[np.ndarray], limit: int = CHUNK_FRAMES) -> list[list[np.ndarray]]:
    """Consecutive utterances (T, V) grouped so that each group holds at most `limit` frames (or one utterance)."""
    chunks, frames = [[]], 0
    for rows in utterances:
        if chunks[-1] and frames + len(rows) > limit:
            chunks.append([])
            frames = 0
        chunks[-1].append(rows)
        frames += len(rows)
    return chunks


class FusionDecoder:
    """BeamDecoder's interface (decode(log_probs, lens) -> n-best Hypothesis lists) for prefix beam search with an LM
    scorer. The utterances of a call are searched in lock step in this process (decode_batch)."""

    def __init__(self, tokenizer: Tokenizer, scorer, config: FusionConfig | None = None):
        self.tokenizer, self.scorer, self.config = tokenizer, scorer, config or FusionConfig()

    def decode(self, log_probs: torch.Tensor, lens: torch.Tensor | None = None) -> list[list[Hypothesis]]:
        log_probs = log_probs.detach().float().cpu().numpy()  # (B, T, V)
        lens = [log_probs.shape[1]] * len(log_probs) if lens is None else torch.as_tensor(lens).reshape(-1).tolist()
        utterances = [rows[:frames] for rows, frames in zip(log_probs, lens)]
        results = []
        searched = (found for chunk in frame_chunks(utterances)
                    for found in decode_batch(chunk, self.scorer, self.config))
        for nbest in searched:
            texts = [self.tokenizer.decode(list(tokens)) for tokens, _, _ in nbest]
            results.append([Hypothesis(text=text, score=score, tokens=list(tokens), timesteps=list(starts),
                                       words=text.split()) for text, (tokens, score, starts) in zip(texts, nbest)])
        return results

    def close(self) -> None:
        pass

    def __enter__(self) -> "FusionDecoder":
        return self

    def __exit__(self, *exc) -> None:
        pass


def stored_decoder(extra: dict, tokenizer: Tokenizer, workers: int = 1, **overrides):
    """The decoder a bundle's tuned `decoding` describes (`speechrnn tune`): a FusionDecoder where it holds a character
    LM (tune --char-lm), else decode.stored_decoder's flashlight BeamDecoder, its open-vocabulary fallback reading
    with a character LM where one was stored with it (tune --fallback); None when the bundle has none."""
    decoding = extra.get("decoding")
    if decoding and decoding.get("char_lm"):
        return stored_fusion_decoder(decoding, tokenizer, **overrides)
    decoder = stored_flashlight_decoder(extra, tokenizer, workers, **overrides)
    if decoder is not None and decoding.get("fallback"):  # the open-vocabulary fallback reads with the character LM
        decoder.open_vocabulary = stored_fusion_decoder(decoding["fallback"], tokenizer)
    return decoder


def stored_fusion_decoder(decoding: dict, tokenizer: Tokenizer, **overrides) -> FusionDecoder:
    """The FusionDecoder of a stored decoding with a "char_lm" entry (tune.tune_fusion). `overrides`: FusionConfig
    fields; another beam-search option (a hotword, a lexicon) is refused in one line."""
    from .tasks.lm.inference import stored_lm

    overrides = {key: value for key, value in overrides.items() if value not in (None, {}, [])}
    known = {f for f in FusionConfig.__dataclass_fields__}
    alien = sorted(set(overrides) - known)
    if alien:
        raise UserError(f"the bundle's decoder is a lexicon-free beam search with a character LM, which has no "
                        f"{', '.join(alien)}; decode with --beam N --lexicon FILE for that")
    model, alphabet, _ = stored_lm(decoding["char_lm"])
    settings = {key: decoding[key] for key in known if key in decoding}
    return FusionDecoder(tokenizer, CharLMScorer(model, alphabet, tokenizer, "the bundle's character LM"),
                         FusionConfig(**{**settings, **overrides}))
