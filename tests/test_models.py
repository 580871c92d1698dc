"""Shipped models by name: `speechrnn models` lists them, every command that takes a bundle file takes a name, and
`speechrnn.load(name)` gives a Recognizer (whisper's `load_model` in spirit)."""

import subprocess
import sys
from pathlib import Path

import pytest

import speechrnn
from speechrnn.bundle import load_bundle
from speechrnn.errors import BundleError
from speechrnn.pretrained import MODELS, resolve

AN4_WAV = next(iter(sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "an4").rglob("*.wav"))), None)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechrnn", *args], capture_output=True, text=True, timeout=300)


def test_models_lists_every_shipped_model_without_torch():
    listed = run("models")
    assert listed.returncode == 0, listed.stderr
    for model in MODELS.values():
        assert f"{model.name}: {model.modality}" in listed.stdout and model.knows in listed.stdout
    loads_torch = subprocess.run([sys.executable, "-c", "import sys; from speechrnn.cli import main\n"
                                  "main(['models']); print('torch' in sys.modules)"], capture_output=True, text=True)
    assert loads_torch.stdout.splitlines()[-1] == "False"


def test_a_name_stands_for_the_shipped_bundle_and_a_file_comes_first(tmp_path, monkeypatch):
    assert resolve("an4") == MODELS["an4"].path
    assert load_bundle("unipen")["config"]["modality"] == "ink"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "an4").write_bytes(b"not a bundle")
    assert resolve("an4") == Path("an4")  # a file of that name is what the user means
    with pytest.raises(BundleError, match="no such model bundle, nor a shipped model's name"):
        load_bundle("an5")


@pytest.mark.skipif(AN4_WAV is None, reason="needs ../shared/data/an4")
def test_load_by_name_transcribes_a_path_like_the_command_line():
    recognizer = speechrnn.load("an4")
    result = recognizer.transcribe(str(AN4_WAV))
    cli = run("transcribe", "an4", str(AN4_WAV))
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.strip() == f"{AN4_WAV}\t{result.text}"
