"""Writing with a trained synthesis network, without a trainer: load it, write text as ink, score ink.

    writer = load_writer("unipen-writer")                      # a shipped name or a bundle file
    ink = write(writer, "hello", bias=1.0, seed=3)             # an Ink in writing heights, y up
    ink = write(writer, "world", style=my_ink, style_text="my words")   # in the style of my_ink

The network writes one point at a time: each point's offset is drawn from the output mixture (sharpened by `bias`,
Graves's sampling bias; `temperature` scales the rest of the randomness), the pen lifts when a Bernoulli draw says
so, and the writing ends when the network's finish probability passes one half, or at the first pen lift after
its attention window has moved past the last character (Graves's end of sampling). A style is a prime: the network
first reads the sample ink, teacher-forced, with text `style_text + " " + text`, and goes on writing from the state
it is left in (Graves 2013, section 5.5).
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...bundle import load_bundle
from ...config import from_dict
from ...errors import BundleError, UserError
from ...ink.readers import Ink, InkError, check_ink
from ..lm.model import Alphabet
from .data import ink_offsets, offsets_to_ink
from .model import TASK, HandwritingSynthesis, SynthConfig, split_params

DEFAULT_BIAS = 1.0  # for a bundle that stores none (a bundle's extra["bias"]: the bias chosen on dev words)
MAX_TEXT_CHARS = 200  # longer texts are refused: write them in pieces
POINTS_PER_CHAR = 40  # writing stops, with a warning, after this many points a character (+ START_POINTS)
START_POINTS = 40


@dataclass
class Writer:
    model: HandwritingSynthesis
    alphabet: Alphabet
    config: SynthConfig
    source: str = ""
    default_bias: float = DEFAULT_BIAS

    @property
    def spacing(self) -> float:
        return self.config.data.spacing


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple:
    """Any synthesis bundle (text-conditioned or unconditional; a file or a shipped name) -> (network in eval mode,
    alphabet, config, the bundle's extras, its path); one line naming the problem for any other bundle."""
    from ...pretrained import resolve

    path = resolve(path)
    bundle = load_bundle(path)
    kind = bundle["extra"].get("task", "recognizer")
    if kind != TASK:
        raise BundleError(f"{path}: a {kind} bundle, not a handwriting synthesis one; give a bundle written by "
                          f"`speechrnn synthesis train` (or the shipped unipen-writer)")
    config = from_dict(bundle["config"], schema=SynthConfig)
    alphabet = Alphabet(bundle["tokenizer"]["alphabet"])
    model = HandwritingSynthesis(len(alphabet), config.model)
    model.load_state_dict(bundle["state_dict"])
    return model.to(device).eval(), alphabet, config, bundle["extra"], path


def load_writer(path: str | Path, device: str | torch.device = "cpu") -> Writer:
    """A text-conditioned synthesis bundle (`speechrnn synthesis train`, or a shipped model's name), ready to write;
    one line naming the problem for any other bundle."""
    model, alphabet, config, extra, path = load_network(path, device)
    if not config.model.attention:
        raise BundleError(f"{path}: an unconditional synthesis network (model.attention false) writes no given "
                          f"text; it is only a baseline for `speechrnn synthesis score`")
    return Writer(model, alphabet, config, str(path), float(extra.get("bias", DEFAULT_BIAS)))


def check_text(writer: Writer, text: str, what: str = "text") -> str:
    """`text` with white space folded; one line naming what cannot be written."""
    text = " ".join(str(text).split())
    if not text:
        raise UserError(f"write: the {what} is empty; give the words to write")
    if len(text) > MAX_TEXT_CHARS:
        raise UserError(f"write: the {what} has {len(text)} characters, more than {MAX_TEXT_CHARS}; write it in "
                        f"pieces (a line at a time)")
    unknown = [c for c in writer.alphabet.missing(text) if c != " " or " " not in writer.alphabet.index]
    if unknown or any(c in ("\n", "\ufffd") for c in text):
        known = "".join(c for c in writer.alphabet.chars[2:] if c != " ")
        raise UserError(f"write: the {what} {text!r} has characters this model cannot write: "
                        f"{' '.join(map(repr, unknown))}; it writes {known!r}" +
                        (" and spaces" if " " in writer.alphabet.index else ""))
    return text


def draw_point(params: torch.Tensor, bias: float, temperature: float, generator: torch.Generator) -> list[float]:
    """One offset and pen lift drawn from a point's output parameters (2 + 6M,)."""
    pen, _, log_w, mu_x, mu_y, log_sx, log_sy, rho = split_params(params, bias)
    if temperature == 0:
        m = int(log_w.argmax())
        return [float(mu_x[m]), float(mu_y[m]), float(torch.sigmoid(pen) > 0.5)]
    m = int(torch.multinomial(torch.softmax(log_w / temperature, dim=-1), 1, generator=generator))
    z1, z2 = torch.randn(2, generator=generator) * temperature ** 0.5
    sx, sy, r = float(log_sx[m].exp()), float(log_sy[m].exp()), float(rho[m])
    dx = float(mu_x[m]) + sx * float(z1)
    dy = float(mu_y[m]) + sy * (r * float(z1) + (1 - r * r) ** 0.5 * float(z2))
    lift = float(torch.rand(1, generator=generator) < torch.sigmoid(pen))
    return [dx, dy, lift]


@torch.no_grad()
def write(writer: Writer, text: str, bias: float | None = None, temperature: float = 1.0, seed: int = 0,
          style: Ink | None = None, style_text: str | None = None, max_points: int | None = None) -> Ink:
    """`text` written as an Ink (writing heights, y up, no time channel). The same seed gives the same ink.
    `style` (an Ink of the writer to imitate) needs `style_text`, what it says. `bias` None: the bundle's own."""
    bias = writer.default_bias if bias is None else bias
    if bias < 0:
        raise UserError(f"write: --bias {bias:g} must be >= 0 (0: as sampled, larger: neater)")
    if temperature < 0:
        raise UserError(f"write: --temperature {temperature:g} must be >= 0")
    text = check_text(writer, text)
    model, device = writer.model, next(writer.model.parameters()).device
    limit = max_points or START_POINTS + POINTS_PER_CHAR * len(text)
    full_text, last = text, torch.zeros(1, 1, 3, device=device)  # the first point's input: no offset, pen down
    if style is not None:
        style_text = check_text(writer, style_text or "", "style's text")
        try:
            prime = ink_offsets(check_ink(style, style.source or "style ink"), writer.spacing)
        except InkError as err:
            raise UserError(f"write: the style ink cannot be used: {err}") from None
        full_text = f"{style_text} {text}"
    ids = torch.tensor([writer.alphabet.encode(full_text)], device=device)  # (1, U)
    lens = torch.tensor([ids.shape[1]], device=device)
    state = None
    if style is not None:
        prime_t = torch.from_numpy(prime).float().to(device).unsqueeze(0)  # (N, 3) -> (1, N, 3)
        params, state = model(prime_t[:, :-1], ids, lens)
        last = prime_t[:, -1:].clone()
        last[0, 0, :2] = 0  # the new writing starts where the prime ends; its own first jump follows
        last[0, 0, 2] = 1  # with the pen lifted
    generator = torch.Generator().manual_seed(seed)
    points, end = [[0.0, 0.0, 0.0]], ids.shape[1] + 0.5  # the window past this position: past the last character
    for _ in range(limit):
        params, state = model(last, ids, lens, state)  # (1, 1, 2 + 6M)
        point = draw_point(params[0, 0].float().cpu(), bias, temperature, generator)
        finished = bool(torch.sigmoid(params[0, 0, 1]) > 0.5) or \
            (point[2] > 0.5 and float(model.window_position(state)[0]) > end)
        if finished:
            point[2] = 1.0
        points.append(point)
        if finished:
            break
        last = torch.tensor([[point]], device=device)
    else:
        print(f"warning: write: {text!r} stopped at {limit} points, the cap for {len(text)} characters, before the "
              f"network finished it; try another seed or a higher bias", file=sys.stderr)
    offsets = np.array(points, dtype=np.float32)  # (N, 3)
    offsets[-1, 2] = 1.0
    if style is not None:
        offsets = offsets[1:]  # the seed point belongs to the prime
        offsets[0, :2] = 0
    return offsets_to_ink(offsets, writer.spacing, text)


def nll_per_point(model: HandwritingSynthesis, dataset, batch_points: int = 24000) -> dict:
    """Teacher-forced negative log-likelihood per predicted point of a dataset (tasks.synthesis.data
    InkOffsetsDataset): offset and pen (nats), as training's dev score."""
    from ...data import collate
    from .data import summed_loss

    order = sorted(range(len(dataset)), key=dataset.frame_lengths.__getitem__)
    totals, start = {}, 0
    device = next(model.parameters()).device
    with torch.no_grad():
        while start < len(order):
            size = max(1, min(128, batch_points // dataset.frame_lengths[order[min(start + 127, len(order) - 1)]]))
            sums = summed_loss(model, collate([dataset[i] for i in order[start:start + size]]), device)
            for key, value in sums.items():
                totals[key] = totals.get(key, 0.0) + float(value)
            start += size
    points = max(totals["points"], 1.0)
    return {"nll": (totals["offset"] + totals["pen"]) / points, "offset": totals["offset"] / points,
            "pen": totals["pen"] / points, "points": int(points)}
