"""Export a bundle's CTC model to ONNX (`speechrnn export BUNDLE --onnx OUT.onnx`), and run the export with
onnxruntime.

What the ONNX graph covers (inputs -> outputs; batch and time axes are dynamic):

  audio bundle, inputs="waveform" (the default)
      inputs (B, N) float32 waveforms at the bundle's sample rate, zero-padded; input_lens (B,) int64 samples
      -> log-mel fbank or MFCC exactly as `features.Features` computes them, CMVN, encoder, CTC head
      -> log_probs (B, T', V) float32; output_lens (B,) int64
  audio bundle, inputs="features"
      inputs (B, T, F): the features *before* CMVN as `raw_audio_features` computes them in torch (padding
      frames may hold anything); input_lens (B,) frames. CMVN, encoder and head are in the graph.
  ink bundle
      inputs (B, T, F): pen-stroke features per resampled point as `speechrnn.ink.featurize` gives them
      (numpy, no torch needed); input_lens (B,) points. CMVN, point stacking, encoder and head are in the graph.

A padded batch gives each item what it would give alone, as in torch (`rnn.reverse_padded`, masked conv).

Front-end: torchaudio's MelSpectrogram does not export with the TorchScript exporter, which cannot handle
the complex tensor torch.stft returns. So the graph computes the STFT as a strided Conv1d whose kernels are
the window times the DFT's cos and sin rows (the same maths: one-sided, centred frames with zero padding,
power 2). It uses the window and mel filterbank that the model itself holds, so an export matches `Features`
to float32 rounding.

Exporter: the TorchScript-based `torch.onnx.export(..., dynamo=False)` with `dynamic_axes`; it exports
nn.LSTM/GRU/RNN as ONNX LSTM/GRU/RNN ops with the time axis free. The torch.export-based (dynamo) exporter
(torch 2.14, onnxscript 0.7) gets through the STFT, but its graphs of this model (with or without the front-end)
fix the output time axis to the traced example's length, fail in onnxruntime at other lengths, and take ~30 s
to export even for a tiny model.

Metadata (`metadata_props`, read back with `onnx_metadata`): vocabulary (id 0 = CTC blank), modality, input
kind, sample rate and feature settings (audio) or ink settings (ink), the text normalisation, the whole
training config and the bundle's extras, so the export can be decoded without the bundle.
`OnnxRecognizer` runs an export with onnxruntime and greedy-decodes it; its own code needs only numpy and
onnxruntime (this module imports torch for the export side), so it can be copied into a torch-free runtime.
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import __version__
from .bundle import load_model
from .config import to_dict
from .errors import UserError
from .features import Features, StrokeFrames, length_mask
from .model import subsampling

FORMAT = "speechrnn-onnx"
FORMAT_VERSION = 1
DEFAULT_OPSET = 17
OPSETS = range(11, 21)  # what torch 2.14's TorchScript-based exporter writes (and this model was checked with)
INPUT_KINDS = ("waveform", "features")
INPUT_NAMES = ["inputs", "input_lens"]
OUTPUT_NAMES = ["log_probs", "output_lens"]
EXPORTABLE_LAYERS = {nn.LSTM: "lstm", nn.GRU: "gru", nn.RNN: "elman"}  # exported as ONNX LSTM / GRU / RNN
JSON_KEYS = ("vocabulary", "features", "ink", "text", "config", "extra")  # metadata values stored as JSON


class ExportError(UserError):
    """An export that cannot be made or written, or a file that is not a speechrnn ONNX export."""


# ----------------------------------------------------------------------------------------------- export graph


class DftFeatures(nn.Module):
    """`features.Features.raw` (log-mel fbank or MFCC before CMVN) with the STFT as a strided Conv1d over the
    waveform, so it exports to ONNX. Waveforms (B, N) + lengths -> features (B, T, F) + frame lengths."""

    def __init__(self, frontend: Features):
        super().__init__()
        self.config = frontend.config
        transform = frontend.transform
        mel_spec = transform if self.config.kind == "fbank" else transform.MelSpectrogram
        spec = mel_spec.spectrogram
        if not (spec.center and spec.pad_mode == "constant" and spec.pad == 0 and spec.power == 2.0
                and spec.onesided and not spec.normalized and spec.win_length <= spec.n_fft):
            raise ExportError("the audio front-end's STFT settings are not the ones this exporter reproduces "
                              "(centred, zero-padded, one-sided, power 2, not normalised)")
        self.n_fft, self.hop = spec.n_fft, spec.hop_length
        window = torch.zeros(self.n_fft, dtype=torch.float64)  # torch.stft centres a shorter window in n_fft
        left = (self.n_fft - spec.win_length) // 2
        window[left: left + spec.win_length] = spec.window.double()
        n = torch.arange(self.n_fft, dtype=torch.float64)
        k = torch.arange(self.n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * torch.remainder(k[:, None] * n[None, :], self.n_fft) / self.n_fft  # (K, n_fft)
        kernels = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])  # (2K, n_fft): re, im
        self.register_buffer("dft", kernels.float().unsqueeze(1))  # (2K, 1, n_fft)
        self.register_buffer("mel_fb", mel_spec.mel_scale.fb.detach().clone())  # (K, n_mels)
        if self.config.kind == "mfcc":
            to_db = transform.amplitude_to_DB
            self.db = (to_db.multiplier, to_db.amin, to_db.db_multiplier, to_db.top_db)
            self.register_buffer("dct_mat", transform.dct_mat.detach().clone())  # (n_mels, n_mfcc)

    def forward(self, wav: torch.Tensor, wav_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        half = self.n_fft // 2
        x = nn.functional.pad(wav.float().unsqueeze(1), (half, half))  # (B, N) -> (B, 1, N + n_fft)
        y = nn.functional.conv1d(x, self.dft, stride=self.hop)  # (B, 2K, T), T = N // hop + 1
        bins = self.dft.shape[0] // 2
        real, imag = y[:, :bins], y[:, bins:]
        power = (real * real + imag * imag).transpose(1, 2)  # (B, T, K)
        mel = torch.matmul(power, self.mel_fb)  # (B, T, n_mels)
        if self.config.kind == "fbank":
            feats = torch.log(mel + 1e-6)
        else:  # torchaudio MFCC(log_mels=False): power to dB, top_db clamp per utterance, DCT
            multiplier, amin, db_multiplier, top_db = self.db
            db = multiplier * torch.log10(torch.clamp(mel, min=amin)) - multiplier * db_multiplier
            if top_db is not None:
                db = torch.max(db, db.amax(dim=(1, 2), keepdim=True) - top_db)
            feats = torch.matmul(db, self.dct_mat)  # (B, T, n_mfcc)
        return feats, wav_lens // self.hop + 1


class ExportModel(nn.Module):
    """A bundle's CTCModel in eval form for export: (inputs, input_lens) -> (log_probs, output_lens); see the
    module docstring for what `inputs` is per modality and input kind."""

    def __init__(self, model, inputs: str = "waveform"):
        super().__init__()
        if inputs not in INPUT_KINDS:
            raise ExportError(f"inputs={inputs!r} is not one of: {', '.join(INPUT_KINDS)}")
        self.model = model
        self.audio = isinstance(model.frontend, Features)
        if not self.audio and not isinstance(model.frontend, StrokeFrames):
            raise ExportError(f"cannot export a model with front-end {type(model.frontend).__name__}")
        rnn = model.encoder.rnn
        for layer in [*rnn.forward_layers, *rnn.backward_layers]:
            if type(layer) not in EXPORTABLE_LAYERS:  # jordan/indrnn loop over time in Python: no dynamic time axis
                raise ExportError(f"ONNX export supports the rnn cells {', '.join(EXPORTABLE_LAYERS.values())}; "
                                  f"this model's encoder uses {rnn.config.cell!r} ({type(layer).__name__})")
        self.dft = DftFeatures(model.frontend) if self.audio and inputs == "waveform" else None

    def forward(self, inputs: torch.Tensor, input_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frontend = self.model.frontend
        if self.audio:
            feats, lens = self.dft(inputs, input_lens) if self.dft is not None else (inputs.float(), input_lens)
            feats = frontend.normalize(feats, lens)
        else:
            feats, lens = frontend(inputs, input_lens)  # CMVN + stacking
        hidden, lens = self.model.encoder(feats, lens)  # no SpecAugment, dropout is off in eval
        return self.model.head(hidden).float().log_softmax(dim=-1), lens


def example_inputs(model, inputs: str = "waveform", lengths=(1.0, 0.6), seed: int = 0):
    """A small padded batch of random inputs of the kind `ExportModel(model, inputs)` takes: (inputs, lens).
    `lengths` are seconds for audio and hundreds of points for ink."""
    g = torch.Generator().manual_seed(seed)
    frontend = model.frontend
    if isinstance(frontend, StrokeFrames):
        lens = torch.tensor([max(1, round(100 * s)) for s in lengths])
        return torch.randn(len(lens), int(lens.max()), frontend.cmvn_mean.numel(), generator=g), lens
    rate = frontend.config.sample_rate
    lens = torch.tensor([max(1, round(rate * s)) for s in lengths])
    wav = 0.1 * torch.randn(len(lens), int(lens.max()), generator=g)
    wav = wav * length_mask(lens, wav.shape[1])  # zero padding, as collate gives
    if inputs == "waveform":
        return wav, lens
    return raw_audio_features(frontend, wav, lens)


@torch.no_grad()
def raw_audio_features(frontend_or_config, wav: torch.Tensor, wav_lens: torch.Tensor):
    """Features before CMVN, the input of an export made with inputs="features": waveforms (B, N) zero-padded +
    lengths -> (B, T, F) + frame lengths, computed in torch by `features.Features.raw`. Takes the model's
    front-end or a `features.FeatureConfig` (e.g. `FeatureConfig(**onnx_metadata(path)["features"])`)."""
    frontend = frontend_or_config if isinstance(frontend_or_config, Features) else Features(frontend_or_config)
    training = frontend.training
    frontend.eval()  # no dither
    try:
        return frontend.raw(torch.as_tensor(wav).float(), torch.as_tensor(wav_lens))
    finally:
        frontend.train(training)


# ----------------------------------------------------------------------------------------------------- export


def _dynamic_axes(audio: bool, inputs: str) -> dict:
    time = "samples" if audio and inputs == "waveform" else ("frames" if audio else "points")
    return {"inputs": {0: "batch", 1: time}, "input_lens": {0: "batch"},
            "log_probs": {0: "batch", 1: "out_frames"}, "output_lens": {0: "batch"}}


def to_onnx_bytes(model, inputs: str = "waveform", opset: int = DEFAULT_OPSET) -> bytes:
    """The ONNX model (serialized, without speechrnn metadata) of a CTCModel; see the module docstring."""
    wrapper = ExportModel(model, inputs).eval()
    args = example_inputs(model, inputs)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # expected and harmless: the legacy exporter's deprecation notice, and the note that an RNN without h0
        # inputs may fail for other batch sizes (the exported zero state takes its batch size from the input)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # nn.RNN's own size checks
        torch.onnx.export(wrapper, args, buffer, dynamo=False, opset_version=opset, input_names=INPUT_NAMES,
                          output_names=OUTPUT_NAMES, dynamic_axes=_dynamic_axes(wrapper.audio, inputs),
                          do_constant_folding=True)
    return buffer.getvalue()


def strict_json(value) -> str:
    """JSON that strict parsers read: non-finite floats (a tuned decoder's oov_margin of inf) become the strings
    "inf", "-inf" and "nan", and anything else JSON lacks becomes its str()."""
    def finite(item):
        if isinstance(item, float) and not math.isfinite(item):
            return str(item)
        if isinstance(item, dict):
            return {key: finite(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [finite(inner) for inner in item]
        return item

    return json.dumps(finite(value), ensure_ascii=False, allow_nan=False, default=str)


def without_models(value):
    """A bundle extra as stored: load_model adds each aligner's loaded "model", which is not metadata."""
    return {k: v for k, v in value.items() if not isinstance(v, nn.Module)} if isinstance(value, dict) else value


def export_metadata(tokenizer, config, extra: dict, inputs: str) -> dict[str, str]:
    """The metadata_props written into an export (all values strings; JSON_KEYS hold strict JSON)."""
    full = to_dict(config)
    audio = config.modality != "ink"
    meta = {
        "speechrnn_format": f"{FORMAT}/{FORMAT_VERSION}",
        "speechrnn_version": __version__,
        "modality": config.modality,
        "input": ("waveform" if inputs == "waveform" else "features") if audio else "ink_features",
        "vocabulary": strict_json(tokenizer.symbols),
        "blank_id": "0",
        "text": strict_json(full["text"]),
        "subsampling": str(subsampling(config.model)),  # input frames (after ink stacking) per output frame
        "config": strict_json(full),
        "extra": strict_json({key: without_models(value) for key, value in (extra or {}).items()}),
    }
    if audio:
        meta["sample_rate"] = str(config.features.sample_rate)
        meta["features"] = strict_json(full["features"])
        meta["frame_shift_s"] = repr(config.features.hop_length / config.features.sample_rate)
        meta["output_frame_shift_s"] = repr(int(meta["subsampling"]) * config.features.hop_length
                                             / config.features.sample_rate)
    else:
        meta["ink"] = strict_json(full["ink"])
        meta["num_features"] = str(config.ink.num_features)
        meta["points_per_output_frame"] = str(int(meta["subsampling"]) * config.ink.stack)
    return meta


def _check_out_path(out_path: str | Path) -> Path:
    out = Path(out_path)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder; give the ONNX file's name, e.g. {out / 'model.onnx'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ExportError(f"{out.parent}: cannot create the output folder (a file is in the way)") from None
    except OSError as err:
        raise ExportError(f"{out.parent}: cannot create the output folder ({err.strerror or err})") from None
    return out


def export_onnx(bundle_path: str | Path, out_path: str | Path, opset: int = DEFAULT_OPSET,
                inputs: str = "waveform", verify: bool = True) -> Path:
    """Export the bundle's model (front-end for audio + encoder + CTC head) to `out_path` as ONNX with dynamic
    batch and time axes and speechrnn metadata; returns the path. The output folder is created if missing.
    `inputs` ("waveform" | "features") only matters for audio bundles (see the module docstring).
    With `verify` and onnxruntime installed, the export is run on a padded batch of other lengths and batch size
    than the traced one and compared with torch (ExportError beyond 1e-3).
    Raises BundleError for a file that is not a bundle, ExportError for the rest a user can cause."""
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'speechrnn[onnx]'") from None
    if inputs not in INPUT_KINDS:
        raise ExportError(f"inputs={inputs!r} is not one of: {', '.join(INPUT_KINDS)}")
    if opset not in OPSETS:
        raise ExportError(f"opset {opset} is not supported; choose {OPSETS.start}..{OPSETS.stop - 1} "
                          f"(default {DEFAULT_OPSET})")
    model, tokenizer, config, extra = load_model(bundle_path)  # BundleError for anything not a bundle
    try:
        ExportModel(model, inputs)  # a model this exporter cannot express is refused before any file is made
    except ExportError as err:
        raise ExportError(f"{bundle_path}: {err}") from None
    out = _check_out_path(out_path)
    try:
        data = to_onnx_bytes(model, inputs, opset)
    except ExportError:
        raise
    except Exception as err:  # e.g. an opset the exporter does not support
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"{bundle_path}: ONNX export failed at opset {opset} ({first})") from None
    proto = onnx.load_from_string(data)
    for key, value in export_metadata(tokenizer, config, extra, inputs).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "speechrnn", __version__
    proto.doc_string = (f"speechrnn CTC model ({config.modality}): {', '.join(INPUT_NAMES)} -> "
                        f"{', '.join(OUTPUT_NAMES)}; see metadata_props")
    onnx.checker.check_model(proto)
    tmp = out.with_name(out.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, out)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"{out}: cannot write the ONNX file ({err.strerror or err})") from None
    if verify:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return out
        diff = max_abs_diff(model, out, inputs)
        if not diff <= 1e-3:
            raise ExportError(f"{out}: the export differs from the torch model by {diff:.2g} (max |log-prob| "
                              "difference); please report this as a speechrnn bug")
    return out


