"""speechrnn.export: ONNX export of a bundle (front-end + encoder + CTC head) with dynamic batch and time axes.
onnxruntime on padded batches of different lengths must match the torch model within 1e-4, and each utterance
alone; the metadata must let a runtime decode without the bundle; bad input is refused with one clear line."""

import json

import numpy as np
import pytest
import torch

import onnx  # noqa: F401  (the dev extra installs speechrnn[onnx]: onnx and onnxruntime)

from speechrnn.bundle import save_bundle
from speechrnn.config import load_config, to_dict
from speechrnn.decode import greedy_decode
from speechrnn.errors import BundleError
from speechrnn.export import (ExportError, OnnxRecognizer, export_onnx, onnx_metadata, raw_audio_features,
                              to_onnx_bytes)
from speechrnn.features import FeatureConfig
from speechrnn.model import build_model
from speechrnn.bundle import load_model
from speechrnn.text import TextConfig, Tokenizer

TOL = 1e-4
SAMPLES = (16000, 7321, 12345, 2999)  # 16 kHz; unsorted, not multiples of the hop, batch size != the traced 2
POINTS = (173, 61, 120, 7)  # ink points; not multiples of the stack
SMALL = ["data.train_manifest=unused", "data.dev_manifest=unused", "model.rnn.hidden_size=16",
         "model.rnn.num_layers=2", "model.dropout=0.3", "model.rnn.dropout=0.3"]
MODELS = {
    "audio-conv-bilstm": ["model.conv_channels=4", "features.n_mels=40"],
    "audio-conv-bigru-mfcc": ["model.conv_channels=4", "model.rnn.cell=gru", "features.kind=mfcc"],
    "audio-gru": ["model.conv_channels=0", "model.rnn.cell=gru", "features.n_mels=24"],
    "ink-bilstm": ["modality=ink", "model.conv_channels=0", "ink.stack=3"],
    "ink-conv-gru": ["modality=ink", "model.conv_channels=4", "model.rnn.cell=gru", "ink.stack=2"],
}


