"""Fuzz: generated bad audio mixed with good AN4 utterances, pushed through `speechrnn transcribe` (the shipped AN4
model) in every --format, printed and with --output. Whatever the inputs: no traceback, exactly one `error:` line
per bad input naming it, exit status 1, every other input transcribed, and the good files' results identical to
transcribing each of them alone (issue 15: short clips, FIFOs, outputs)."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
RATE = 16000


def cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", *map(str, args)], env=ENV,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"transcribe {' '.join(map(str, args))} hung")


def wav_bytes(samples: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    import io

    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


def with_rate(data: bytes, rate: int) -> bytes:
    """A PCM wav whose header claims `rate` (the fmt chunk's sample and byte rates)."""
    data = bytearray(data)
    struct.pack_into("<II", data, 24, rate, rate * 2)
    return bytes(data)


def make_bad(folder: Path, speech: np.ndarray) -> list[Path]:
    """Inputs that must each give one error line naming them."""
    rng = np.random.default_rng(15)
    good = wav_bytes(speech)
    nan, inf = speech.copy(), speech.copy()
    nan[100], inf[200] = np.nan, -np.inf
    files = {
        "empty.wav": b"",
        "truncated_header.wav": good[:30],
        "random.wav": rng.bytes(4000),
        "random.mp3": rng.bytes(4000),
        "random.flac": b"fLaC" + rng.bytes(4000),
        "nan.wav": wav_bytes(nan, subtype="FLOAT"),
        "inf.wav": wav_bytes(inf, subtype="FLOAT"),
        "huge_rate.wav": with_rate(good, 2**31 - 1),
        "odd_rate.wav": with_rate(good, 47999),  # a resampling filter of gigabytes: refused
    }
    paths = []
    for name, data in files.items():
        paths.append(folder / name)
        paths[-1].write_bytes(data)
    paths.append(folder / "pipe.wav")
    os.mkfifo(paths[-1])
    paths.append(folder / "folder.wav")  # a directory named like audio, with nothing in it
    paths[-1].mkdir()
    paths.append(folder / "loop.wav")
    paths[-1].symlink_to(paths[-1].name)
    paths.append(folder / "missing.flac")
    return paths


def make_odd(folder: Path, speech: np.ndarray) -> list[Path]:
    """Unusual but valid audio: each gets a result (maybe empty), never an error."""
    files = {
        "one_sample.wav": wav_bytes(speech[:1]),
        "ms50.wav": wav_bytes(speech[len(speech) // 3: len(speech) // 3 + 800]),
        "ms120.wav": wav_bytes(speech[len(speech) // 3: len(speech) // 3 + 1920]),
        "stereo.wav": wav_bytes(np.stack([speech, speech[::-1]], 1)),
        "u8.wav": wav_bytes(speech, subtype="PCM_U8"),
        "s24.wav": wav_bytes(speech, 8000, subtype="PCM_24"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return [folder / name for name in files]


@pytest.fixture(scope="module")
def batch(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("fuzz")
    good = sorted((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav"))[:2]
    speech, _ = soundfile.read(good[0], dtype="float32")
    (folder / "bad").mkdir()
    (folder / "odd").mkdir()
    bad, odd = make_bad(folder / "bad", speech), make_odd(folder / "odd", speech)
    order = np.random.default_rng(0).permutation(len(bad) + len(odd))
    mixed = [good[0]] + [(bad + odd)[i] for i in order] + [good[1]]
    mixed.insert(len(mixed) // 2, good[1])  # a good file twice
    return {"good": good, "bad": bad, "odd": odd, "inputs": mixed, "folder": folder}


@pytest.fixture(scope="module")
def alone(batch) -> dict:
    """Each good file transcribed on its own: its json document, and its srt and vtt subtitles (rendered from the
    document's words: the same words, times to the millisecond, as `--format srt|vtt` of that file prints)."""
    from speechrnn.output import Span, Transcript, render

    results = {}
    for path in batch["good"]:
        run = cli("--format", "json", path)
        assert run.returncode == 0, run.stderr
        (document,) = json.loads(run.stdout)  # on stdout a list, for one input too
        words = [Span(w["word"], w["start"], w["end"], w["confidence"]) for w in document["words"]]
        transcript = Transcript(str(path), document["text"], words, document["duration"])
        results[str(path)] = {"json": document, **{fmt: render(transcript, fmt) for fmt in ("srt", "vtt")}}
    return results


def check_errors(run: subprocess.CompletedProcess, batch) -> None:
    assert "Traceback" not in run.stderr and run.returncode == 1, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    named = {str(bad): [e for e in errors if e.startswith(f"error: {bad}: ")] for bad in batch["bad"]}
    assert all(len(lines) == 1 for lines in named.values()), named
    assert len(errors) == len(batch["bad"]), errors
    assert all(len(e) < 300 for e in errors)  # one line each, not a dump


def transcribed(batch) -> list[str]:
    bad = set(map(str, batch["bad"]))
    return [str(p) for p in batch["inputs"] if str(p) not in bad]


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "json"])
def test_printed_formats(batch, alone, fmt):
    run = cli("--format", fmt, *batch["inputs"])
    check_errors(run, batch)
    if fmt == "txt":
        rows = [line.split("\t") for line in run.stdout.splitlines()]
        documents = [{"path": path, "text": text} for path, text in rows]
    elif fmt == "jsonl":
        documents = [json.loads(line) for line in run.stdout.splitlines()]
    else:
        documents = json.loads(run.stdout)
    assert [d["path"] for d in documents] == transcribed(batch)
    for d in documents:
        if d["path"] in alone:
            expected = alone[d["path"]]["json"]
            assert d == ({k: v for k, v in expected.items() if k in d} if fmt != "json" else expected)


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_output_folder(batch, alone, fmt, tmp_path):
    out = tmp_path / "out"
    run = cli("--format", fmt, "--output", out, *batch["inputs"])
    check_errors(run, batch)
    names = {}  # every input that was transcribed has its own file
    for path in transcribed(batch):
        names.setdefault(Path(path).stem + "." + fmt, set()).add(path)
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for path, expected in alone.items():
        written = (out / f"{Path(path).stem}.{fmt}").read_text()
        assert written == expected[fmt] and written.count(" --> ") >= 1
    assert not list(out.glob(".*"))  # no temporary file left


def test_word_times_of_undecoded_short_clips_without_the_gate(batch, alone):
    """--no-gate: the 1-sample, 50 ms and 120 ms clips are decoded, and their letters timed (align.py spread)."""
    run = cli("--no-gate", "--format", "json", *batch["inputs"])
    check_errors(run, batch)
    documents = json.loads(run.stdout)
    assert [d["path"] for d in documents] == transcribed(batch)
    for d in documents:
        assert len(d.get("words", [])) == len(d["text"].split())
        if d["path"] in alone:
            assert d == {k: v for k, v in alone[d["path"]]["json"].items() if k != "gate"}
