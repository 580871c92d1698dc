"""benchmarks/robustness.py: the test conditions keep a waveform usable, and a small run with the shipped bundle on
real AN4 and FSDD files gives a table with every condition's row and percentages."""

import json
import re

import numpy as np
import pytest
import torch

from benchmarks import robustness
from speechrnn.augment import CONDITIONS

RATE = 16000


def speech_like(seconds: float = 1.0) -> torch.Tensor:
    """A voiced-sounding test signal: a 150 Hz harmonic series and a 5 kHz tone (above what 8 kHz keeps) under a
    slow envelope, peak 0.5."""
    t = np.arange(int(seconds * RATE)) / RATE
    harmonics = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 8)) + 0.2 * np.sin(2 * np.pi * 5000 * t)
    wave = harmonics * np.sin(np.pi * t / seconds) ** 2
    return torch.from_numpy((0.5 * wave / np.abs(wave).max()).astype(np.float32))


@pytest.mark.parametrize("name", list(CONDITIONS))
def test_each_condition_keeps_the_waveform_finite_and_of_plausible_length(name):
    wav = speech_like()
    out = CONDITIONS[name][1](wav.clone(), RATE)
    assert out.dim() == 1 and bool(torch.isfinite(out).all())
    if name == "trimmed":  # the envelope's faint ends are cut, the rest kept as it was
        start = int(torch.nonzero(torch.isin(wav, out[:1]))[0])
        assert len(wav) // 2 < len(out) < len(wav) and torch.equal(out, wav[start: start + len(out)])
        return
    padding = {"silence_1s": 2 * RATE, "silence_0.5s": RATE}.get(name, 0)
    assert abs(len(out) - len(wav) - padding) <= RATE // 100, (name, len(out), len(wav) + padding)
    if name == "16k":
        assert torch.equal(out, wav)
    elif not padding:
        assert not torch.allclose(out, wav, atol=1e-4)
    if name == "silence_1s":
        assert torch.equal(out[RATE: RATE + len(wav)], wav) and not out[:RATE].any() and not out[-RATE:].any()
    if name.startswith("white_"):
        snr = 10 * np.log10(float(wav.double().square().mean()) / float((out - wav).double().square().mean()))
        assert abs(snr - float(name[6:8])) < 0.5
    if name == "8k":  # nothing above 4 kHz is left
        def above_4k(x: torch.Tensor) -> float:  # share of the power above 4.1 kHz (1 s: bins are 1 Hz apart)
            power = np.abs(np.fft.rfft(x.numpy())) ** 2
            return float(power[4100:].sum() / power.sum())
        assert above_4k(wav) > 0.01 and above_4k(out) < 1e-4
    if name == "gain_-20db":
        assert torch.allclose(out, wav * 0.1)
    if name == "clipped":
        assert float(out.abs().max()) == pytest.approx(1.0) and (out.abs() >= 0.999).sum() > 10


def test_fsdd_order_spreads_a_limit_over_digits_and_speakers(tmp_path):
    for digit in range(10):
        for speaker in ("ann", "bob"):
            for index in range(3):
                (tmp_path / f"{digit}_{speaker}_{index}.wav").touch()
    (tmp_path / "notes.wav").touch()  # not an FSDD name: left out
    items = robustness.fsdd_items(str(tmp_path), 20)
    assert len(items) == 20 and {i.text for i in items} == set(robustness.DIGITS)
    assert {i.speaker for i in items} == {"ann", "bob"} and all(i.name.endswith("_0") for i in items)
    assert len(robustness.fsdd_items(str(tmp_path), None)) == 60
    with pytest.raises(robustness.UserError, match="no FSDD recordings"):
        robustness.fsdd_items(str(tmp_path / "missing"), None)


def test_small_run_with_the_shipped_bundle(shared_data, tmp_path, capsys):
    an4, fsdd = shared_data / "an4", shared_data / "fsdd" / "recordings"
    if not (an4.is_dir() and fsdd.is_dir()):
        pytest.skip(f"AN4 or FSDD not found under {shared_data}")
    lines = (an4 / "etc" / "an4_test.transcription").read_text().splitlines()
    manifest = tmp_path / "test.jsonl"
    with open(manifest, "w") as f:
        for line in lines[:4]:  # "TEXT (an406-fcaw-b)"; --limit 3 keeps the first 3
            text, utt = re.match(r"(.*) \((\S+)\)$", line.strip()).groups()
            wav = an4 / "wav" / "an4test_clstk" / utt.split("-")[1] / f"{utt}.wav"
            f.write(json.dumps({"audio_filepath": str(wav), "duration": 1.0, "text": text}) + "\n")
    folder = tmp_path / "fsdd"
    folder.mkdir()
    for path in sorted(fsdd.glob("*_0.wav"))[:5]:  # index 0 of digits 0-1: read in place through links
        (folder / path.name).symlink_to(path)
    out = tmp_path / "robust.md"
    assert robustness.main(["--bundles", "an4", "--an4", str(manifest), "--fsdd", str(folder), "--limit", "3",
                            "--conditions", "16k", "white_20db", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.read_text() == text
    assert "1 thread(s)" in text and re.search(r"`an4` = an4 \(shipped\), \d+\.\d MB", text)
    assert "AN4" in text and "3 utterances" in text and "FSDD (3 recordings" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| condition")]
    labels = [row.split(" | ")[0][2:] for row in rows]
    assert labels == ["16k", "white_20db", "as recorded (8 kHz)", "white_20db", "as recorded (8 kHz)", "white_20db"]
    for k, row in enumerate(rows):  # AN4: WER (CER) may pass 100 % with insertions; FSDD: shares and counts
        cells = row.strip("| ").split(" | ")[1:]
        numbers = [float(n) for cell in cells for n in re.findall(r"-?\d+(?:\.\d+)?", cell)]
        # AN4: greedy WER, CER, tuned WER, CER, gated; FSDD: digits, tuned, gated, no word; then george and jackson
        # (--limit 3 takes index 0 of george's 0 and 1 and of jackson's 0)
        assert len(numbers) == [5, 5, 4, 4, 2, 2][k], row
        assert all(0 <= n <= (1000 if k < 2 else 100) for n in numbers), row
    assert "an4 george | an4 jackson |" in text
    clean_an4 = rows[0].strip("| ").split(" | ")
    assert float(clean_an4[2].split()[0]) < 30  # tuned WER of 3 clean AN4 utterances: the model works
    assert clean_an4[3] == "0"  # the gate empties no clean AN4 utterance
