"""Hostile and careless inputs through the entry points the other fuzz suites leave out: `tune`, `align`,
`lm build`, `lm lexicon`, `export`, `add-aligner`, `mic --input`, `plot`, `plot-ink`, `tagger labels` and `tagger
eval`. Each bad input must end in one `error:` line naming it and a non-zero exit, never a traceback, and the good
input next to it must still work. The commands run in this process through speechrnn.cli.main."""

import json
import os
import struct

import numpy as np
import pytest
import soundfile

from test_fuzz_training import cli, one_error

SEED = 20261207


def bad_files(folder) -> dict[str, object]:
    """Generated bad inputs, by kind: a bundle, audio, text and ink that no reader should take."""
    rng = np.random.default_rng(SEED)
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    made["random.pt"] = rng.bytes(4096)
    made["truncated.pt"] = (folder.parent / "good.pt").read_bytes()[:5000] if (folder.parent / "good.pt").exists() \
        else rng.bytes(10)
    made["empty.pt"] = b""
    made["random.wav"] = rng.bytes(3000)
    made["header_only.wav"] = b"RIFF" + struct.pack("<I", 36) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1,
                                                                                           16000, 32000, 2, 16)
    made["latin1.txt"] = "ÉCOLE CAFÉ\n".encode("latin-1")
    made["empty.txt"] = b""
    made["deep.json"] = b"[" * 5000 + b"]" * 5000
    made["not_ink.json"] = json.dumps({"strokes": "no"}).encode()
    made["log.jsonl"] = b'{"epoch": "one"}\n\x00\x01\n'
    paths = {}
    for name, content in made.items():
        paths[name] = folder / name
        paths[name].write_bytes(content)
    os.mkfifo(folder / "fifo.wav")
    paths["fifo.wav"] = folder / "fifo.wav"
    paths["missing.wav"] = folder / "missing.wav"
    return paths


@pytest.fixture(scope="module")
def inputs(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("fuzz_commands")
    wav = sorted((shared_data / "an4" / "wav" / "an4_clstk").glob("*/*.wav"))[0]
    manifest = out / "dev.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": str(wav), "duration": soundfile.info(str(wav)).duration,
                                    "text": "HELLO"}) + "\n")
    lexicon = out / "words.lex"
    assert cli("lm", "lexicon", "an4", manifest, "-o", lexicon)[0] == 0
    return {"wav": wav, "manifest": manifest, "lexicon": lexicon, "bad": bad_files(out / "bad"), "out": out}


BAD_BUNDLES = ("random.pt", "truncated.pt", "empty.pt", "random.wav", "missing.wav")


@pytest.mark.parametrize("bad", BAD_BUNDLES)
def test_bad_bundles_are_one_line_everywhere(inputs, bad):
    path, out = inputs["bad"][bad], inputs["out"]
    commands = [("tune", path, inputs["manifest"], "--lexicon", inputs["lexicon"]),
                ("align", path, inputs["wav"], "-o", out / "a.png"),
                ("lm", "lexicon", path, inputs["manifest"], "-o", out / "l.lex"),
                ("export", path, "--int8", out / "x.pt"),
                ("add-aligner", "an4", path, "-o", out / "joined.pt"),
                ("add-aligner", path, "an4", "-o", out / "joined.pt"),
                ("mic", path, "--input", inputs["wav"], "--fast"),
                ("tagger", "labels", path, inputs["manifest"], "--out", out / "labels"),
                ("transcribe", path, inputs["wav"])]
    for command in commands:
        status, output = cli(*command)
        one_error(status, output, path.name)
    assert not (out / "joined.pt").exists() and not (out / "x.pt").exists()


@pytest.mark.parametrize("bad", ("random.wav", "header_only.wav", "fifo.wav", "missing.wav"))
def test_bad_audio_is_one_line_in_align_and_mic(inputs, bad):
    path = inputs["bad"][bad]
    for command in (("align", "an4", path, "-o", inputs["out"] / "a.png"), ("mic", "an4", "--input", path, "--fast")):
        status, output = cli(*command)
        one_error(status, output, path.name)


def test_bad_text_for_language_models(inputs):
    out = inputs["out"]
    for bad in ("latin1.txt", "empty.txt", "missing.wav"):
        path = inputs["bad"][bad]
        one_error(*cli("lm", "build", path, "-o", out / "w.arpa"), path.name)
    one_error(*cli("lm", "lexicon", "an4", inputs["bad"]["empty.txt"], "-o", out / "w.lex"), "empty.txt")
    status, output = cli("lm", "build", inputs["manifest"], "-o", out / "good.arpa", "--order", "2")
    assert status == 0 and (out / "good.arpa").read_text().startswith("\n\\data\\") or "\\data\\" in \
        (out / "good.arpa").read_text(), output


def test_bad_manifests_and_lexicons_in_tune(inputs):
    bad = inputs["bad"]
    for manifest in (bad["empty.txt"], bad["log.jsonl"], bad["missing.wav"]):
        one_error(*cli("tune", "an4", manifest, "--lexicon", inputs["lexicon"]), manifest.name)
    one_error(*cli("tune", "an4", inputs["manifest"], "--lexicon", bad["latin1.txt"]), "latin1.txt")


def test_bad_logs_and_inks_in_the_plots(inputs):
    bad, out = inputs["bad"], inputs["out"]
    for log in (bad["log.jsonl"], bad["empty.txt"], bad["missing.wav"]):
        one_error(*cli("plot", log, "-o", out / "curves.png"), log.name)
    for ink in (bad["deep.json"], bad["not_ink.json"], bad["random.wav"]):
        one_error(*cli("plot-ink", ink, "-o", out / "ink.png"), ink.name)


def test_bad_vad_and_labels_in_tagger_eval(inputs):
    bad = inputs["bad"]
    for vad in (bad["random.pt"], bad["missing.wav"]):
        one_error(*cli("tagger", "eval", vad, inputs["manifest"], bad["random.pt"], "--out", inputs["out"] / "e"),
                  vad.name)
    one_error(*cli("tagger", "eval", "energy", inputs["manifest"], bad["random.pt"], "--out", inputs["out"] / "e"),
              "random.pt")
