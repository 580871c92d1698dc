"""Every bad input gets one clear error (what, where) and the rest goes on."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechrnn.audio import load_audio
from speechrnn.bundle import FORMAT, VERSION, load_bundle, save_bundle
from speechrnn.config import load_config, to_dict
from speechrnn.data import AudioDataset, Utterance, collate, load_utterances, read_manifest
from speechrnn.errors import AudioError, BundleError, ConfigError, ManifestError, UserError
from speechrnn.model import ModelConfig, build_speech_model
from speechrnn.features import FeatureConfig
from speechrnn.rnn import RNNConfig
from speechrnn.text import TextConfig, Tokenizer
from speechrnn.align import ctc_frames_needed
from speechrnn.tasks.ctc import keep_trainable

REQUIRED = ["data.train_manifest=x", "data.dev_manifest=y"]
TINY = REQUIRED + ["model.rnn.hidden_size=16", "model.rnn.num_layers=1", "model.conv_channels=4"]




def one_line(message: str) -> bool:
    return "\n" not in message.strip() and message.strip() != ""


# ---------------------------------------------------------------------------------------------- bad audio files


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """A good wav and the four kinds of bad file."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    good = folder / "good.wav"
    soundfile.write(str(good), (rng.standard_normal(8000) * 0.1).astype(np.float32), 16000, subtype="PCM_16")
    good2 = folder / "good2.wav"
    soundfile.write(str(good2), (rng.standard_normal(12000) * 0.1).astype(np.float32), 16000, subtype="PCM_16")
    empty = folder / "empty.wav"
    empty.write_bytes(b"")
    truncated = folder / "truncated.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    text = folder / "notes.wav"
    text.write_text("this is a text file, not audio\n")
    return {"good": good, "good2": good2, "missing": folder / "missing.wav", "empty": empty,
            "truncated": truncated, "text": text}


BAD = ["missing", "empty", "truncated", "text"]


@pytest.mark.parametrize("kind", BAD)
def test_load_audio_bad_file_raises_one_line_audio_error(audio_files, kind):
    path = audio_files[kind]
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    message = str(err.value)
    assert str(path) in message, "the message names the file"
    assert one_line(message)
    assert isinstance(err.value, UserError)


def test_load_audio_good_file_still_loads(audio_files):
    assert load_audio(audio_files["good"], 16000).shape == (8000,)


@pytest.mark.parametrize("kind", BAD)
def test_dataset_skips_bad_file_and_collate_keeps_the_rest(audio_files, kind, capsys):
    texts = ["A B", "B A", "AB"]
    utts = [Utterance("u0", str(audio_files["good"]), 0.5, texts[0]),
            Utterance("bad", str(audio_files[kind]), 1.0, texts[1]),
            Utterance("u2", str(audio_files["good2"]), 0.75, texts[2])]
    tokenizer = Tokenizer.build(texts, TextConfig())
    dataset = AudioDataset(utts, tokenizer, 16000)
    capsys.readouterr()
    items = [dataset[i] for i in range(len(dataset))]
    err_lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert items[1] is None
    assert items[0] is not None and items[2] is not None
    assert len(err_lines) == 1, err_lines
    assert err_lines[0].startswith("error:")
    assert str(audio_files[kind]) in err_lines[0] and "bad" in err_lines[0]

    batch = collate(items)
    assert batch["ids"] == ["u0", "u2"]
    assert batch["texts"] == [texts[0], texts[2]]
    assert batch["input_lens"].tolist() == [8000, 12000]
    assert batch["inputs"].shape == (2, 12000)
    assert torch.equal(batch["inputs"][0, :8000], items[0]["inputs"]) and batch["inputs"][0, 8000:].eq(0).all()
    assert batch["token_lens"].tolist() == [len(tokenizer.encode(texts[0])), len(tokenizer.encode(texts[2]))]


def test_collate_of_only_bad_items_is_an_empty_batch():
    batch = collate([None, None])
    assert batch["ids"] == [] and batch["inputs"].shape[0] == 0 and batch["tokens"].shape[0] == 0


# ---------------------------------------------------------------------------------------------- manifests


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


GOOD_LINE = json.dumps({"audio_filepath": "/abs/a.wav", "duration": 1.0, "text": "A"})


def test_manifest_line_that_is_not_json(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [GOOD_LINE, "", "{not json", GOOD_LINE])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert f"{path}:3" in str(err.value)
    assert one_line(str(err.value))


def test_manifest_line_missing_text(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", [GOOD_LINE, json.dumps({"audio_filepath": "b.wav", "duration": 2.0})])
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    message = str(err.value)
    assert f"{path}:2" in message
    assert "text" in message.split("missing", 1)[1].split(";")[0], "names the missing field"
    assert "duration" not in message.split("missing", 1)[1].split(";")[0]


def test_manifest_line_that_is_json_but_not_an_object(tmp_path):
    path = write_lines(tmp_path / "m.jsonl", ["[1, 2, 3]"])
    with pytest.raises(ManifestError, match=r":1: "):
        read_manifest(path)


def test_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "nope.jsonl")


