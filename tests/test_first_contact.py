"""What a new user does first with `speechrnn transcribe`: pipe audio into `-`, use whisper's option names
(--model, -o/--output_dir, -f/--output_format, --device auto, --threads), and get one line when options contradict
or a device is missing."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

AN4_WAVS = sorted((Path(__file__).resolve().parents[2] / "shared" / "data" / "an4").rglob("*.wav"))[:2]
pytestmark = pytest.mark.skipif(not AN4_WAVS, reason="needs ../shared/data/an4")


def transcribe(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", *map(str, args)], input=stdin,
                          capture_output=True, timeout=300)


def test_audio_piped_into_dash_is_transcribed_like_the_file():
    wav = AN4_WAVS[0]
    piped = transcribe("-", stdin=wav.read_bytes())
    named = transcribe(wav)
    assert piped.returncode == 0 and named.returncode == 0, piped.stderr
    assert piped.stdout.decode() == "-\t" + named.stdout.decode().split("\t", 1)[1]
    listed = transcribe("-", stdin=f"{AN4_WAVS[0]}\n{AN4_WAVS[1]}\n".encode())
    assert listed.returncode == 0 and len(listed.stdout.decode().splitlines()) == 2
    garbage = transcribe("-", stdin=b"\xff\xfe\x00\x01")
    errors = [line for line in garbage.stderr.decode().splitlines() if line.startswith("error:")]
    assert garbage.returncode == 2 and len(errors) == 1 and b"Traceback" not in garbage.stderr


def test_whisper_option_names_and_the_old_spellings_agree(tmp_path):
    new = transcribe("--model", "an4", AN4_WAVS[0], "-o", tmp_path / "new", "-f", "json", "--threads", "1",
                     "--device", "auto")
    old = transcribe("an4", AN4_WAVS[0], "--output", tmp_path / "old", "--format", "json")
    assert new.returncode == 0 and old.returncode == 0, new.stderr
    name = f"{AN4_WAVS[0].stem}.json"
    assert json.loads((tmp_path / "new" / name).read_text()) == json.loads((tmp_path / "old" / name).read_text())
    underscore = transcribe(AN4_WAVS[0], "--output_dir", tmp_path / "third", "--output_format", "txt")
    assert underscore.returncode == 0 and (tmp_path / "third" / f"{AN4_WAVS[0].stem}.txt").is_file()


@pytest.mark.parametrize("args, says", [
    (["--greedy", "--hotword", "YES"], "--greedy decodes without beam search"),
    (["-o", "subtitles.srt", "-f", "srt"], "looks like a file name"),
    (["--model", "an5"], "nor a shipped model's name"),
])
def test_contradictions_and_mistakes_are_one_line(args, says, tmp_path):
    run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", *args, str(AN4_WAVS[0])],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1 and says in errors[0], run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "subtitles.srt").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without a GPU")
def test_a_missing_gpu_is_one_line():
    run = transcribe(AN4_WAVS[0], "--device", "cuda")
    lines = run.stderr.decode().splitlines()
    assert run.returncode == 2 and lines[-1].startswith("error: device 'cuda': this machine has no CUDA GPU"), lines
    assert b"Traceback" not in run.stderr


def test_verbose_shows_or_hides_the_progress_bar():
    shown = transcribe("--verbose", "True", *AN4_WAVS)
    hidden = transcribe("--verbose", "False", *AN4_WAVS)
    default = transcribe(*AN4_WAVS)  # stderr is not a terminal here: no bar
    assert shown.returncode == hidden.returncode == default.returncode == 0
    assert b"file/s" in shown.stderr and b"file/s" not in hidden.stderr and b"file/s" not in default.stderr
    assert shown.stdout == hidden.stdout == default.stdout
