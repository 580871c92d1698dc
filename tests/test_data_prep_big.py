"""data_prep/librispeech.py and data_prep/commonvoice.py on tiny trees written in the corpora's exact layouts
(LibriSpeech: <subset>/<spk>/<chapter>/<spk>-<chapter>.trans.txt + .flac; Common Voice: *.tsv + clips/*.mp3),
made from real AN4 recordings."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile

import librispeech  # data_prep/librispeech.py: pyproject's pytest pythonpath lists data_prep/
import commonvoice
from speechrnn.data import read_manifest

REPO = Path(__file__).resolve().parents[1]

HAS_MP3 = "MP3" in soundfile.available_formats()
needs_mp3 = pytest.mark.skipif(not HAS_MP3, reason="this libsndfile cannot write/read MP3 (needs >= 1.1)")


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"data_prep/{name}.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def errors(stderr: str) -> list[str]:
    """The `error: ...` lines (progress bars share stderr, so cut at carriage returns too)."""
    return re.findall(r"error: [^\r\n]*", stderr)


def header_duration(path: str | Path) -> float:
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


@pytest.fixture(scope="module")
def an4_audio(shared_data) -> list:
    """Six real AN4 recordings (16 kHz int16) from two speakers, as (samples, rate)."""
    wavs = sorted((shared_data / "an4" / "wav").glob("an4_clstk/*/*.wav"))
    if len(wavs) < 6:
        pytest.skip("AN4 wavs not found")
    picked = wavs[:3] + wavs[-3:]
    return [soundfile.read(str(path), dtype="int16") for path in picked]


# --- LibriSpeech ----------------------------------------------------------------------------------

LS_GOOD = {  # subset -> [(id, text)] in the order the manifest must list them
    "dev-clean": [("84-121123-0000", "GO DO YOU HEAR"),
                  ("84-121123-0002", "AT THIS MOMENT THE WHOLE SOUL OF THE OLD MAN SEEMED CENTRED IN HIS EYES"),
                  ("84-121123-0010", "ONE TWO THREE"),
                  ("1272-128104-0000", "MISTER QUILTER IS THE APOSTLE OF THE MIDDLE CLASSES")],
    "test-clean": [("61-70968-0000", "HE BEGAN A CONFUSED COMPLAINT AGAINST THE WIZARD'S DEPUTY"),
                   ("61-70968-0001", "GIVE NOT SO EARNEST A MIND TO THESE MUMMERIES CHILD")],
}


@pytest.fixture(scope="module")
def ls_tree(tmp_path_factory, an4_audio) -> Path:
    """<root>/LibriSpeech/{dev-clean,test-clean} with flac audio, a trans.txt per chapter listed out of order,
    and bad items: a line whose flac is missing, a flac that is not audio, a line without words, a chapter
    folder without its transcript."""
    root = tmp_path_factory.mktemp("ls")
    audio = iter(an4_audio)
    for subset, utts in LS_GOOD.items():
        chapters: dict[Path, list[str]] = {}
        for uid, text in utts:
            spk, chapter, _ = uid.split("-")
            folder = root / "LibriSpeech" / subset / spk / chapter
            folder.mkdir(parents=True, exist_ok=True)
            samples, rate = next(audio)
            soundfile.write(str(folder / f"{uid}.flac"), samples, rate, format="FLAC")
            chapters.setdefault(folder, []).append(f"{uid} {text}")
        for folder, lines in chapters.items():
            if folder.name == "121123":  # out of order, plus the bad items
                (folder / "84-121123-0001.flac").write_bytes(b"fLaC but not really" * 10)
                lines = [lines[2], "84-121123-0003 THIS ONE HAS NO AUDIO", lines[0], "",
                         "84-121123-0001 UNREADABLE FLAC", "84-121123-0004", lines[1]]
            (folder / f"{folder.parent.name}-{folder.name}.trans.txt").write_text("\n".join(lines) + "\n")
    orphan = root / "LibriSpeech" / "dev-clean" / "84" / "999"
    orphan.mkdir()
    soundfile.write(str(orphan / "84-999-0000.flac"), *an4_audio[0], format="FLAC")
    return root


@pytest.fixture(scope="module")
def ls_cli(ls_tree, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ls_out")
    return out, run_script("librispeech", "--src", str(ls_tree), "--out", str(out), "--jobs", "2")


def test_librispeech_cli_manifests(ls_cli, ls_tree):
    out, result = ls_cli
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dev-clean.jsonl", "test-clean.jsonl"]
    for subset, utts in LS_GOOD.items():
        raw = [json.loads(line) for line in (out / f"{subset}.jsonl").read_text().splitlines()]
        assert [list(e) for e in raw] == [["id", "audio_filepath", "duration", "text", "speaker", "chapter"]] * len(raw)
        assert [(e["id"], e["text"]) for e in raw] == utts
        for e in raw:
            spk, chapter, _ = e["id"].split("-")
            assert (e["speaker"], e["chapter"]) == (spk, chapter)
            assert not Path(e["audio_filepath"]).is_absolute()
            flac = ls_tree / "LibriSpeech" / subset / spk / chapter / f"{e['id']}.flac"
            assert e["audio_filepath"] == os.path.relpath(flac, out)
        for e in read_manifest(out / f"{subset}.jsonl"):  # relative paths resolve from the manifest folder
            flac = ls_tree / "LibriSpeech" / subset / e["speaker"] / e["chapter"] / f"{e['id']}.flac"
            assert Path(e["audio_filepath"]) == flac.resolve()
            assert e["duration"] == pytest.approx(header_duration(flac), abs=1e-3) and e["duration"] > 0.5
    assert "dev-clean: 4 utterances, 2 speakers" in result.stdout and "3 skipped" in result.stdout
    assert "test-clean: 2 utterances, 1 speakers" in result.stdout


def test_librispeech_bad_items_one_line_each(ls_cli, ls_tree):
    _, result = ls_cli
    lines = errors(result.stderr)
    assert len(lines) == 4, result.stderr
    chapter = ls_tree / "LibriSpeech" / "dev-clean" / "84" / "121123"
    expected = [(str(chapter / "84-121123-0001.flac"), "not readable as audio"),
                (str(chapter / "84-121123-0003.flac"), "not found"),
                (str(chapter / "84-121123.trans.txt") + ":6", "expected '<utterance id> WORDS'"),
                (str(chapter.parent / "999" / "84-999.trans.txt"), "transcript not found")]
    for path, problem in expected:
        assert sum(path in line and problem in line for line in lines) == 1, (path, lines)
    assert all("skipped" in line for line in lines)


def test_librispeech_deterministic_across_runs_and_jobs(ls_tree, tmp_path, capsys):
    outputs = []
    for run, jobs in enumerate((1, 2, 2)):
        out = tmp_path / f"run{run}"
        assert librispeech.main(["--src", str(ls_tree / "LibriSpeech"), "--out", str(out), "--jobs", str(jobs)]) == 0
        outputs.append([(out / f"{s}.jsonl").read_bytes() for s in LS_GOOD])
        assert not list(out.glob("*.tmp"))
    assert outputs[0] == outputs[1] == outputs[2]
    capsys.readouterr()


def test_librispeech_single_subset_and_filter(ls_tree, tmp_path, capsys):
    one = tmp_path / "one"
    assert librispeech.main(["--src", str(ls_tree / "LibriSpeech" / "test-clean"), "--out", str(one)]) == 0
    assert [p.name for p in one.iterdir()] == ["test-clean.jsonl"]
    assert [e["id"] for e in read_manifest(one / "test-clean.jsonl")] == [u for u, _ in LS_GOOD["test-clean"]]
    picked = tmp_path / "picked"
    assert librispeech.main(["--src", str(ls_tree), "--out", str(picked), "--subsets", "test-clean"]) == 0
    assert (picked / "test-clean.jsonl").read_bytes() == (one / "test-clean.jsonl").read_bytes()
    assert not (picked / "dev-clean.jsonl").exists()
    capsys.readouterr()
    assert librispeech.main(["--src", str(ls_tree), "--out", str(picked), "--subsets", "train-other-500"]) == 1
    assert errors(capsys.readouterr().err) == [
        f"error: {ls_tree}: subset(s) train-other-500 not found; found dev-clean, test-clean"]


def test_librispeech_not_a_tree_and_all_bad(tmp_path, capsys):
    assert librispeech.main(["--src", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "no LibriSpeech subset here" in err[0]
    chapter = tmp_path / "dev-other" / "7" / "11"
    chapter.mkdir(parents=True)
    (chapter / "7-11.trans.txt").write_text("7-11-0000 NOTHING HERE\n")
    assert librispeech.main(["--src", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 3 and "7-11-0000.flac: not found" in err[0] and "no usable utterance" in err[1]
    assert list((tmp_path / "out").iterdir()) == []  # nothing written, no temporary file left


# --- Common Voice ---------------------------------------------------------------------------------

NEW_HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes", "down_votes", "age",
              "gender", "accents", "variant", "locale", "segment"]
OLD_HEADER = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accent"]
CV_TEXTS = ['He said "Hello, world!" - didn\'t he?',
            '"Quoted" at the start; then: a colon, (brackets) & more…',
            "Plain sentence.",
            "¿Dónde está la biblioteca?",
            "It's 5 o'clock -- isn't it?"]
SPEAKERS = ["a" * 64, "b" * 64, "c" * 64]


def cv_row(header: list[str], client: str, path: str, sentence: str) -> str:
    values = {"client_id": client, "path": path, "sentence": sentence, "locale": "en", "up_votes": "2",
              "down_votes": "0", "sentence_id": "f" * 64}
    return "\t".join(values.get(column, "") for column in header)


@pytest.fixture(scope="module")
def cv_tree(tmp_path_factory, an4_audio) -> Path:
    """A Common Voice language folder: train/dev/test/validated.tsv (new-style columns) and clips/*.mp3 made
    from AN4 audio; bad rows: a clip that is missing, a clip that is not audio, an empty sentence, a row with a
    column too few."""
    if not HAS_MP3:
        pytest.skip("this libsndfile cannot write MP3")
    root = tmp_path_factory.mktemp("cv") / "en"
    clips = root / "clips"
    clips.mkdir(parents=True)
    for index, (samples, rate) in enumerate(an4_audio[:5]):
        soundfile.write(str(clips / f"common_voice_en_{100 + index}.mp3"), samples, rate, format="MP3")
    (clips / "common_voice_en_900.mp3").write_bytes(b"ID3 nonsense " * 40)
    h = NEW_HEADER

    def write(name: str, rows: list[str]) -> None:
        (root / f"{name}.tsv").write_text("\t".join(h) + "\n" + "".join(row + "\n" for row in rows), encoding="utf-8")

    write("train", [cv_row(h, SPEAKERS[0], "common_voice_en_100.mp3", CV_TEXTS[0]),
                    cv_row(h, SPEAKERS[1], "common_voice_en_101.mp3", CV_TEXTS[1]),
                    cv_row(h, SPEAKERS[1], "common_voice_en_404.mp3", "This clip is missing."),
                    cv_row(h, SPEAKERS[0], "common_voice_en_102.mp3", CV_TEXTS[2]),
                    cv_row(h, SPEAKERS[2], "common_voice_en_900.mp3", "Not audio at all."),
                    cv_row(h, SPEAKERS[2], "common_voice_en_104.mp3", "  ")])
    write("dev", [cv_row(h, SPEAKERS[2], "common_voice_en_103.mp3", CV_TEXTS[3]),
                  "\t".join(cv_row(h, SPEAKERS[2], "common_voice_en_104.mp3", "Short row.").split("\t")[:-1])])
    write("test", [cv_row(h, SPEAKERS[0], "common_voice_en_104.mp3", CV_TEXTS[4])])
    write("validated", [cv_row(h, SPEAKERS[0], f"common_voice_en_{100 + i}.mp3", t) for i, t in enumerate(CV_TEXTS)])
    return root


@pytest.fixture(scope="module")
def cv_cli(cv_tree, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("cv_out")
    return out, run_script("commonvoice", "--src", str(cv_tree), "--out", str(out), "--jobs", "2")


@needs_mp3
def test_commonvoice_cli_manifests(cv_cli, cv_tree):
    out, result = cv_cli
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dev.jsonl", "test.jsonl", "train.jsonl"]  # not validated
    expected = {"train": [(100, CV_TEXTS[0], 0), (101, CV_TEXTS[1], 1), (102, CV_TEXTS[2], 0)],
                "dev": [(103, CV_TEXTS[3], 2)], "test": [(104, CV_TEXTS[4], 0)]}
    for split, rows in expected.items():
        raw = [json.loads(line) for line in (out / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert [list(e) for e in raw] == [["id", "audio_filepath", "duration", "text", "speaker"]] * len(rows)
        assert [(e["id"], e["text"], e["speaker"]) for e in raw] == [
            (f"common_voice_en_{n}", text, SPEAKERS[s]) for n, text, s in rows]
        assert all(e["audio_filepath"] == os.path.relpath(cv_tree / "clips" / f"{e['id']}.mp3", out) for e in raw)
        for e in read_manifest(out / f"{split}.jsonl"):
            clip = cv_tree / "clips" / f"{e['id']}.mp3"
            assert Path(e["audio_filepath"]) == clip.resolve()
            assert e["duration"] == pytest.approx(header_duration(clip), abs=1e-3) and e["duration"] > 0.5
    assert "train: 3 clips, 2 speakers" in result.stdout and "3 skipped" in result.stdout
    assert "dev: 1 clips, 1 speakers" in result.stdout and "1 skipped" in result.stdout


@needs_mp3
def test_commonvoice_bad_rows_one_line_each(cv_cli, cv_tree):
    _, result = cv_cli
    lines = errors(result.stderr)
    assert len(lines) == 4, result.stderr
    train, dev, clips = cv_tree / "train.tsv", cv_tree / "dev.tsv", cv_tree / "clips"
    expected = [(f"{clips / 'common_voice_en_404.mp3'}: not found", f"{train}:4"),
                (f"{clips / 'common_voice_en_900.mp3'}: not readable as audio", f"{train}:6"),
                (f"{train}:7: empty sentence for {clips / 'common_voice_en_104.mp3'}", "row skipped"),
                (f"{dev}:3: 12 columns, the header has 13", "row skipped")]
    for first, second in expected:
        assert sum(first in line and second in line for line in lines) == 1, (first, lines)


@needs_mp3
def test_commonvoice_deterministic_and_splits(cv_tree, tmp_path, capsys):
    outputs = []
    for run, jobs in enumerate((1, 2, 2)):
        out = tmp_path / f"run{run}"
        assert commonvoice.main(["--src", str(cv_tree), "--out", str(out), "--jobs", str(jobs),
                                 "--splits", "train", "validated"]) == 0
        outputs.append([(out / f"{s}.jsonl").read_bytes() for s in ("train", "validated")])
        assert sorted(p.name for p in out.iterdir()) == ["train.jsonl", "validated.jsonl"]
    assert outputs[0] == outputs[1] == outputs[2]
    validated = read_manifest(tmp_path / "run0" / "validated.jsonl")
    assert [e["text"] for e in validated] == CV_TEXTS
    capsys.readouterr()
    assert commonvoice.main(["--src", str(cv_tree), "--out", str(tmp_path / "x"), "--splits", "other"]) == 1
    assert errors(capsys.readouterr().err) == [f"error: {cv_tree / 'other.tsv'}: not found"]
    assert not (tmp_path / "x").exists()


@needs_mp3
def test_commonvoice_old_header_subset_of_splits_and_bad_header(cv_tree, tmp_path, capsys):
    src = tmp_path / "cy"
    (src / "clips").mkdir(parents=True)
    clip = src / "clips" / "common_voice_cy_1.mp3"
    clip.write_bytes((cv_tree / "clips" / "common_voice_en_100.mp3").read_bytes())
    (src / "test.tsv").write_text("\t".join(OLD_HEADER) + "\n" +
                                  cv_row(OLD_HEADER, "z" * 64, "common_voice_cy_1.mp3", 'Mae "hi" yma.') + "\n")
    assert commonvoice.main(["--src", str(src), "--out", str(src / "out"), "--jobs", "1"]) == 0
    [entry] = read_manifest(src / "out" / "test.jsonl")
    assert (entry["id"], entry["text"], entry["speaker"]) == ("common_voice_cy_1", 'Mae "hi" yma.', "z" * 64)
    assert entry["duration"] == pytest.approx(header_duration(clip), abs=1e-3)
    (src / "dev.tsv").write_text("client_id\tfilename\tsentence\n")
    capsys.readouterr()
    assert commonvoice.main(["--src", str(src), "--out", str(tmp_path / "x")]) == 1
    err = errors(capsys.readouterr().err)
    assert len(err) == 1 and "dev.tsv: no column(s) path in its header" in err[0]
    assert not (tmp_path / "x").exists()  # headers are all checked before anything is written