def test_manifest_relative_paths_resolve_against_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "data" / "an4"
    path = write_lines(folder / "train.jsonl", [
        json.dumps({"audio_filepath": "wav/a.wav", "duration": 1.0, "text": "A"}),
        json.dumps({"audio_filepath": "../other/b.wav", "duration": 1.5, "text": "B"}),
        json.dumps({"audio_filepath": "/abs/c.wav", "duration": 2.0, "text": "C", "id": "custom"}),
    ])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the working directory must not matter
    entries = read_manifest(os.path.relpath(path, elsewhere))
    real = Path(os.path.realpath(folder))
    assert entries[0]["audio_filepath"] == str(real / "wav" / "a.wav")
    assert entries[1]["audio_filepath"] == str(real.parent / "other" / "b.wav")
    assert entries[2]["audio_filepath"] == "/abs/c.wav"
    assert [e["id"] for e in entries] == ["a", "b", "custom"]
    utts = load_utterances(path)
    assert [u.duration for u in utts] == [1.0, 1.5, 2.0] and [u.text for u in utts] == ["A", "B", "C"]


# ---------------------------------------------------------------------------------------------- config


def test_config_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as err:
        load_config(None, REQUIRED + ["model.rnn.cel=gru"])
    message = str(err.value)
    assert one_line(message)
    assert "model.rnn.cel" in message
    valid = message.split("valid keys:", 1)[1]
    for key in ("model.rnn.cell", "model.rnn.hidden_size", "train.max_epochs", "data.train_manifest"):
        assert key in valid


