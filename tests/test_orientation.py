"""Which way is up: what each ink format states (Ink.y_down), the recognizer's decision when nothing says, the
transcribe options that override both, and inputs sent to the speech or handwriting model by their content."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechrnn.ink import Ink, InkError, read_iam_ondb, read_ink, read_inkml, read_json, write_json
from speechrnn.pretrained import default_bundle
from speechrnn.recognizer import Recognizer

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
WORDS = 6  # UNIPEN words read three ways


def turned_over(ink: Ink, y_down: bool | None) -> Ink:
    """`ink` (y up) mirrored top to bottom, as a y-down source writes it, stating `y_down` (None: not at all)."""
    return Ink([s * np.array([1.0, -1.0, 1.0][: s.shape[1]]) for s in ink.strokes], ink.text, y_down=y_down)


def test_readers_state_what_their_format_says(tmp_path, capsys):
    xml = tmp_path / "a01-000u-01.xml"  # IAM-OnDB's layout, with a tablet clock glitch of 20 ms
    xml.write_text('<WhiteboardCaptureSession><WhiteboardDescription><SensorLocation corner="top_left"/>'
                   '</WhiteboardDescription><StrokeSet><Stroke colour="black" start_time="1.00" end_time="1.05">'
                   '<Point x="1" y="2" time="1.00"/><Point x="3" y="5" time="1.03"/><Point x="4" y="6" time="1.01"/>'
                   '<Point x="5" y="6" time="1.05"/></Stroke></StrokeSet></WhiteboardCaptureSession>')
    ink = read_iam_ondb(xml)
    assert ink.y_down is True and np.allclose(ink.strokes[0][:, 2], [0.0, 0.03, 0.03, 0.05])
    warning = capsys.readouterr().err.strip()
    assert warning.startswith(f"warning: {xml}: time goes backwards at 1 point(s)") and "\n" not in warning
    for stated, expected in (('orientation="-ve"', False), ('orientation="+ve"', True), ("", None)):
        inkml = tmp_path / "w.inkml"
        inkml.write_text(f'<ink xmlns="http://www.w3.org/2003/InkML"><traceFormat><channel name="X"/>'
                         f'<channel name="Y" {stated}/></traceFormat><trace>0 0, 1 1, 2 0</trace></ink>')
        assert read_inkml(inkml).y_down is expected, stated
    for stated in (True, False, None):
        path = tmp_path / "w.json"
        write_json(Ink([np.array([[0.0, 0.0], [1.0, 2.0]])], y_down=stated), path)
        assert read_json(path).y_down is stated and ("y_down" in path.read_text()) == (stated is not None)
    path.write_text(json.dumps({"strokes": [[[0, 0], [1, 1]]], "y_down": "yes"}))
    with pytest.raises(InkError, match='"y_down" must be true'):
        read_json(path)
    unnamed = tmp_path / "ink_without_extension"  # read by its content
    unnamed.write_text(json.dumps({"strokes": [[[0, 0], [1, 1]]]}))
    assert read_ink(unnamed).num_points == 2


@pytest.fixture(scope="module")
def handwriting():
    return Recognizer.load(default_bundle("ink"), decoding="greedy")


def test_turned_over_ink_reads_the_same_stated_or_not(handwriting, unipen_words):
    words = [w.ink for w in unipen_words[:WORDS]]
    upright = [t.text for t in handwriting.transcribe(words)]
    stated = [t.text for t in handwriting.transcribe([turned_over(ink, True) for ink in words])]
    decided = [t.text for t in handwriting.transcribe([turned_over(ink, None) for ink in words])]
    assert stated == upright and decided == upright, (upright, stated, decided)
    handwriting.orientation = "y-up"  # an override wins over what the ink states: read upside down
    try:
        forced = [t.text for t in handwriting.transcribe([turned_over(ink, True) for ink in words])]
    finally:
        handwriting.orientation = "auto"
    assert sum(a != b for a, b in zip(forced, upright)) >= WORDS // 2, (forced, upright)


def test_transcribe_sends_each_input_to_the_model_of_its_kind(tmp_path, unipen_words, shared_data):
    folder = tmp_path / "inputs"
    folder.mkdir()
    wav = next((shared_data / "yesno").rglob("*.wav"))
    (folder / "speech.wav").write_bytes(wav.read_bytes())
    write_json(turned_over(unipen_words[0].ink, None), folder / "word.json")
    run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(folder), "--format", "jsonl"],
                         env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    read = {Path(r["path"]).name: r["text"] for r in map(json.loads, run.stdout.splitlines())}
    assert set(read) == {"speech.wav", "word.json"} and read["word.json"] == unipen_words[0].label, read
    assert "model: an4" in run.stderr and "model: unipen" in run.stderr
    both = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", "--y-up", "--y-down", str(folder)],
                          env=ENV, capture_output=True, text=True)
    assert both.returncode == 2 and "not allowed with" in both.stderr
