"""`speechrnn serve` with a writer: POST /api/write and the page's Write panel.

The server runs in this process (make_server on a free port) with a tiny untrained synthesis bundle built here:
it writes scribbles, but real ones, through the real write(). The browser test needs Debian's `chromium` and
`chromium-driver` and the `selenium` package, as tests/test_serve.py's do (skipped without them, unless
SPEECHRNN_REQUIRE_BROWSER is set).
"""

import json
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import pytest

from test_serve import ARTIFACTS, chrome

STYLE = {"strokes": [[[10, 40, 0.0], [14, 30, 0.02], [18, 40, 0.04], [22, 30, 0.06]],
                     [[30, 40, 0.2], [34, 30, 0.22], [38, 40, 0.24]]], "y_down": True}


# ---------------------------------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def writer_bundle(tmp_path_factory) -> Path:
    """A tiny untrained synthesis bundle that writes a-z and spaces."""
    import torch

    from speechrnn.bundle import save_bundle
    from speechrnn.config import to_dict
    from speechrnn.tasks.lm.model import Alphabet
    from speechrnn.tasks.synthesis.model import HandwritingSynthesis, SynthConfig

    torch.manual_seed(0)
    config = SynthConfig()
    config.model.hidden_size, config.model.mixtures, config.model.window_mixtures = 16, 2, 2
    config.data.train_manifest = config.data.dev_manifest = "unused.jsonl"
    alphabet = Alphabet(["\n", "\ufffd", " ", *"abcdefghijklmnopqrstuvwxyz"])
    model = HandwritingSynthesis(len(alphabet), config.model)
    path = tmp_path_factory.mktemp("writer") / "tiny-writer.pt"
    save_bundle(path, model.state_dict(), to_dict(config), {"alphabet": alphabet.chars}, extra={"task": "synthesis"})
    return path


@pytest.fixture(scope="module")
def writer(writer_bundle):
    from speechrnn.tasks.synthesis.inference import load_writer

    return load_writer(writer_bundle)


class FakeInkRecognizer:
    """Reads every ink as `text`, as a handwriting Recognizer answers a batcher."""

    config = SimpleNamespace(modality="ink")
    tokenizer = SimpleNamespace(symbols=["<blank>", *"abcdefghijklmnopqrstuvwxyz"])
    decoder, split_over = None, 30.0

    def __init__(self, text: str):
        self.text, self.read = text, 0

    def load_input(self, ink):
        return ink

    def transcribe_inputs(self, inputs, timestamps=False):
        from speechrnn.output import Transcript

        self.read += len(inputs)
        return [Transcript("", self.text, [], 1.0) for _ in inputs]