def test_config_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("model:\n  rnn:\n    cel: gru\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, REQUIRED)
    assert str(path) in str(err.value) and "model.rnn.cell" in str(err.value)


@pytest.mark.parametrize("override", ["model.rnn.hidden_size=abc", "train.amp=maybe", "optim.lr=fast"])
def test_config_bad_value_type(override):
    with pytest.raises(ConfigError) as err:
        load_config(None, REQUIRED + [override])
    assert override.split("=")[0] in str(err.value)
    assert one_line(str(err.value))


@pytest.mark.parametrize("given, missing", [([], ["data.dev_manifest", "data.train_manifest"]),
                                            (["data.train_manifest=x"], ["data.dev_manifest"])])
def test_config_missing_required_key(given, missing):
    with pytest.raises(ConfigError) as err:
        load_config(None, given)
    for key in missing:
        assert key in str(err.value)
    if len(missing) == 1:
        assert "data.train_manifest" not in str(err.value)


def test_config_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml", REQUIRED)


def test_config_overrides_apply():
    config = load_config(None, TINY + ["model.rnn.cell=gru"])
    assert config.model.rnn.cell == "gru" and config.model.rnn.hidden_size == 16 and config.model.conv_channels == 4


def test_config_malformed_yaml_is_a_config_error(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError):
        load_config(path, REQUIRED)


@pytest.mark.parametrize("override", ["model.rnn.cell=lstmm", "features.kind=plp"])
def test_config_bad_choice_is_a_config_error(override):
    with pytest.raises(ConfigError):
        load_config(None, REQUIRED + [override])


# ---------------------------------------------------------------------------------------------- CLI / bundles


def run_cli(*args, cwd=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def assert_one_clean_error(result, code=2):
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    config = load_config(None, TINY)
    tokenizer = Tokenizer.build(["HELLO WORLD", "YES NO"], config.text)
    torch.manual_seed(0)
    model = build_speech_model(len(tokenizer), config.model, config.features, None)
    path = folder / "model.pt"
    save_bundle(path, model.state_dict(), to_dict(config), tokenizer.to_dict())
    return path


@pytest.fixture(scope="module")
def not_bundles(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notbundle")
    text = folder / "readme.txt"
    text.write_text("just some text\n")
    pickled = folder / "object.pkl"
    with open(pickled, "wb") as out:
        pickle.dump({"weights": [1.0, 2.0], "when": complex(1, 2)}, out)
    return {"text": text, "pickle": pickled}


@pytest.mark.parametrize("command", ["eval", "transcribe"])
def test_cli_refuses_pickle_that_is_not_a_bundle(not_bundles, command, tmp_path):
    path = not_bundles["pickle"]
    result = run_cli(command, path, tmp_path / "whatever.jsonl" if command == "eval" else tmp_path / "x.wav")
    line = assert_one_clean_error(result)
    assert str(path) in line and "not a speechrnn model bundle" in line




@pytest.mark.parametrize("content", ["just some text\n", "hello", "a,b,c\n1,2,3\n"])
def test_load_bundle_refuses_text_file(tmp_path, content):
    path = tmp_path / "notes.txt"
    path.write_text(content)
    with pytest.raises(BundleError):
        load_bundle(path)


@pytest.mark.parametrize("command", ["eval", "transcribe"])
def test_cli_refuses_text_file_as_bundle(not_bundles, command, tmp_path):
    """(transcribe takes a first item that is neither a model's name, .pt nor torch.save's format as an input;
    --model names the model whatever it is)"""
    path = not_bundles["text"]
    result = run_cli(command, path, tmp_path / "whatever.jsonl") if command == "eval" else \
        run_cli(command, "--model", path, tmp_path / "x.wav")
    line = assert_one_clean_error(result)
    assert str(path) in line


@pytest.mark.parametrize("content", [b"", b"\x00" * 64, b"PK\x03\x04garbage"])
def test_load_bundle_refuses_other_non_bundles(tmp_path, content):
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(BundleError) as err:
        load_bundle(path)
    assert str(path) in str(err.value) and one_line(str(err.value))


def test_load_bundle_refuses_torch_file_without_marker(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": {"w": torch.zeros(2)}}, path)
    with pytest.raises(BundleError, match="marker"):
        load_bundle(path)


def test_cli_refuses_bundle_of_another_version(bundle, tmp_path):
    state = torch.load(bundle, map_location="cpu", weights_only=True)
    assert state["format"] == FORMAT and state["version"] == VERSION
    state["version"] = VERSION + 1
    newer = tmp_path / "newer.pt"
    torch.save(state, newer)
    line = assert_one_clean_error(run_cli("transcribe", newer, tmp_path / "x.wav"))
    assert str(newer) in line
    assert f"version {VERSION + 1}" in line and "not supported" in line


def test_load_model_refuses_incomplete_bundle(tmp_path):
    from speechrnn.bundle import load_model

    path = tmp_path / "incomplete.pt"
    torch.save({"format": FORMAT, "version": VERSION}, path)
    with pytest.raises(BundleError):
        load_model(path)


def test_cli_transcribe_good_and_missing(bundle, audio_files, shared_data, tmp_path):
    an4 = sorted((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav"))[0]
    missing = tmp_path / "missing.wav"
    result = run_cli("transcribe", bundle, an4, missing, audio_files["good"])
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    out_lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in out_lines] == [str(an4), str(audio_files["good"])]
    assert all(line.count("\t") == 1 for line in out_lines)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0]
    assert f"1 of 3 input(s) failed: {missing}" in result.stderr


# ---------------------------------------------------------------------------------------------- too short for CTC


@pytest.mark.parametrize("tokens, needed", [([], 0), ([1], 1), ([1, 2, 3], 3), ([1, 1], 3), ([1, 1, 1], 5),
                                            ([1, 2, 1], 3), ([2, 2, 3, 3, 3, 2], 9)])
def test_ctc_frames_needed_counts_repeats(tokens, needed):
    assert ctc_frames_needed(tokens) == needed


def test_keep_trainable_drops_and_counts_short_and_empty(capsys):
    tokenizer = Tokenizer.build(["ABC"], TextConfig())
    # no conv: output frames = samples // 160 + 1; 0.05 s = 800 samples -> 6 frames
    model = build_speech_model(len(tokenizer), ModelConfig(conv_channels=0, rnn=RNNConfig(hidden_size=4, num_layers=1)),
                               FeatureConfig(), None)
    assert int(model.output_lengths(torch.tensor([800]))[0]) == 6
    utts = [
        Utterance("fits", "x.wav", 0.05, "AABC"),      # 4 + 1 repeat = 5 <= 6
        Utterance("exact", "x.wav", 0.05, "ABABAB"),   # 6 == 6
        Utterance("repeats", "x.wav", 0.05, "AABBC"),  # 5 + 2 repeats = 7 > 6
        Utterance("long", "x.wav", 0.05, "ABCABCA"),   # 7 > 6
        Utterance("empty", "x.wav", 1.0, " ?! "),      # nothing left after normalisation
        Utterance("ok", "x.wav", 1.0, "ABC CBA"),
    ]
    kept = keep_trainable(AudioDataset(utts, tokenizer, 16000), tokenizer, model, "train.jsonl")
    assert [u.id for u in kept.utterances] == ["fits", "exact", "ok"]
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("warning: train.jsonl:")
    assert "1 sample(s) with empty text" in err[0] and "2 too short" in err[0]


def test_keep_trainable_with_conv_subsampling_is_silent_when_all_fit(capsys):
    tokenizer = Tokenizer.build(["AB"], TextConfig())
    config = load_config(None, TINY)
    model = build_speech_model(len(tokenizer), config.model, config.features, None)
    # conv: 1 s -> 101 frames -> 51 -> 26 output frames
    utts = [Utterance("a", "x.wav", 1.0, "AB" * 13), Utterance("b", "x.wav", 1.0, "AB" * 13 + "A")]
    kept = keep_trainable(AudioDataset(utts, tokenizer, 16000), tokenizer, model, "dev.jsonl")
    assert [u.id for u in kept.utterances] == ["a"]
    assert "0 sample(s) with empty text and 1 too short" in capsys.readouterr().err
    kept = keep_trainable(AudioDataset(utts[:1], tokenizer, 16000), tokenizer, model, "dev.jsonl")
    assert len(kept) == 1 and capsys.readouterr().err == ""