@torch.no_grad()
def max_abs_diff(model, onnx_path: str | Path, inputs: str = "waveform", lengths=(0.7, 1.3, 0.25)) -> float:
    """Max |log-prob| difference over the valid frames between torch and onnxruntime on a padded batch of random
    inputs (other lengths and batch size than the traced example); inf if the output lengths differ."""
    wrapper = ExportModel(model, inputs).eval()
    x, lens = example_inputs(model, inputs, lengths, seed=1)
    ref, ref_lens = wrapper(x, lens)
    out, out_lens = OnnxRecognizer(onnx_path, threads=1)(x.numpy(), lens.numpy())
    if not np.array_equal(out_lens, ref_lens.numpy()) or out.shape != tuple(ref.shape):
        return math.inf
    valid = length_mask(torch.from_numpy(out_lens), out.shape[1]).numpy()  # (B, T')
    return float(np.abs(out - ref.numpy())[valid].max())


# ------------------------------------------------------------------------------------------ run with onnxruntime


def parse_metadata(props: dict[str, str]) -> dict:
    """metadata_props (str -> str) -> dict with the JSON_KEYS decoded."""
    meta = dict(props)
    for key in JSON_KEYS:
        if key in meta:
            meta[key] = json.loads(meta[key])
    return meta


def onnx_metadata(path: str | Path) -> dict:
    """The speechrnn metadata of an export (needs the onnx package; OnnxRecognizer(path).metadata needs only
    onnxruntime). ExportError for a file that is not a speechrnn ONNX export."""
    try:
        import onnx
    except ImportError:
        raise ExportError("reading ONNX metadata needs the onnx package: pip install 'speechrnn[onnx]'") from None
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as err:
        raise ExportError(f"{path}: not an ONNX model ({(str(err).strip().splitlines() or ['?'])[0]})") from None
    return _checked(path, parse_metadata({p.key: p.value for p in proto.metadata_props}))