def make_bundle(path, overrides, seed=0):
    config = load_config(None, SMALL + overrides)
    tokenizer = Tokenizer(list("ABCDEFG '"), TextConfig())
    torch.manual_seed(seed)
    model = build_model(len(tokenizer), config)
    g = torch.Generator().manual_seed(seed + 1)
    dim = model.frontend.cmvn_mean.numel()
    model.frontend.set_cmvn(torch.randn(dim, generator=g) - 3, torch.rand(dim, generator=g) + 0.5)  # not identity
    save_bundle(path, model.state_dict(), to_dict(config), tokenizer.to_dict(), {"epoch": 7, "dev_cer": 0.25})
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (bundle path, onnx path), exported once per module (verify=False: the tests check parity)."""
    root = tmp_path_factory.mktemp("export")
    return {name: (bundle, export_onnx(bundle, root / "onnx" / f"{name}.onnx", verify=False))
            for name, overrides in MODELS.items()
            for bundle in [make_bundle(root / f"{name}.pt", overrides)]}


def padded_inputs(config, lengths=None):
    """A padded batch (zero-filled) of waveforms (a chirp + noise) or random stroke features, and the lengths."""
    g = torch.Generator().manual_seed(3)
    if config.modality == "ink":
        lengths = lengths or POINTS
        items = [torch.randn(n, config.ink.num_features, generator=g) for n in lengths]
    else:
        lengths = lengths or SAMPLES
        items = []
        for n in lengths:
            t = torch.arange(n) / 16000
            items.append(0.3 * torch.sin(2 * torch.pi * (200 + 800 * t) * t) + 0.05 * torch.randn(n, generator=g))
    lens = torch.tensor(lengths)
    batch = torch.zeros(len(items), int(lens.max()), *items[0].shape[1:])
    for row, x in enumerate(items):
        batch[row, : len(x)] = x
    return batch, lens


def valid_max_diff(a, b, lens):
    valid = np.arange(a.shape[1])[None, :] < np.asarray(lens)[:, None]
    return float(np.abs(np.asarray(a) - np.asarray(b))[valid].max())


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_matches_torch_on_padded_batch(exported, name):
    bundle, path = exported[name]
    model, tokenizer, config, _ = load_model(bundle)
    x, lens = padded_inputs(config)
    with torch.no_grad():
        ref, ref_lens = model(x, lens)  # the real torch model, torchaudio front-end included
    runner = OnnxRecognizer(path, threads=1)
    out, out_lens = runner(x.numpy(), lens.numpy())
    assert out.shape == tuple(ref.shape) and out.dtype == np.float32
    np.testing.assert_array_equal(out_lens, ref_lens.numpy())
    assert valid_max_diff(out, ref.numpy(), out_lens) < TOL
    # each utterance alone (batch of 1, no padding) gives what it gives inside the padded batch
    for row, n in enumerate(lens.tolist()):
        alone, alone_lens = runner(x[row: row + 1, :n].numpy(), lens[row: row + 1].numpy())
        assert alone_lens[0] == out_lens[row] and alone.shape[1] == out_lens[row]
        assert valid_max_diff(alone, out[row: row + 1, : alone.shape[1]], alone_lens) < TOL
    # greedy decoding of the export gives the torch model's text
    texts = [tokenizer.decode(ids) for ids in greedy_decode(ref, ref_lens)]
    assert runner.decode(out, out_lens) == texts
    assert runner.transcribe_inputs([x[row, :n].numpy() for row, n in enumerate(lens.tolist())]) == texts


def test_dynamic_axes_and_names(exported):
    import onnxruntime as ort

    for name, (_, path) in exported.items():
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in session.get_inputs()}
        outputs = {o.name: o.shape for o in session.get_outputs()}
        time = "points" if name.startswith("ink") else "samples"
        assert inputs["inputs"][:2] == ["batch", time] and inputs["input_lens"] == ["batch"], name
        assert outputs["log_probs"] == ["batch", "out_frames", 10] and outputs["output_lens"] == ["batch"], name


def test_feature_input_export_matches_torch(exported, tmp_path):
    bundle, _ = exported["audio-conv-bilstm"]
    path = export_onnx(bundle, tmp_path / "feats.onnx", inputs="features")
    model, _, config, _ = load_model(bundle)
    wav, wav_lens = padded_inputs(config)
    with torch.no_grad():
        ref, ref_lens = model(wav, wav_lens)
    runner = OnnxRecognizer(path, threads=1)
    assert runner.metadata["input"] == "features"
    feats, lens = raw_audio_features(FeatureConfig(**runner.metadata["features"]), wav, wav_lens)  # no bundle needed
    out, out_lens = runner(feats.numpy(), lens.numpy())
    np.testing.assert_array_equal(out_lens, ref_lens.numpy())
    assert valid_max_diff(out, ref.numpy(), out_lens) < TOL


def test_metadata_round_trip(exported):
    for name, (bundle, path) in exported.items():
        _, tokenizer, config, extra = load_model(bundle)
        meta = onnx_metadata(path)
        assert OnnxRecognizer(path).metadata == meta  # onnxruntime alone reads the same
        assert meta["speechrnn_format"] == "speechrnn-onnx/1"
        assert meta["vocabulary"] == tokenizer.symbols and meta["vocabulary"][int(meta["blank_id"])] == "<blank>"
        assert meta["modality"] == config.modality
        assert meta["text"] == to_dict(config)["text"]
        assert meta["config"] == json.loads(json.dumps(to_dict(config)))  # tuples come back as lists
        assert meta["extra"] == extra == {"epoch": 7, "dev_cer": 0.25}
        assert meta["subsampling"] == ("4" if config.model.conv_channels else "1")
        if config.modality == "ink":
            assert meta["input"] == "ink_features" and meta["ink"] == to_dict(config)["ink"]
            assert int(meta["num_features"]) == config.ink.num_features
            assert int(meta["points_per_output_frame"]) == config.ink.stack * int(meta["subsampling"])
        else:
            assert meta["input"] == "waveform" and meta["features"] == to_dict(config)["features"]
            assert int(meta["sample_rate"]) == config.features.sample_rate == 16000
            assert float(meta["frame_shift_s"]) == pytest.approx(0.01)
            assert float(meta["output_frame_shift_s"]) == pytest.approx(0.01 * int(meta["subsampling"]))
        assert all(isinstance(json.dumps(v), str) for v in meta.values())


def test_not_a_bundle_is_refused_with_one_line(tmp_path):
    bad = tmp_path / "notes.pt"
    bad.write_text("this is not a model\n")
    out = tmp_path / "out" / "model.onnx"
    for path, says in ((bad, "not a speechrnn model bundle"), (tmp_path / "missing.pt", "no such model bundle")):
        with pytest.raises(BundleError) as err:
            export_onnx(path, out)
        assert says in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    assert not out.parent.exists()  # nothing written for a bad bundle


def test_output_folder_is_created_and_a_folder_is_refused(exported, tmp_path):
    bundle, _ = exported["ink-bilstm"]
    out = export_onnx(bundle, tmp_path / "new" / "deeper" / "ink.onnx")  # verify=True: checks itself
    assert out.is_file() and not out.with_name(out.name + ".tmp").exists()
    (tmp_path / "adir").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        export_onnx(bundle, tmp_path / "adir")
    with pytest.raises(ExportError, match="inputs="):
        export_onnx(bundle, tmp_path / "x.onnx", inputs="spectrogram")
    with pytest.raises(ExportError, match="opset 30 is not supported; choose 11..20"):
        export_onnx(bundle, tmp_path / "x.onnx", opset=30)
    assert not (tmp_path / "x.onnx").exists()


def test_python_loop_cells_are_refused(tmp_path):
    bundle = make_bundle(tmp_path / "jordan.pt", ["modality=ink", "model.conv_channels=0", "model.rnn.cell=jordan"])
    with pytest.raises(ExportError, match="supports the rnn cells lstm, gru, elman.*'jordan'"):
        export_onnx(bundle, tmp_path / "out" / "jordan.onnx")
    assert not (tmp_path / "out").exists()


def test_foreign_onnx_file_is_refused(exported, tmp_path):
    bundle, _ = exported["ink-bilstm"]
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(to_onnx_bytes(load_model(bundle)[0]))  # a valid ONNX model without speechrnn metadata
    for read in (OnnxRecognizer, onnx_metadata):
        with pytest.raises(ExportError, match="not a speechrnn ONNX export"):
            read(plain)
    junk = tmp_path / "junk.onnx"
    junk.write_text("hello")
    with pytest.raises(ExportError, match="not a loadable ONNX model"):
        OnnxRecognizer(junk)


def test_cli_export(exported, tmp_path, capsys):
    from speechrnn.cli import main

    bundle, _ = exported["audio-gru"]
    out = tmp_path / "cli" / "model.onnx"
    main(["export", str(bundle), "--onnx", str(out)])
    assert onnx_metadata(out)["modality"] == "audio"
    capsys.readouterr()
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(bad), "--onnx", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "not a speechrnn model bundle" in err[0]


def test_int8_bundle_is_smaller_and_decodes_like_float(exported, tmp_path):
    """`speechrnn export --int8`: matrices stored as int8 with a scale per row, loaded back as float32; the
    log-probs stay close to the float model's and re-saving (as `tune` does) keeps the int8 storage."""
    from speechrnn.bundle import load_bundle, repack_bundle, save_bundle

    bundle, _ = exported["audio-conv-bilstm"]
    packed = tmp_path / "int8.pt"
    repack_bundle(bundle, packed, "int8")
    assert packed.stat().st_size < 0.5 * bundle.stat().st_size
    raw = torch.load(packed, weights_only=True)
    assert any(value.dtype == torch.int8 for value in raw["state_dict"].values())
    reference, _, _, _ = load_model(bundle)
    model, _, _, _ = load_model(packed)
    for name, value in reference.state_dict().items():  # per-row int8 error is at most half a step
        step = value.float().reshape(len(value), -1).abs().amax(1) / 127 if value.dim() >= 2 else torch.zeros(1)
        error = (model.state_dict()[name] - value).reshape(len(value), -1).abs().amax(1)
        assert torch.all(error <= step.reshape(-1)[: len(error)] * 0.5 + 1e-7), name
    wav = torch.randn(2, 8000) * 0.1
    lens = torch.tensor([8000, 5000])
    with torch.no_grad():
        ref_lp, _ = reference(wav, lens)
        lp, _ = model(wav, lens)
    assert (ref_lp.exp() - lp.exp()).abs().max() < 0.05
    b = load_bundle(packed)
    save_bundle(tmp_path / "again.pt", b["state_dict"], b["config"], b["tokenizer"], b["extra"], b["weights"])
    assert abs((tmp_path / "again.pt").stat().st_size - packed.stat().st_size) < 1024
