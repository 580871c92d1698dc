"""Transcription: the Recognizer API, the `transcribe` CLI's inputs and formats, word timestamps from the CTC
alignment, and `tune` storing a beam-search decoder in the bundle. The model here has random weights: these
tests check what goes where, not accuracy (the recipes and test_train measure that)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechrnn.align import align
from speechrnn.bundle import load_bundle, save_bundle, unpack_text
from speechrnn.config import load_config, to_dict
from speechrnn.model import build_model
from speechrnn.output import Span, Transcript, cues, render, timestamp
from speechrnn.recognizer import Recognizer
from speechrnn.text import TextConfig, Tokenizer

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], env=ENV, capture_output=True,
                          text=True, input=stdin)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    config = load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml",
                         ["model.conv_channels=4", "model.rnn.hidden_size=16", "model.rnn.num_layers=1"])
    tokenizer = Tokenizer.build(["YES NO ENTER RUBOUT"], config.text)
    torch.manual_seed(0)
    model = build_model(len(tokenizer), config)
    path = tmp_path_factory.mktemp("bundle") / "model.pt"
    save_bundle(path, model.state_dict(), to_dict(config), tokenizer.to_dict())
    return path


@pytest.fixture(scope="module")
def wavs(shared_data) -> list[Path]:
    return sorted((shared_data / "an4" / "wav" / "an4test_clstk" / "fvap").glob("*.wav"))[:3]


def test_align_times_and_confidences_on_known_posteriors():
    tokenizer = Tokenizer.build(["AB BA"], TextConfig())
    frames = [0, 0, "A", "A", 0, "B", " ", "B", "B", 0, "A", 0]  # 12 frames of 40 ms
    log_probs = torch.full((len(frames), len(tokenizer)), -9.0)
    for t, symbol in enumerate(frames):
        log_probs[t, 0 if symbol == 0 else tokenizer.index[symbol]] = 0.0
    log_probs = log_probs.log_softmax(-1)
    result = align(log_probs, [tokenizer.index[c] for c in "AB BA"], tokenizer, 0.04)
    assert [(w.text, round(w.start, 2), round(w.end, 2)) for w in result.words] == [("AB", 0.08, 0.24),
                                                                                     ("BA", 0.28, 0.44)]
    assert [c.text for c in result.chars] == list("ABBA")
    assert all(0.99 < w.confidence <= 1.0 for w in result.words)
    # an unsure letter makes its word unsure
    log_probs[10] = torch.tensor([0.0, 0.0, 0.3, 0.0]).log().clamp(min=-20) + 0.0
    log_probs[10, 0] = np.log(0.7)
    unsure = align(log_probs.log_softmax(-1), [tokenizer.index[c] for c in "AB BA"], tokenizer, 0.04)
    assert unsure.words[1].confidence < 0.5 < unsure.words[0].confidence


def test_frame_shift_is_hop_times_subsampling_exactly():
    """10 ms hop x 4 (two stride-2 convs) = 0.04 s per output frame, with no edge effect (a short probe input
    once gave 0.0390625, and word times drifted 2.3 %)."""
    from speechrnn.model import frame_shift

    config = load_config(None, ["data.train_manifest=x", "data.dev_manifest=x", "model.conv_channels=4",
                                "model.rnn.hidden_size=8", "model.rnn.num_layers=1"])
    model = build_model(5, config)
    assert model.frame_shift == frame_shift(config) == 0.04 and model.subsampling == model.encoder.subsampling == 4


def test_subtitle_cues_and_timestamps():
    assert timestamp(3725.5, ",") == "01:02:05,500" and timestamp(0.0421, ".") == "00:00:00.042"
    words = [Span("ONE", 0.0, 0.5, 1.0), Span("TWO", 0.6, 1.0, 1.0), Span("THREE", 3.0, 3.5, 1.0)]
    assert cues(words) == [(0.0, 1.0, "ONE TWO"), (3.0, 3.5, "THREE")]  # a 2 s pause closes a cue
    srt = render(Transcript("x.wav", "ONE TWO THREE", words, 4.0), "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nONE TWO\n\n2\n00:00:03,000 --> 00:00:03,500\nTHREE")
    assert render(Transcript("x.wav", "ONE", words[:1], 1.0), "vtt").startswith("WEBVTT\n\n00:00:00.000 --> ")


def test_recognizer_inputs_batching_and_timestamps(bundle, wavs):
    recognizer = Recognizer.load(bundle)
    samples, rate = soundfile.read(wavs[0], dtype="float32")
    together = recognizer.transcribe(list(wavs), timestamps=True)
    alone = [recognizer.transcribe([w], timestamps=True)[0] for w in wavs]
    assert [t.text for t in together] == [t.text for t in alone]  # batching changes nothing
    assert [t.name for t in together] == [str(w) for w in wavs]
    from_array = recognizer.transcribe([samples, (samples, rate)])
    assert [t.text for t in from_array] == [together[0].text] * 2
    for t in together:
        assert t.duration == pytest.approx(soundfile.info(t.name).duration, abs=0.01)
        assert [w.text for w in t.words] == t.text.split()
        assert all(0 <= w.start < w.end <= t.duration + 0.05 and 0 <= w.confidence <= 1 for w in t.words)
        assert all(a.end <= b.start for a, b in zip(t.words, t.words[1:]))


def test_recognizer_takes_one_input_and_reports_each_inputs_error(bundle, wavs, tmp_path):
    """transcribe(x) of one path / array gives one Transcript (a path is not read as a list of characters), and
    transcribe_each yields a bad file's UserError in its place while the others are transcribed, long or short."""
    from contextlib import nullcontext

    import speechrnn
    from speechrnn.errors import AudioError

    recognizer = speechrnn.Recognizer.load(bundle, split_over=2.0)  # the package exports it (lazily)
    first = recognizer.transcribe([wavs[0]])[0]
    one = recognizer.transcribe(str(wavs[0]))
    assert isinstance(one, speechrnn.Transcript) and (one.name, one.text) == (str(wavs[0]), first.text)
    assert recognizer.transcribe(soundfile.read(wavs[0], dtype="float32")[0]).name == "<input 0>"
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    long_ones = []
    def long_progress(item, seconds):
        long_ones.append(item)
        return nullcontext()

    results = list(recognizer.transcribe_each([wavs[0], broken, wavs[1]], chunk=2, long_progress=long_progress))
    assert isinstance(results[1], AudioError) and str(broken) in str(results[1])
    assert [r.name for r in (results[0], results[2])] == [str(wavs[0]), str(wavs[1])]
    assert long_ones == [w for w in (wavs[0], wavs[1]) if soundfile.info(w).duration > 2.0]
    with pytest.raises(AudioError):
        recognizer.transcribe([wavs[0], broken])


