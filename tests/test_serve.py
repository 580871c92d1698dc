"""`speechrnn serve`: the page in headless Chromium (speech through a fake microphone that plays a real AN4
recording; a real UNIPEN word, and a line composed of three UNIPEN test words, drawn on the canvas with pen
events), and the HTTP API's answers to bad input.

The server runs as the CLI runs it (`python -m speechrnn serve --port 0`), once for the module, with the shipped
models. The browser tests need Debian's `chromium` and `chromium-driver` and the `selenium` package (the dev
extra); without them they are skipped, unless SPEECHRNN_REQUIRE_BROWSER is set (CI sets it), where they fail.
Screenshots of the page go to test-artifacts/ at the repo root.
"""

import importlib.util
import io
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
MAX_UPLOAD_MB = 2
# short AN4 test recordings; the first one the shipped model gets right when sent directly is played to the page
AN4_CLIPS = ["cen3-fcaw-b", "an426-fvap-b", "cen6-fvap-b", "cen1-fvap-b", "cen3-fjlp-b"]
LEAD_IN = 1.0  # seconds of silence before the clip: room for the page's start-up between opening and recording
UNIPEN_WORDS = ["basket", "bargain", "blossom", "business", "alarm"]  # likewise, drawn on the canvas
# a line of three words of one UNIPEN test writer (sentences written word by word), composed as a person writes a
# line; the first the model reads right when sent directly is drawn on the canvas
LINE_FILE = "data/6/cec/Limpert.dat"
UNIPEN_LINES = [("friends", "think", "that"), ("perfect", "for", "each"), ("happy", "when", "the"),
                ("meet", "again", "by")]
LINE_SEED = 0


