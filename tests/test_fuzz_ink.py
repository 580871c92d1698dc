"""Hostile and careless ink (issue 15, item 6): generated bad inks pushed through every reader, through
`speechrnn transcribe` and through the serve API. Each bad item gets one line (CLI) or a 4xx JSON error (serve),
never a traceback, a 500 or minutes of work, and the good items around it come out as they do alone.

Limits: at most max_ink_points() points per ink (default 100,000; SPEECHRNN_MAX_INK_POINTS), raw or once
resampled, and JSON nested at most MAX_JSON_DEPTH deep, checked before parsing."""

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from speechrnn.ink import (DEFAULT_MAX_POINTS, MAX_JSON_DEPTH, Ink, InkError, InkTooLarge, check_ink,
                           check_json_depth, ink_features, ink_from_dict, max_ink_points, read_iam_ondb, read_ink,
                           read_inkml, read_json, set_max_ink_points)

REPO = Path(__file__).resolve().parents[1]
DEEP = 100_000  # nesting that made json.loads raise RecursionError


@pytest.fixture
def small_limit():
    set_max_ink_points(1000)
    yield 1000
    set_max_ink_points(None)


def zigzag(n: int) -> list[list[float]]:
    return [[float(i), float(i % 7), i / 100.0] for i in range(n)]


def bad_inks() -> dict[str, bytes]:
    """File name -> content of inks that must be refused with one line each (under a limit of 1000 points)."""
    over = {"strokes": [zigzag(600), zigzag(600)]}
    return {
        "deep.json": b"[" * DEEP + b"]" * DEEP,
        "deep_strokes.json": b'{"strokes": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        "deep_object.json": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        "over.json": json.dumps(over).encode(),
        "not_json.json": b"{strokes: [[1, 2]]",
        "latin1.json": b'{"strokes": [[[1, 2], [3, 4]]], "text": "\xe9"}',
        "nan.json": b'{"strokes": [[[1, 2], [NaN, 4]]]}',
        "ragged.json": b'{"strokes": [[[1, 2], [3, 4, 5, 6]]]}',
        "text_points.json": b'{"strokes": [[["a", "b"], [3, 4]]]}',
        "strokes_object.json": b'{"strokes": {"0": [[1, 2]]}}',
        "one_point.json": b'{"strokes": [[[1, 2]]]}',
        "list.json": b"[1, 2, 3]",
        "empty.json": b"",
        "over.inkml": ('<ink xmlns="http://www.w3.org/2003/InkML"><trace>'
                       + ", ".join(f"{i} {i % 5}" for i in range(1500)) + "</trace></ink>").encode(),
        "broken.inkml": b"<ink><trace>1 2, 3",
        "over.xml": ("<WhiteboardCaptureSession><StrokeSet><Stroke>"
                     + "".join(f'<Point x="{i}" y="{i % 5}" time="{i / 100}"/>' for i in range(1500))
                     + "</Stroke></StrokeSet></WhiteboardCaptureSession>").encode(),
    }


# ---------------------------------------------------------------------------------------------------- readers

def test_default_limit_and_its_override(monkeypatch):
    assert max_ink_points() == DEFAULT_MAX_POINTS == 100_000
    with pytest.raises(InkTooLarge, match=r"big: 100,001 points, over the limit of 100,000 .*SPEECHRNN_MAX_INK_POINTS"):
        ink_from_dict({"strokes": [[[0, i % 3] for i in range(100_001)]]}, "big")
    check_ink(Ink([np.zeros((100_000, 2))]), "at the limit")  # taken
    monkeypatch.setenv("SPEECHRNN_MAX_INK_POINTS", "50")
    assert max_ink_points() == 50
    monkeypatch.setenv("SPEECHRNN_MAX_INK_POINTS", "lots")
    with pytest.raises(InkError, match="SPEECHRNN_MAX_INK_POINTS='lots' is not a number"):
        max_ink_points()


def test_every_reader_enforces_the_limit(tmp_path, small_limit):
    inks = bad_inks()
    for name, message in (("over.json", "1,200 points, over the limit of 1,000"),
                          ("over.inkml", "points or more, over the limit of 1,000"),
                          ("over.xml", "points or more, over the limit of 1,000")):
        path = tmp_path / name
        path.write_bytes(inks[name])
        with pytest.raises(InkTooLarge, match=message):
            read_ink(path)
    # UNIPEN: the limit is checked per segment (check_ink), a whole data file holds many words
    with pytest.raises(InkTooLarge, match="seg: 1,001 points"):
        check_ink(Ink([np.zeros((1001, 2))]), "seg")


