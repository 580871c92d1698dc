"""README's "Using it" block and its Python example, run line by line in a scratch folder against the installed
package (the `speechrnn` command on PATH), with the files they name made there from AN4 and UNIPEN: the README
cannot drift from the code."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]


def block(marker: str, language: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", text, re.S).group(1)


def commands() -> list[str]:
    """The block's command lines, comments dropped."""
    lines = [line.split("  #", 1)[0].strip() for line in block("using-it", "bash").splitlines()]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def scratch(shared_data, unipen_words, tmp_path_factory) -> Path:
    """A folder holding what the README names: some.wav, other.flac, recordings/, a/x.wav, b/x.wav, word.json."""
    from speechrnn.ink import ink_to_dict

    folder = tmp_path_factory.mktemp("readme")
    wavs = sorted((shared_data / "an4" / "wav" / "an4test_clstk").glob("*/*.wav"))[:3]
    shutil.copy(wavs[0], folder / "some.wav")
    samples, rate = soundfile.read(wavs[1], dtype="float32")
    soundfile.write(folder / "other.flac", samples, rate)
    for name, wav in (("recordings/one.wav", wavs[1]), ("recordings/two.wav", wavs[2]), ("a/x.wav", wavs[1]),
                      ("b/x.wav", wavs[2])):
        (folder / name).parent.mkdir(exist_ok=True)
        shutil.copy(wav, folder / name)
    (folder / "word.json").write_text(json.dumps(ink_to_dict(unipen_words[0].ink)))
    return folder


def test_the_block_is_read():
    assert len(commands()) >= 10 and all(line.startswith(("speechrnn ", "cat ")) for line in commands())


@pytest.mark.parametrize("command", commands())
def test_every_using_it_command_runs(scratch, command):
    if "--onnx" in command:
        pytest.importorskip("onnxruntime")
    run = subprocess.run(["bash", "-c", command], cwd=scratch, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, f"{command}\n{run.stderr}"
    assert "Traceback" not in run.stderr and "error:" not in run.stderr, run.stderr


def test_the_python_example_runs(scratch):
    run = subprocess.run([sys.executable, "-c", block("python-example", "python")], cwd=scratch, capture_output=True,
                         text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 3 and lines[0] and lines[1].startswith(lines[0])  # the same file, then with its words