def test_transcribe_cli_formats_folders_stdin_and_a_bad_file(bundle, wavs, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....not audio")
    run = cli("transcribe", bundle, wavs[0], broken, wavs[1])
    assert run.returncode == 1
    assert [line.split("\t")[0] for line in run.stdout.splitlines()] == [str(wavs[0]), str(wavs[1])]
    assert run.stderr.count("error:") == 1 and "broken.wav" in run.stderr.splitlines()[-1]

    run = cli("transcribe", bundle, wavs[0], wavs[1], "--format", "json")
    assert run.returncode == 0, run.stderr
    documents = json.loads(run.stdout)
    assert [d["path"] for d in documents] == [str(wavs[0]), str(wavs[1])]
    assert all("words" in d or not d["text"] for d in documents)

    folder = tmp_path / "audio" / "nested"
    folder.mkdir(parents=True)
    for wav in wavs:
        (folder / wav.name).write_bytes(wav.read_bytes())
    out = tmp_path / "out"
    run = cli("transcribe", bundle, tmp_path / "audio", "--format", "srt", "--output", out)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(w.stem + ".srt" for w in wavs)
    for srt in out.iterdir():
        text = srt.read_text()
        assert not text or re.match(r"1\n\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}\n", text)

    run = cli("transcribe", bundle, "-", "--format", "jsonl", stdin="\n".join(map(str, wavs)) + "\n")
    assert run.returncode == 0, run.stderr
    assert [json.loads(line)["path"] for line in run.stdout.splitlines()] == [str(w) for w in wavs]

    empty = tmp_path / "empty"
    empty.mkdir()
    run = cli("transcribe", bundle, empty, wavs[0])  # an empty folder is one failed input: the others go on
    assert run.returncode == 1 and run.stderr.count("error:") == 1 and "has no files ending in" in run.stderr
    assert run.stdout.split("\t")[0] == str(wavs[0])
    run = cli("transcribe", bundle, wavs[0], wavs[1], "--format", "vtt")
    assert run.returncode == 2 and "--output" in run.stderr


def test_tune_stores_a_lexicon_decoder_that_transcribe_uses(bundle, wavs, tmp_path):
    tuned = tmp_path / "tuned.pt"
    tuned.write_bytes(bundle.read_bytes())
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": str(w), "duration": soundfile.info(w).duration,
                                            "text": "YES NO"}) + "\n" for w in wavs))
    lexicon = tmp_path / "words.lex"
    assert cli("lm", "lexicon", tuned, manifest, "-o", lexicon).returncode == 0
    run = cli("tune", tuned, manifest, "--lexicon", lexicon, "--word-scores", "0", "1", "--beam", "4",
              "--workers", "1")
    assert run.returncode == 0, run.stderr
    decoding = load_bundle(tuned)["extra"]["decoding"]
    assert decoding["word_score"] in (0.0, 1.0) and decoding["lm"] is None
    assert "YES" in unpack_text(decoding["lexicon"])  # stored xz-compressed

    run = cli("transcribe", tuned, *wavs, "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    words = [w for line in run.stdout.splitlines() for w in json.loads(line)["text"].split()]
    assert set(words) <= {"YES", "NO"}  # only lexicon words
    greedy = cli("transcribe", tuned, *wavs, "--greedy")
    assert greedy.stdout == cli("transcribe", bundle, *wavs).stdout  # --greedy: as before tuning


def test_align_cli_prints_words_and_draws_them(bundle, wavs, tmp_path):
    png = tmp_path / "align.png"
    run = cli("align", bundle, wavs[0], "-o", png)
    assert run.returncode == 0, run.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = cli("transcribe", bundle, wavs[0]).stdout.split("\t")[1].strip()
    rows = [line.split() for line in run.stdout.splitlines()]
    assert [row[3] for row in rows] == text.split()  # start end confidence word
    assert all(float(row[0]) < float(row[1]) for row in rows)


# ------------------------------------------------------------------------------ issue 15: short clips, outputs, FIFOs

SHIPPED = REPO / "speechrnn" / "pretrained" / "an4.pt"


def test_a_text_longer_than_the_frames_is_spread_over_them_not_refused():
    """CTC cannot align 5 characters to 3 frames; before, align raised RuntimeError
    ("targets length is too long for CTC"). Now the characters share the frames' time evenly."""
    tokenizer = Tokenizer.build(["AB BA"], TextConfig())
    log_probs = torch.randn(3, len(tokenizer)).log_softmax(-1)
    tokens = [tokenizer.index[c] for c in "AB BA"]
    result = align(log_probs, tokens, tokenizer, 0.04, scores=log_probs, end_reach=3)
    assert result.spread and result.text == "AB BA"
    assert [w.text for w in result.words] == ["AB", "BA"] and len(result.chars) == 4
    assert [(round(w.start, 3), round(w.end, 3)) for w in result.words] == [(0.0, 0.048), (0.072, 0.12)]
    assert all(0.0 <= w.confidence <= 1.0 for w in result.words + result.chars)
    one_frame = align(log_probs[:1], tokens, tokenizer, 0.04)
    assert [w.text for w in one_frame.words] == ["AB", "BA"] and one_frame.words[-1].end == pytest.approx(0.04)
    assert not align(log_probs.repeat(2, 1), tokens, tokenizer, 0.04).spread  # enough frames: aligned as before


def short_clips(folder: Path, wav: Path) -> list[Path]:
    """30, 50, 80 and 120 ms from the middle of an AN4 utterance."""
    samples, rate = soundfile.read(wav, dtype="float32")
    clips = []
    for ms in (30, 50, 80, 120):
        clips.append(folder / f"short{ms}.wav")
        soundfile.write(clips[-1], samples[len(samples) // 3: len(samples) // 3 + rate * ms // 1000], rate)
    return clips


def test_word_times_on_clips_of_a_few_frames(wavs, tmp_path):
    """The shipped model (with aligners: a separator at each end of the text) read a letter into 30-120 ms clips,
    and timing it raised from align.py: json printed nothing for the batch, srt/vtt wrote no file. --no-gate: the
    clips are decoded (the gate would give them "" undecoded)."""
    clips = short_clips(tmp_path, wavs[0])
    run = cli("transcribe", "--no-gate", "--format", "json", *clips, wavs[0])
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    documents = json.loads(run.stdout)
    assert [d["path"] for d in documents] == [str(p) for p in clips + [wavs[0]]]
    for d in documents:
        assert len(d.get("words", [])) == len(d["text"].split())
        frames_end = -(-d["duration"] // 0.04) * 0.04  # the end of the last 40 ms output frame
        assert all(0 <= w["start"] < w["end"] <= frames_end + 1e-6 for w in d.get("words", []))
    for fmt in ("srt", "vtt"):
        run = cli("transcribe", "--no-gate", "--format", fmt, "--output", tmp_path / fmt, *clips)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        assert sorted(p.name for p in (tmp_path / fmt).iterdir()) == sorted(f"{p.stem}.{fmt}" for p in clips)
    recognizer = Recognizer.load(SHIPPED, gate=False)  # the aligners' right-to-left path too
    for result in recognizer.transcribe(clips, timestamps=True):
        assert len(result.words) == len(result.text.split())


def test_output_names_are_distinct_and_predictable():
    from speechrnn.cli.transcribe import output_names

    names = output_names(["a/x.wav", "b/x.wav", "c/x.mp3", "c/x.ogg", "y.wav", "y.wav", "d/z.flac"], "txt")
    assert {k: str(v) for k, v in names.items()} == {
        "a/x.wav": "a/x.wav.txt", "b/x.wav": "b/x.wav.txt", "c/x.mp3": "c/x.mp3.txt", "c/x.ogg": "c/x.ogg.txt",
        "y.wav": "y.txt", "d/z.flac": "z.txt"}
    assert {str(v) for v in output_names(["d/x.mp3", "d/x.ogg"], "srt").values()} == {"x.mp3.srt", "x.ogg.srt"}
    clash = output_names(["x.wav", "x.flac", "x.wav.ogg"], "txt")  # x.wav.txt twice: all mirrored, extension kept
    assert sorted(map(str, clash.values())) == ["x.flac.txt", "x.wav.ogg.txt", "x.wav.txt"]


def test_outputs_never_overwrite_each_other_or_an_earlier_run(bundle, wavs, tmp_path):
    """a/x.wav, b/x.wav, x.flac, x.ogg went to one x.txt (4 inputs, 2 files, exit 0); a second run replaced the
    first's files without a word."""
    samples, rate = soundfile.read(wavs[0], dtype="float32")
    inputs = [tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav", tmp_path / "c" / "x.flac", tmp_path / "c" / "x.ogg"]
    for path, clip in zip(inputs, (samples, samples[: rate], samples[rate // 2:], samples)):
        path.parent.mkdir(exist_ok=True)
        soundfile.write(path, clip, rate)
    out = tmp_path / "out"
    run = cli("transcribe", bundle, *inputs, "--output", out)
    assert run.returncode == 0, run.stderr
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["a/x.wav.txt", "b/x.wav.txt", "c/x.flac.txt", "c/x.ogg.txt"]
    recognizer = Recognizer.load(bundle)
    alone = {p: recognizer.transcribe(p).text + "\n" for p in inputs[1:3]}
    assert (out / "b" / "x.wav.txt").read_text() == alone[inputs[1]]
    assert (out / "c" / "x.flac.txt").read_text() == alone[inputs[2]]

    (out / "b" / "x.wav.txt").write_text("kept")
    again = cli("transcribe", bundle, *inputs, "--output", out)
    assert again.returncode == 2 and again.stderr.count("\n") == 1  # one line: nothing was transcribed
    assert "a/x.wav.txt: exists already (and 3 more); add --overwrite" in again.stderr
    assert (out / "b" / "x.wav.txt").read_text() == "kept"
    again = cli("transcribe", bundle, *inputs, "--output", out, "--overwrite")
    assert again.returncode == 0 and (out / "b" / "x.wav.txt").read_text() == alone[inputs[1]]
    assert not [p for p in out.rglob(".*")]  # no temporary files left


def test_write_file_is_whole_or_nothing(tmp_path):
    from speechrnn.output import write_file

    target = tmp_path / "x.txt"
    write_file(target, "one")
    with pytest.raises(FileExistsError):
        write_file(target, "two")
    assert target.read_text() == "one"
    write_file(target, "two", overwrite=True)
    assert target.read_text() == "two" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]
    (tmp_path / "d").mkdir()
    with pytest.raises(OSError):
        write_file(tmp_path / "d", "three", overwrite=True)  # a folder in the way: refused, nothing left over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "x.txt"]


def test_a_fifo_or_a_device_is_refused_not_read(bundle, wavs, tmp_path):
    """A FIFO named .wav blocked transcribe for ever (soundfile opened it, waiting for a writer); the files after
    it were never read. Now every reader refuses a file that is not regular, on one line."""
    from speechrnn.audio import audio_duration, load_audio, source_seconds
    from speechrnn.errors import AudioError

    fifo = tmp_path / "stream.wav"
    os.mkfifo(fifo)
    for read in (lambda p: load_audio(p, 16000), audio_duration, lambda p: source_seconds(p, 16000),
                 lambda p: load_audio("/dev/null", 16000)):
        with pytest.raises(AudioError, match="not a regular file"):
            read(fifo)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.wav").write_bytes(wavs[1].read_bytes())
    os.mkfifo(folder / "pipe.wav")
    try:
        run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(bundle), str(fifo), str(wavs[0]),
                              str(folder)], env=ENV, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("transcribe hung on a FIFO")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "stream.wav: not a regular file (a FIFO)" in errors[0] and "pipe.wav" in errors[1]
    assert [line.split("\t")[0] for line in run.stdout.splitlines()] == [str(wavs[0]), str(folder / "good.wav")]