def test_json_depth_refused_before_parsing(tmp_path):
    for name in ("deep.json", "deep_strokes.json", "deep_object.json"):
        path = tmp_path / name
        path.write_bytes(bad_inks()[name])
        with pytest.raises(InkError, match=f"nested more than {MAX_JSON_DEPTH} deep"):
            read_json(path)
    check_json_depth(b'{"strokes": [[[1, 2]]], "text": "' + b"[" * 1000 + b'"}', "x")  # brackets in a string
    with pytest.raises(InkError, match="nested more than 3 deep"):
        check_json_depth(b"[[[[]]]]", "x", limit=3)


def test_long_pen_path_refused_before_resampling(small_limit):
    scribble = Ink([np.array([[1000.0 * (k % 2), k % 3] for k in range(21)])], source="scribble.json")  # 21 points
    with pytest.raises(InkTooLarge, match=r"scribble.json: [\d,]+ points once resampled"):  # back and forth 20x
        ink_features(scribble)


def test_bad_inkml_is_one_line(tmp_path):
    path = tmp_path / "broken.inkml"
    path.write_bytes(bad_inks()["broken.inkml"])
    with pytest.raises(InkError) as err:
        read_inkml(path)
    assert "\n" not in str(err.value)
    path = tmp_path / "x.xml"
    path.write_bytes(b"<StrokeSet><Stroke><Point x='1'/></Stroke></StrokeSet>")
    with pytest.raises(InkError, match="numeric x and y"):
        read_iam_ondb(path)


# ---------------------------------------------------------------------------------------------------- CLI

def good_inks(unipen_words) -> dict[str, bytes]:
    return {f"good{k}.json": json.dumps({"strokes": [s.tolist() for s in unipen_words[k].ink.strokes]}).encode()
            for k in (0, 1)}


def transcribe(paths: list[Path]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SPEECHRNN_MAX_INK_POINTS": "1000"}
    return subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", *map(str, paths)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_transcribe_reports_each_bad_ink_and_goes_on(tmp_path, unipen_words):
    files = {**good_inks(unipen_words), **bad_inks()}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    alone = transcribe([tmp_path / "good0.json", tmp_path / "good1.json"])
    assert alone.returncode == 0, alone.stderr
    order = ["good0.json", *bad_inks(), "good1.json"]
    mixed = transcribe([tmp_path / name for name in order])
    assert "Traceback" not in mixed.stderr and mixed.returncode == 1, mixed.stderr[-3000:]
    assert mixed.stdout == alone.stdout  # the good inks' results, unchanged
    errors = [line for line in mixed.stderr.splitlines() if line.startswith("error: ")]
    for name in bad_inks():
        mine = [line for line in errors if f"{tmp_path / name}:" in line]
        assert len(mine) == 1, (name, errors)
    assert len(errors) == len(bad_inks())


# ---------------------------------------------------------------------------------------------------- serve

@pytest.fixture(scope="module")
def ink_server():
    from speechrnn.pretrained import default_bundle
    from speechrnn.serve import load_models, make_server

    server = make_server(load_models([str(default_bundle("ink"))]), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.url
    server.shutdown()
    server.server_close()


def post_ink(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url + "api/ink", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_serve_answers_bad_ink_with_4xx_and_goes_on(ink_server, unipen_words, small_limit):
    good = good_inks(unipen_words)["good0.json"]
    status, before = post_ink(ink_server, good)
    assert status == 200, before
    for name, body in bad_inks().items():
        if name.endswith(".json"):
            status, answer = post_ink(ink_server, body)
            assert 400 <= status < 500 and "\n" not in answer["error"], (name, status, answer)
            if name.startswith("deep"):
                assert status == 400 and f"nested more than {MAX_JSON_DEPTH} deep" in answer["error"], answer
            if name == "over.json":
                assert status == 413 and "over the limit of 1,000" in answer["error"], answer
    status, after = post_ink(ink_server, good)
    assert status == 200 and after["text"] == before["text"]