def _checked(path, meta: dict) -> dict:
    if not str(meta.get("speechrnn_format", "")).startswith(FORMAT + "/"):
        raise ExportError(f"{path}: not a speechrnn ONNX export (no speechrnn_format metadata)")
    return meta


class OnnxRecognizer:
    """An export run with onnxruntime (CPU) plus greedy CTC decoding; uses numpy and onnxruntime only.

    inputs per the export's metadata["input"]: "waveform": 1-D float32 arrays at metadata["sample_rate"];
    "features": (T, F) arrays from `raw_audio_features`; "ink_features": (T, F) arrays from
    `speechrnn.ink.featurize(ink, InkFeatureConfig(**metadata["ink"]))`."""

    def __init__(self, path: str | Path, threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ExportError("running an ONNX export needs onnxruntime: pip install 'speechrnn[onnx]'") from None
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        if not Path(path).is_file():
            raise ExportError(f"{path}: no such ONNX file")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:
            raise ExportError(f"{path}: not a loadable ONNX model "
                              f"({(str(err).strip().splitlines() or ['?'])[0]})") from None
        self.metadata = _checked(path, parse_metadata(self.session.get_modelmeta().custom_metadata_map))
        self.symbols: list[str] = self.metadata["vocabulary"]

    def __call__(self, inputs: np.ndarray, input_lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Padded batch -> (log_probs (B, T', V) float32, output_lens (B,) int64)."""
        log_probs, lens = self.session.run(OUTPUT_NAMES, {
            "inputs": np.ascontiguousarray(inputs, dtype=np.float32),
            "input_lens": np.ascontiguousarray(input_lens, dtype=np.int64)})
        return log_probs, lens

    @staticmethod
    def pad(items: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Arrays (N,) or (T, F) -> zero-padded batch (B, N) or (B, T, F) and lengths (B,)."""
        lens = np.array([len(x) for x in items], dtype=np.int64)
        batch = np.zeros((len(items), int(lens.max()), *np.shape(items[0])[1:]), dtype=np.float32)
        for row, x in enumerate(items):
            batch[row, : len(x)] = x
        return batch, lens

    def decode(self, log_probs: np.ndarray, lens: np.ndarray) -> list[str]:
        """Greedy CTC (best path, repeats merged, blanks dropped) -> texts, as `text.Tokenizer.decode` spaces them."""
        texts = []
        for best, length in zip(log_probs.argmax(-1), lens):
            path = best[:length]
            keep = np.ones(len(path), dtype=bool)
            keep[1:] = path[1:] != path[:-1]
            ids = path[keep]
            texts.append(" ".join("".join(self.symbols[i] for i in ids if i != 0).split()))
        return texts

    def transcribe_inputs(self, inputs: list[np.ndarray]) -> list[str]:
        return self.decode(*self(*self.pad(inputs)))
