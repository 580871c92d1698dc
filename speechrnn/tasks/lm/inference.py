"""Using a trained character LM without a trainer: load it, measure bits per character on text, generate text.

    lm, alphabet, config = load_lm("exp/model.pt")
    bits_per_char(lm, alphabet, lines)                    # held-out text
    generate(lm, alphabet, "The ", temperature=0.8, seed=1, max_chars=200)
"""

import math
from pathlib import Path

import torch

from ...bundle import load_bundle
from ...config import from_dict
from ...errors import BundleError, UserError
from .model import LINE, TASK, Alphabet, CharLM, LMConfig
from .data import TextDataset, summed_loss

MAX_GENERATED = 10000


def load_lm(path: str | Path, device: str | torch.device = "cpu") -> tuple[CharLM, Alphabet, LMConfig]:
    """A language-model bundle (`speechrnn lm train`), or the character LM a recogniser bundle decodes with (tune
    --char-lm or --fallback: the shipped `unipen` has one), in eval mode; one line naming the problem otherwise."""
    bundle = load_bundle(path)
    kind = bundle["extra"].get("task", "recognizer")
    if kind == TASK:
        return lm_from_bundle(bundle, device)
    decoding = bundle["extra"].get("decoding") or {}
    stored = decoding.get("char_lm") or (decoding.get("fallback") or {}).get("char_lm")
    if kind == "recognizer" and stored:
        return stored_lm(stored, device)
    raise BundleError(f"{path}: a {kind} bundle without a character language model; give a bundle written by "
                      f"`speechrnn lm train` (or a recogniser tuned with `speechrnn tune --char-lm`)")


def stored_lm(stored: dict, device: str | torch.device = "cpu") -> tuple[CharLM, Alphabet, LMConfig]:
    """The LM a recogniser bundle's decoding holds (tune.tune_fusion: config, alphabet, fp16 weights)."""
    return lm_from_bundle({"config": stored["config"], "tokenizer": {"alphabet": stored["alphabet"]},
                           "state_dict": {k: v.float() for k, v in stored["state_dict"].items()}}, device)


def lm_from_bundle(bundle: dict, device: str | torch.device = "cpu") -> tuple[CharLM, Alphabet, LMConfig]:
    config = from_dict(bundle["config"], schema=LMConfig)
    alphabet = Alphabet(bundle["tokenizer"]["alphabet"])
    model = CharLM(len(alphabet), config.model)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), alphabet, config


@torch.no_grad()
def bits_per_char(model: CharLM, alphabet: Alphabet, lines: list[str], max_chars: int = 300,
                  batch_chars: int = 32000) -> float:
    """Mean bits per character over `lines`, each line's end counted as one more character (as the n-gram's </s>)."""
    from ...data import collate

    dataset = TextDataset(lines, alphabet, max_chars)
    order = sorted(range(len(dataset)), key=dataset.frame_lengths.__getitem__)
    total, count, start = 0.0, 0, 0
    device = next(model.parameters()).device
    while start < len(order):
        size = max(1, batch_chars // dataset.frame_lengths[order[min(start + 63, len(order) - 1)]])
        batch = collate([dataset[i] for i in order[start:start + min(size, 512)]])
        loss, n = summed_loss(model, batch, device)
        total, count, start = total + float(loss), count + n, start + min(size, 512)
    return total / count / math.log(2)


@torch.no_grad()
def generate(model: CharLM, alphabet: Alphabet, prompt: str = "", temperature: float = 1.0, seed: int = 0,
             max_chars: int = 300, stop_at_line_end: bool = True) -> str:
    """Text sampled character by character after `prompt` (read from the start of a line), at `temperature` (0:
    the most likely character each step); the same seed gives the same text. Stops at the end of the line the model
    chooses or after `max_chars` characters. Returns the prompt and what follows."""
    if temperature < 0:
        raise UserError(f"lm generate: --temperature {temperature:g} must be >= 0")
    if not 1 <= max_chars <= MAX_GENERATED:
        raise UserError(f"lm generate: --max-chars {max_chars} must be within 1..{MAX_GENERATED}")
    unknown = alphabet.missing(prompt)
    if unknown:
        raise UserError(f"lm generate: the prompt has characters this model does not know: "
                        f"{' '.join(map(repr, unknown))}")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    logits, state = model(torch.tensor([[0] + alphabet.encode(prompt)], device=device))  # (1, T, V)
    out = []
    for _ in range(max_chars):
        scores = logits[0, -1].float().cpu()
        scores[1] = -math.inf  # never the unknown character
        if temperature == 0:
            char = int(scores.argmax())
        else:
            char = int(torch.multinomial(torch.softmax(scores / temperature, dim=-1), 1, generator=generator))
        if char == 0 and stop_at_line_end:
            break
        out.append(char)
        logits, state = model(torch.tensor([[char]], device=device), state)
    return prompt + alphabet.decode(out).replace(LINE, " ")