# ---------------------------------------------------------------------------------------------------- server

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, path of the server's stderr log) of `speechrnn serve --port 0` with the shipped models."""
    log = tmp_path_factory.mktemp("serve") / "stderr.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "speechrnn", "serve", "--port", "0",
                                 "--max-upload-mb", str(MAX_UPLOAD_MB)],
                                cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line, deadline = "", time.monotonic() + 90
        while "serving on" not in line:
            ready, _, _ = select.select([proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            line = proc.stdout.readline() if ready else ""
            if not ready or (not line and proc.poll() is not None):
                pytest.fail(f"speechrnn serve did not start:\n{log.read_text()}")
        url = re.search(r"http://\S+/", line).group(0)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def raw_request(url: str, head: str, body: bytes = b"", finish: bool = True) -> tuple[int, dict] | None:
    """Send `head` (request line and headers) and `body` over a plain socket. finish: half-close and read the
    answer; else just close, as a client that goes away mid-upload."""
    host, port = re.match(r"http://([^:/]+):(\d+)/", url).groups()
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        if not finish:
            return None
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    header, _, payload = data.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(payload)


def an4_recording(shared_data: Path, name: str) -> tuple[Path, str]:
    an4 = shared_data / "an4"
    (path,) = (an4 / "wav" / "an4test_clstk").glob(f"*/{name}.wav")
    for line in (an4 / "etc" / "an4_test.transcription").read_text().splitlines():
        if line.strip().endswith(f"({name})"):
            return path, line.strip().rsplit(" (", 1)[0]
    raise KeyError(name)


@pytest.fixture(scope="module")
def speech_clip(server, shared_data) -> tuple[Path, str]:
    """(path, reference) of the first AN4_CLIPS recording the served model transcribes right."""
    url, _ = server
    for name in AN4_CLIPS:
        path, reference = an4_recording(shared_data, name)
        status, answer = post(url + "api/transcribe", path.read_bytes(), "audio/wav")
        assert status == 200, answer
        if answer["text"] == reference:
            return path, reference
    pytest.fail(f"the shipped speech model gets none of {AN4_CLIPS} right")


# ---------------------------------------------------------------------------------------------------- HTTP

def test_default_host_is_loopback(server):
    from speechrnn.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    url, _ = server
    assert url.startswith("http://127.0.0.1:")  # the address it actually bound, as printed
    with urllib.request.urlopen(url + "api/models", timeout=30) as response:
        models = json.loads(response.read())
    assert models["audio"]["bundle"] == "an4.pt" and models["ink"]["bundle"] == "unipen.pt"
    assert models["max_upload_bytes"] == MAX_UPLOAD_MB * 1_000_000
    with urllib.request.urlopen(url, timeout=30) as response:
        assert b'id="ink-canvas"' in response.read()


def test_upload_over_the_limit_gets_413(server):
    url, _ = server
    status, answer = raw_request(url, "POST /api/transcribe HTTP/1.1\nHost: x\nContent-Type: audio/wav\n"
                                      f"Content-Length: {3 * MAX_UPLOAD_MB * 1_000_000}\n", b"RIFF" + bytes(4096))
    assert status == 413
    assert f"limit of {MAX_UPLOAD_MB} MB" in answer["error"] and "--max-upload-mb" in answer["error"]


def test_non_audio_gets_415(server, shared_data):
    url, _ = server
    status, answer = post(url + "api/transcribe", b"hello", "text/plain")
    assert status == 415 and "expected an audio file" in answer["error"] and "text/plain" in answer["error"]
    status, answer = post(url + "api/transcribe", b"<html>not a recording</html>" * 10, "audio/wav")
    assert status == 415 and "not audio" in answer["error"] and "WAV" in answer["error"]
    status, answer = post(url + "api/ink", b"strokes", "text/plain")
    assert status == 415 and "application/json" in answer["error"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_form_and_raw_uploads_give_the_same_json(server, speech_clip):
    """`curl -F file=@x.wav` (multipart/form-data) and `curl --data-binary @x.wav` (no audio Content-Type) are
    answered as the raw audio body is; a form without the file is one plain error."""
    url, _ = server
    path, reference = speech_clip

    def curl(*args: str) -> dict:
        run = subprocess.run(["curl", "-sS", *args, url + "api/transcribe"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        answer = json.loads(run.stdout)
        answer.pop("seconds", None)
        return answer

    status, direct = post(url + "api/transcribe", path.read_bytes(), "audio/wav")
    direct.pop("seconds")
    assert status == 200 and direct["text"] == reference
    assert curl("-F", f"file=@{path}") == direct
    assert curl("-F", "note=hello", "-F", f"audio=@{path};type=audio/wav") == direct
    assert curl("--data-binary", f"@{path}") == direct
    assert "error" in curl("-F", "note=hello")  # a form with no audio in it: 415, said in words


def test_ink_without_strokes_gets_400(server):
    url, _ = server
    for body in ({"strokes": []}, {"strokes": [[], []]}):
        status, answer = post(url + "api/ink", json.dumps(body).encode(), "application/json")
        assert status == 400 and "no strokes" in answer["error"]
    status, answer = post(url + "api/ink", b"{not json", "application/json")
    assert status == 400 and "not JSON" in answer["error"]


def test_client_gone_mid_upload(server, speech_clip):
    url, log = server
    path, reference = speech_clip
    audio = path.read_bytes()
    raw_request(url, f"POST /api/transcribe HTTP/1.1\nHost: x\nContent-Type: audio/wav\n"
                     f"Content-Length: {len(audio)}\n", audio[:1000], finish=False)
    deadline = time.monotonic() + 10
    while f"after 1000 of {len(audio)} bytes" not in log.read_text():
        assert time.monotonic() < deadline, f"the dropped upload was not logged:\n{log.read_text()}"
        time.sleep(0.1)
    status, answer = post(url + "api/transcribe", audio, "audio/wav")  # still serving
    assert status == 200 and answer["text"] == reference


def test_audio_over_the_length_limit_gets_413(server):
    url, _ = server
    wav = io.BytesIO()
    soundfile.write(wav, np.zeros(121 * 1000, np.int16), 1000, format="WAV", subtype="PCM_16")  # 121 s, 242 kB
    status, answer = post(url + "api/transcribe", wav.getvalue(), "audio/wav")
    assert status == 413 and "121.0 s long, over this server's limit of 120 s" in answer["error"], answer
    assert "--max-audio-seconds" in answer["error"]


def test_audio_over_split_over_is_decoded_alone(server, speech_clip):
    url, _ = server
    path, reference = speech_clip
    samples, rate = soundfile.read(str(path), dtype="int16")
    wav = io.BytesIO()  # the clip, then 35 s of silence: over the 30 s the recognizer cuts at pauses
    soundfile.write(wav, np.concatenate([samples, np.zeros(35 * rate, np.int16)]), rate, format="WAV")
    status, answer = post(url + "api/transcribe", wav.getvalue(), "audio/wav")
    assert status == 200 and answer["text"] == reference and answer["duration"] > 35, answer


def test_concurrent_requests_answered_right(server, speech_clip):
    url, _ = server
    path, reference = speech_clip
    audio = path.read_bytes()
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: post(url + "api/transcribe", audio, "audio/wav"), range(8)))
    assert all(status == 200 and answer["text"] == reference for status, answer in answers), answers


# ---------------------------------------------------------------------------------------------------- batching

class FakeRecognizer:
    """Answers each waveform with its length as text; records its batches; `release` holds decoding back."""

    config = SimpleNamespace(modality="audio", features=SimpleNamespace(sample_rate=16000))
    decoder, split_over = None, 30.0

    def __init__(self, seconds: float = 0.0):
        self.batches, self.seconds = [], seconds
        self.started, self.release = threading.Event(), threading.Event()
        self.release.set()

    def load_input(self, item):
        samples, rate = item
        return samples

    def transcribe_inputs(self, inputs, timestamps=False):
        from speechrnn.output import Transcript

        self.started.set()
        self.release.wait(60)
        self.batches.append(len(inputs))
        time.sleep(self.seconds)
        return [Transcript("", str(len(x)), [], len(x) / 16000) for x in inputs]


@contextmanager
def fake_server(recognizer, **limits):
    from speechrnn.serve import Limits, make_server

    server = make_server({"audio": ("fake.pt", recognizer)}, port=0, limits=Limits(**limits))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        recognizer.release.set()
        server.shutdown()
        server.server_close()


def wav_bytes(samples: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.full(samples, 100, np.int16), 16000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def test_concurrent_requests_are_batched():
    fake = FakeRecognizer(seconds=0.3)
    with fake_server(fake, batch=16) as server:
        url = server.url
        sizes = [100 * k for k in range(1, 9)]
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda n: post(url + "api/transcribe", wav_bytes(n), "audio/wav"), sizes))
    assert [answer for status, answer in answers if status != 200] == []
    assert [answer["text"] for _, answer in answers] == [str(n) for n in sizes]  # each its own answer
    assert sum(fake.batches) == 8 and max(fake.batches) > 1 and len(fake.batches) < 8, fake.batches


def test_a_lone_request_does_not_wait_for_a_batch():
    from speechrnn.batching import Batcher

    fake = FakeRecognizer()
    batcher = Batcher(fake, max_batch=16, max_wait=5.0)
    try:
        for n in (100, 200):
            start = time.monotonic()
            with batcher.arriving() as submit:
                job = submit(np.zeros(n))
            assert batcher.result(job).text == str(n) and time.monotonic() - start < 2.5
    finally:
        batcher.close()
    assert fake.batches == [1, 1]


def test_full_queue_gets_503_with_retry_after():
    fake = FakeRecognizer()
    fake.release.clear()
    with fake_server(fake, batch=1, max_queue=1) as server, ThreadPoolExecutor(2) as pool:
        url, waiting = server.url, server.batchers["audio"].queue
        first = pool.submit(post, url + "api/transcribe", wav_bytes(100), "audio/wav")
        assert fake.started.wait(30)  # the first is being decoded
        second = pool.submit(post, url + "api/transcribe", wav_bytes(200), "audio/wav")
        deadline = time.monotonic() + 30
        while waiting.qsize() < 1:  # the second waits in the queue
            assert time.monotonic() < deadline, "the second request was not queued"
            time.sleep(0.01)
        request = urllib.request.Request(url + "api/transcribe", data=wav_bytes(300),
                                         headers={"Content-Type": "audio/wav"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 503
        retry_after, answer = refused.value.headers.get("Retry-After"), json.loads(refused.value.read())
        fake.release.set()
        assert first.result()[0] == second.result()[0] == 200
    assert int(retry_after) >= 1 and "busy" in answer["error"] and "try again" in answer["error"]


# ---------------------------------------------------------------------------------------------------- browser

def browser_or_skip() -> tuple[str, str]:
    """(chromium, chromedriver) paths; skip (or fail under SPEECHRNN_REQUIRE_BROWSER) when missing."""
    chromium = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    missing = [name for name, found in (("chromium", chromium), ("chromium-driver", driver)) if not found]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium")
    if missing:
        message = (f"browser tests need {' and '.join(missing)}: apt-get install chromium chromium-driver; "
                   f"pip install -e '.[dev]' (selenium)")
        if os.environ.get("SPEECHRNN_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


def chrome(*extra_args: str):
    """Headless Chromium through selenium (skipped, or failed with SPEECHRNN_REQUIRE_BROWSER, when missing), with
    `extra_args`; a generator for a fixture to yield from: the browser is closed after."""
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--window-size=1100,1000", *extra_args):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def browser(speech_clip, tmp_path_factory):
    """Headless Chromium whose fake microphone plays LEAD_IN seconds of silence, the speech clip once, then
    silence (it starts when the page opens the microphone)."""
    browser_or_skip()
    samples, rate = soundfile.read(str(speech_clip[0]), dtype="int16")
    fake_mic = tmp_path_factory.mktemp("mic") / "clip.wav"
    silence = np.zeros(int(LEAD_IN * rate), np.int16)
    soundfile.write(str(fake_mic), np.concatenate([silence, samples, silence, silence]), rate, subtype="PCM_16")
    yield from chrome("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={fake_mic}%noloop", "--autoplay-policy=no-user-gesture-required")


def open_page(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 20).until(lambda b: b.execute_script("return document.body.dataset.ready === '1'"))


def wait_state(browser, section: str, state: str, seconds: float = 30) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, seconds).until(
        lambda b: b.execute_script(f"return document.getElementById('{section}').dataset.state") == state)


def test_record_speech_in_the_browser(server, speech_clip, browser):
    url, _ = server
    path, reference = speech_clip
    clip_seconds = soundfile.info(str(path)).duration
    open_page(browser, url)
    record = browser.find_element("id", "record")
    record.click()
    wait_state(browser, "audio", "recording", 20)
    time.sleep(LEAD_IN + clip_seconds)  # what the fake microphone plays from when the page opened it
    record.click()
    wait_state(browser, "audio", "done")
    shown = browser.find_element("id", "audio-text").text
    message = browser.find_element("id", "audio-message").text
    browser.save_screenshot(str(ARTIFACTS / "serve-speech.png"))
    assert shown == reference, f"page shows {shown!r} ({message})"
    assert len(browser.find_elements("css selector", "#audio-words li")) == len(reference.split())


def write_and_recognise(browser, ink, screenshot: str) -> tuple[str, str, list[str]]:
    """Draw `ink` (y up) on the page's canvas with pen pointer events, y flipped and scaled to fit with a 30 px
    margin, press Recognise, and return what the page shows: (text, message, the word list's items)."""
    from selenium.webdriver.common.actions import interaction
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    box = browser.execute_script("const r = document.getElementById('ink-canvas').getBoundingClientRect();"
                                 "return [r.left, r.top, r.width, r.height];")
    points = np.concatenate(ink.strokes)[:, :2]
    low, high = points.min(axis=0), points.max(axis=0)
    scale = min((box[2] - 60) / (high[0] - low[0]), (box[3] - 60) / (high[1] - low[1]))
    pen = ActionBuilder(browser, mouse=PointerInput(interaction.POINTER_PEN, "pen"), duration=0)
    moves = 0
    for stroke in ink.strokes:  # into the canvas, y flipped (UNIPEN y is up, the screen's down)
        xy = np.column_stack([box[0] + 30 + (stroke[:, 0] - low[0]) * scale,
                              box[1] + 30 + (high[1] - stroke[:, 1]) * scale]).round().astype(int)
        kept = [xy[0]]
        for p in xy[1:]:
            if np.abs(p - kept[-1]).max() >= 2:
                kept.append(p)
        pen.pointer_action.move_to_location(int(kept[0][0]), int(kept[0][1]))
        pen.pointer_action.pointer_down()
        for x, y in kept[1:]:
            pen.pointer_action.move_to_location(int(x), int(y))
        pen.pointer_action.pointer_up()
        moves += len(kept)
    pen.perform()
    drawn = browser.execute_script("return ink.strokes.map((s) => s.length)")
    assert len(drawn) == len(ink.strokes) and sum(drawn) >= 0.9 * moves, (drawn, moves)
    browser.find_element("id", "ink-read").click()
    wait_state(browser, "ink", "done")
    browser.save_screenshot(str(ARTIFACTS / screenshot))
    return (browser.find_element("id", "ink-text").text, browser.find_element("id", "ink-message").text,
            [item.text for item in browser.find_elements("css selector", "#ink-words li")])


def read_ink_directly(url: str, ink) -> str:
    """What /api/ink reads from `ink` sent as it is (UNIPEN: y up), with and without saying so: the same."""
    answers = []
    for stated in ({"y_down": False}, {}):
        body = {"strokes": [s.tolist() for s in ink.strokes], **stated}
        status, answer = post(url + "api/ink", json.dumps(body).encode(), "application/json")
        assert status == 200, answer
        answers.append(answer["text"])
    assert answers[0] == answers[1], answers  # unstated, the model decides which way is up
    return answers[0]


def assert_words_with_confidences(items: list[str], words: list[str]) -> None:
    assert len(items) == len(words), items
    for item, word in zip(items, words):  # "word 97 %"
        assert re.fullmatch(rf"{re.escape(word)} \d{{1,3}} %", item), items


def test_write_on_the_canvas(server, unipen_words, browser):
    url, _ = server
    for word in UNIPEN_WORDS:  # a word the model reads right when its ink is sent directly (UNIPEN: y up)
        segment = next(s for s in unipen_words if s.label == word)
        if read_ink_directly(url, segment.ink) == word:
            break
    else:
        pytest.fail(f"the shipped handwriting model reads none of {UNIPEN_WORDS} right")

    open_page(browser, url)
    shown, message, items = write_and_recognise(browser, segment.ink, "serve-ink.png")
    assert shown == word, f"page shows {shown!r} ({message})"
    assert_words_with_confidences(items, [word])


@pytest.fixture(scope="module")
def unipen_test_writer(shared_data) -> list:
    """The word segments (speechrnn.ink.UnipenSegment) of LINE_FILE in the shared UNIPEN archive, one writer's,
    checked to be in the test split of data_prep/unipen.py (md5 of the writer)."""
    from speechrnn.ink import parse_unipen
    from unipen import split_of  # data_prep/unipen.py: pyproject's pytest pythonpath lists data_prep/

    archive = shared_data / "unipen" / "train_r01_v07_cat6.tar.gz"
    with tarfile.open(archive, "r|gz") as tar:  # the data file, then (earlier in the archive) its includes
        for member in tar:
            if member.name == LINE_FILE:
                text = tar.extractfile(member).read().decode("latin-1")
                break
        else:
            pytest.fail(f"{archive} holds no {LINE_FILE}")
    wanted = {"include/" + rel for rel in re.findall(r"^\.INCLUDE\s+(\S+)", text, re.M)}
    includes = {}
    with tarfile.open(archive, "r|gz") as tar:
        for member in tar:
            if member.name in wanted:
                includes[member.name[len("include/"):]] = tar.extractfile(member).read().decode("latin-1")
                if len(includes) == len(wanted):
                    break
    segments = list(parse_unipen(LINE_FILE, text, includes.__getitem__, on_error=lambda err: None))
    writers = {s.writer.strip() for s in segments}
    assert len(writers) == 1 and split_of(writers.pop()) == "test", writers
    return segments


def test_write_a_line_on_the_canvas(server, unipen_test_writer, browser):
    from speechrnn.ink.compose import compose_line

    url, _ = server
    labels, read = [s.label for s in unipen_test_writer], {}
    for words in UNIPEN_LINES:  # a line the model reads right when its ink is sent directly
        at = next(k for k in range(len(labels)) if tuple(labels[k: k + len(words)]) == words)
        line = compose_line([s.ink for s in unipen_test_writer[at: at + len(words)]], np.random.default_rng(LINE_SEED))
        assert line.text == " ".join(words)
        read[line.text] = read_ink_directly(url, line)
        if read[line.text] == line.text:
            break
    else:
        pytest.fail(f"the shipped handwriting model reads none of the lines right: {read}")

    open_page(browser, url)
    shown, message, items = write_and_recognise(browser, line, "serve-ink-line.png")
    assert shown == line.text, f"page shows {shown!r} ({message})"
    assert_words_with_confidences(items, line.text.split())


def test_the_page_says_what_to_do_and_what_the_models_know(server, browser):
    """Desktop and phone width: each card says in one sentence what to do and what its model knows, and nothing
    overflows the screen; the screenshots are kept in test-artifacts/ to look at."""
    from speechrnn.pretrained import MODELS

    url, _ = server
    for name, (width, height) in {"desktop": (1100, 1000), "phone": (390, 844)}.items():
        browser.set_window_size(width, height)
        open_page(browser, url)
        for section, model in (("audio", "an4"), ("ink", "unipen")):
            how = browser.find_element("id", f"{section}-how").text
            assert how.startswith(("Press Record", "Write a word")) and how.endswith("."), how
            assert MODELS[model].knows in browser.find_element("id", f"{section}-model").text
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        browser.save_screenshot(str(ARTIFACTS / f"serve-{name}.png"))
    browser.set_window_size(1100, 1000)
