"""`speechrnn mic`: a file of three AN4 test utterances played through the live path (--input --fast) with the
shipped model, and the error lines for a missing sounddevice / PortAudio and for a machine without an input device."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import soundfile

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
FINAL = re.compile(r"^\[\s*([\d.]+) -\s*([\d.]+)\] (.*?)   \(latency ([\d.]+) s\)$")


def mic(*args, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(ENV)
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "speechrnn", "mic", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


def three_utterances(shared_data, folder: Path) -> tuple[Path, list[str], list[tuple[float, float]]]:
    """A wav of three AN4 test utterances with 1 s of silence before each and after the last -> (path, their
    references, their (start, end) seconds)."""
    root = shared_data / "an4"
    refs = {}
    for line in (root / "etc" / "an4_test.transcription").read_text().splitlines():
        match = re.match(r"(.*)\((\S+)\)\s*$", line)
        refs[match.group(2)] = " ".join(match.group(1).split()).upper()
    paths = sorted((root / "wav" / "an4test_clstk" / "fcaw").glob("*.wav"))[:3]
    silence = np.zeros(16000, dtype=np.float32)
    parts, spans, t = [silence], [], 1.0
    for path in paths:
        wav = soundfile.read(path, dtype="float32")[0]
        parts += [wav, silence]
        spans.append((t, t + len(wav) / 16000))
        t += len(wav) / 16000 + 1.0
    soundfile.write(folder / "three.wav", np.concatenate(parts), 16000)
    return folder / "three.wav", [refs[p.stem] for p in paths], spans


def test_mic_input_file_three_utterances(shared_data, tmp_path):
    wav, refs, spans = three_utterances(shared_data, tmp_path)
    proc = mic("--input", wav, "--fast")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    finals = [FINAL.match(line) for line in lines if line.startswith("[")]
    assert len(finals) == 3 and all(finals), proc.stdout
    for match, (start, end) in zip(finals, spans):  # each segment covers its utterance
        assert start - 0.5 < float(match.group(1)) < float(match.group(2)) < end + 0.5
        assert float(match.group(4)) < 10
    hyps = [match.group(3) for match in finals]
    wer = jiwer.wer(refs, hyps)
    assert wer < 0.25, (hyps, wer)
    assert re.match(r"summary: 3 segment\(s\), \d+ word\(s\), 1\d\.\d s of audio .* mean latency [\d.]+ s", lines[-1])
    assert "partial [" in proc.stderr  # partial hypotheses while each segment was open


def test_mic_reads_continuous_speech_as_transcribe_reads_the_file(shared_data, tmp_path):
    """AN4 test utterances joined back to back (about 80 s): `mic --input` is within a point of WER of `transcribe`
    on the same file (both cut it into segments with the same rules)."""
    root = shared_data / "an4"
    refs = {}
    for line in (root / "etc" / "an4_test.transcription").read_text().splitlines():
        match = re.match(r"(.*)\((\S+)\)\s*$", line)
        refs[match.group(2)] = " ".join(match.group(1).split()).upper()
    paths = sorted((root / "wav" / "an4test_clstk").glob("*/*.wav"))[:32]
    soundfile.write(tmp_path / "joined.wav", np.concatenate([soundfile.read(p, dtype="float32")[0] for p in paths]),
                    16000)
    reference = " ".join(refs[p.stem] for p in paths)
    live = mic("--input", tmp_path / "joined.wav", "--fast")
    assert live.returncode == 0, live.stderr
    heard = " ".join(FINAL.match(line).group(3) for line in live.stdout.splitlines() if line.startswith("["))
    read = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(tmp_path / "joined.wav")], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert read.returncode == 0, read.stderr
    from_file = read.stdout.split("\t", 1)[1].strip()
    assert abs(jiwer.wer(reference, heard) - jiwer.wer(reference, from_file)) <= 0.01, (heard, from_file)


def test_mic_ctrl_c_prints_summary(shared_data, tmp_path):
    """At real-time pace, Ctrl-C after the first final text: the open segment is finished and the summary printed."""
    wav, _, _ = three_utterances(shared_data, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "speechrnn", "mic", "--input", str(wav), "--greedy"], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # a test run started in the background inherits SIGINT ignored: Python then never raises
                            # KeyboardInterrupt; give the child the default handling a terminal has
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()  # the first final text, about 5 s in
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert FINAL.match(first.rstrip("\n")), (first, err)
    assert proc.returncode == 0, err
    summary = rest.splitlines()[-1]
    match = re.match(r"summary: (\d) segment\(s\), \d+ word\(s\), ([\d.]+) s of audio", summary)
    assert match and 1 <= int(match.group(1)) <= 2 and float(match.group(2)) < 12, summary


def test_mic_without_sounddevice(tmp_path):
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    proc = mic(pythonpath=tmp_path)
    assert proc.returncode == 2
    assert "pip install 'speechrnn[mic]'" in proc.stderr and "libportaudio2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_mic_without_input_device(tmp_path):
    (tmp_path / "sounddevice.py").write_text(
        "def query_devices(device=None, kind=None):\n"
        "    if kind == 'input':\n"
        "        raise ValueError('No input device matching')\n"
        "    return [{'name': 'HDMI', 'max_input_channels': 0, 'max_output_channels': 2}]\n")
    proc = mic(pythonpath=tmp_path)
    assert proc.returncode == 2
    assert "no audio input device found" in proc.stderr and "--input FILE" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "--input" in mic("--fast").stderr  # --fast is for files