@contextmanager
def running(models: dict):
    """A DemoServer with `models` serving in a thread; yields its URL."""
    from speechrnn.serve import make_server

    server = make_server(models, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def url(writer):
    with running({"writer": ("tiny-writer.pt", writer)}) as base:
        yield base


def post(url: str, body, content_type: str = "application/json") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def one_line_error(status: int, answer: dict, expected: int) -> str:
    assert status == expected, (status, answer)
    assert set(answer) == {"error"} and answer["error"] and "\n" not in answer["error"], answer
    return answer["error"]


# ---------------------------------------------------------------------------------------------------- API

def test_models_describe_the_writer(url):
    models = get(url + "api/models")
    assert models["audio"] is None and models["ink"] is None
    writer = models["writer"]
    assert writer["bundle"] == "tiny-writer.pt" and writer["writes"] == "abcdefghijklmnopqrstuvwxyz"
    assert writer["spaces"] is True and writer["max_chars"] == 200 and writer["default_bias"] == 1.0
    assert writer["how"].startswith("Type a few words") and "abc" in writer["knows"]


def test_write_returns_strokes(url):
    status, answer = post(url + "api/write", {"text": "  ab  ", "bias": 2.0, "seed": 3})
    assert status == 200, answer
    assert answer["text"] == "ab" and isinstance(answer["finished"], bool) and answer["seconds"] >= 0
    strokes = answer["strokes"]
    assert strokes and all(len(stroke) >= 1 for stroke in strokes)
    assert all(len(point) == 2 and all(isinstance(v, (int, float)) for v in point)
               for stroke in strokes for point in stroke)
    assert strokes[0][0] == [0.0, 0.0]  # the first point, where the writing starts
    assert sum(map(len, strokes)) <= 40 + 40 * 2 + 1  # write()'s cap for two characters


def test_same_seed_same_strokes(url):
    body = {"text": "ba", "seed": 7, "temperature": 1.0}
    first, second = post(url + "api/write", body), post(url + "api/write", body)
    assert first[0] == second[0] == 200
    assert first[1]["strokes"] == second[1]["strokes"]
    other = post(url + "api/write", {**body, "seed": 8})
    assert other[0] == 200 and other[1]["strokes"] != first[1]["strokes"]


def test_bad_requests_get_400_in_one_line(url):
    write = url + "api/write"
    assert "empty" in one_line_error(*post(write, {"text": "   "}), 400)
    error = one_line_error(*post(write, {"text": "ab!"}), 400)
    assert "'!'" in error and "cannot write" in error
    assert "more than 200" in one_line_error(*post(write, {"text": "a" * 201}), 400)
    assert '"text"' in one_line_error(*post(write, {"bias": 1}), 400)
    assert "not JSON" in one_line_error(*post(write, b"{text"), 400)
    for body, field in (({"text": "a", "bias": 11}, "bias"), ({"text": "a", "bias": -0.5}, "bias"),
                        ({"text": "a", "bias": "1"}, "bias"), ({"text": "a", "temperature": 2.5}, "temperature"),
                        ({"text": "a", "seed": 1.5}, "seed"), ({"text": "a", "seed": -1}, "seed"),
                        ({"text": "a", "seed": True}, "seed"), ({"text": "a", "sead": 1}, "sead")):
        assert field in one_line_error(*post(write, body), 400), body
    assert "application/json" in one_line_error(*post(write, b"hello", "text/plain"), 415)
    assert "y_down" in one_line_error(*post(write, {"text": "a", "style": {"strokes": STYLE["strokes"]},
                                                   "style_text": "ab"}), 400)
    assert "no strokes" in one_line_error(*post(write, {"text": "a", "style": {"strokes": []}}), 400)


def test_style_without_a_recognizer_needs_its_text(url):
    error = one_line_error(*post(url + "api/write", {"text": "ab", "style": STYLE}), 400)
    assert "no handwriting recognizer" in error and "style_text" in error


def test_write_in_a_style(url):
    body = {"text": "ba", "seed": 1, "style": STYLE, "style_text": "ab"}
    status, answer = post(url + "api/write", body)
    assert status == 200, answer
    assert answer["text"] == "ba" and answer["style_text"] == "ab" and answer["strokes"]
    assert post(url + "api/write", body)[1]["strokes"] == answer["strokes"]  # the same seed, the same ink
    plain = post(url + "api/write", {"text": "ba", "seed": 1})[1]
    assert plain["strokes"] != answer["strokes"]  # primed by the sample: written differently
    error = one_line_error(*post(url + "api/write", {**body, "style_text": "a?"}), 400)
    assert "'?'" in error


def test_style_read_by_the_recognizer(writer):
    reader = FakeInkRecognizer("ab")
    with running({"writer": ("tiny-writer.pt", writer), "ink": ("fake.pt", reader)}) as base:
        status, answer = post(base + "api/write", {"text": "ba", "style": STYLE})
        assert status == 200 and answer["style_text"] == "ab" and reader.read == 1, answer
        reader.text = "AB"  # read as what the writer cannot write: ask for the text
        error = one_line_error(*post(base + "api/write", {"text": "ba", "style": STYLE}), 400)
        assert "'AB'" in error and "style_text" in error
        reader.text = ""
        assert "could not be read" in one_line_error(*post(base + "api/write", {"text": "ba", "style": STYLE}), 400)


def test_no_writer_loaded():
    reader = FakeInkRecognizer("ab")
    with running({"ink": ("fake.pt", reader)}) as base:
        assert get(base + "api/models")["writer"] is None
        error = one_line_error(*post(base + "api/write", {"text": "ab"}), 404)
        assert "no writer" in error and "speechrnn serve unipen-writer" in error


def test_load_models_takes_a_synthesis_bundle_as_the_writer(writer_bundle, monkeypatch):
    from speechrnn import pretrained, serve
    from speechrnn.errors import UserError

    models = serve.load_models([str(writer_bundle)], device="cpu")
    assert list(models) == ["writer"] and models["writer"][0] == "tiny-writer.pt"
    assert models["writer"][1].alphabet.chars[2] == " "
    with pytest.raises(UserError, match="a second writer"):
        serve.load_models([str(writer_bundle), str(writer_bundle)], device="cpu")
    # served by default when the install has it, and not when it lacks it
    monkeypatch.setitem(pretrained.MODELS, serve.WRITER, SimpleNamespace(path=writer_bundle, knows="a test writer"))
    assert serve.default_writer() == writer_bundle
    monkeypatch.setitem(pretrained.MODELS, serve.WRITER, SimpleNamespace(path=writer_bundle.with_name("none.pt")))
    assert serve.default_writer() is None
    monkeypatch.delitem(pretrained.MODELS, serve.WRITER)
    assert serve.default_writer() is None


def test_writers_take_turns(url):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda seed: post(url + "api/write", {"text": "ab", "seed": seed}), (5, 5, 6)))
    assert [status for status, _ in answers] == [200, 200, 200], answers
    assert answers[0][1]["strokes"] == answers[1][1]["strokes"] != answers[2][1]["strokes"]


# ---------------------------------------------------------------------------------------------------- browser

@pytest.fixture(scope="module")
def browser():
    yield from chrome()


def test_write_in_the_browser(writer, browser):
    """Type words, press Write: the strokes are drawn on the Write canvas point by point (the page's `writing`
    counts the points drawn) until all are; an unknown character is shown as an error in the panel; a sample
    written on the handwriting canvas, with what it says, is sent as the style (Write in my style); at phone
    width nothing overflows."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def message() -> str:
        return browser.find_element(By.ID, "write-message").text

    reader = FakeInkRecognizer("ab")
    with running({"writer": ("tiny-writer.pt", writer), "ink": ("fake.pt", reader)}) as url:
        browser.set_window_size(1100, 1000)
        browser.get(url)
        WebDriverWait(browser, 20).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))
        assert "tiny-writer.pt" in browser.find_element(By.ID, "write-model").text
        box = browser.find_element(By.ID, "write-text")
        box.send_keys("ab")
        browser.find_element(By.ID, "write-go").click()
        WebDriverWait(browser, 30).until(
            lambda b: b.execute_script("return document.getElementById('write').dataset.state") == "done")
        drawn, total = browser.execute_script("return [writing.drawn, writing.path.length]")
        expected = post(url + "api/write", {"text": "ab", "bias": 1.0, "seed": 0})[1]["strokes"]
        assert drawn == total == sum(map(len, expected)), (drawn, total)
        inked = browser.execute_script("""
            const c = document.getElementById('write-canvas');
            const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
            return n;""")
        assert inked > 50, inked
        assert message().startswith("“ab” written"), message()
        browser.save_screenshot(str(ARTIFACTS / "serve-write.png"))

        box.clear()
        box.send_keys("a1")
        browser.find_element(By.ID, "write-go").click()
        WebDriverWait(browser, 30).until(lambda b: "'1'" in message())
        assert "error" in browser.find_element(By.ID, "write-message").get_attribute("class")

        # a sample on the handwriting canvas, with what it says: Write in my style
        left, top = browser.execute_script("const canvas = document.getElementById('ink-canvas');"
                                           "canvas.scrollIntoView(); const r = canvas.getBoundingClientRect();"
                                           "return [r.left, r.top];")
        pen = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_PEN, "pen"), duration=0)
        for stroke in STYLE["strokes"]:
            pen.pointer_action.move_to_location(int(left + 3 * stroke[0][0]), int(top + 3 * stroke[0][1]))
            pen.pointer_action.pointer_down()
            for x, y, _ in stroke[1:]:
                pen.pointer_action.move_to_location(int(left + 3 * x), int(top + 3 * y))
            pen.pointer_action.pointer_up()
        pen.perform()
        assert browser.execute_script("return ink.strokes.length") == len(STYLE["strokes"])
        box.clear()
        box.send_keys("ba")
        browser.find_element(By.ID, "write-style-text").send_keys("ab")
        browser.find_element(By.ID, "write-style").click()
        WebDriverWait(browser, 30).until(lambda b: message().startswith("“ba” written"))
        assert "in the style of your “ab”" in message() and reader.read == 0  # its text was given: not read
        browser.find_element(By.ID, "write-style-text").clear()
        browser.find_element(By.ID, "write-style").click()
        WebDriverWait(browser, 30).until(lambda b: reader.read == 1 and "your “ab”" in message())  # read by the model

        browser.set_window_size(390, 844)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.execute_script("document.getElementById('write').scrollIntoView()")
        browser.save_screenshot(str(ARTIFACTS / "serve-write-phone.png"))
        browser.set_window_size(1100, 1000)
