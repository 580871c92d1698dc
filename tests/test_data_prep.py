"""data_prep/an4.py and data_prep/yesno.py: on the real shared corpora and on tiny fake trees."""

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

import an4  # data_prep/an4.py: pyproject's pytest pythonpath lists data_prep/
import yesno
from speechrnn.data import read_manifest

REPO = Path(__file__).resolve().parents[1]

SHARED = REPO.parent / "shared" / "data"
AN4 = SHARED / "an4"
YESNO = SHARED / "yesno"
needs_an4 = pytest.mark.skipif(not (AN4 / "etc").is_dir(), reason=f"AN4 not found at {AN4}")
needs_yesno = pytest.mark.skipif(not (YESNO / "waves_yesno").is_dir(), reason=f"yesno not found at {YESNO}")


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, f"data_prep/{name}.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


# --- AN4 on the real corpus -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def an4_manifests(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("an4")
    return out, run_script("an4", "--src", str(AN4), "--out", str(out))


@needs_an4
def test_an4_real_counts_and_splits(an4_manifests):
    out, result = an4_manifests
    assert result.returncode == 0, result.stderr
    splits = {name: read_manifest(out / f"{name}.jsonl") for name in ("train", "dev", "test")}
    speakers = {name: {e["speaker"] for e in entries} for name, entries in splits.items()}
    assert len(splits["train"]) + len(splits["dev"]) == 948
    assert len(speakers["train"] | speakers["dev"]) == 74
    assert len(splits["test"]) == 130 and len(speakers["test"]) == 10
    assert not speakers["train"] & speakers["dev"]
    assert not (speakers["train"] | speakers["dev"]) & speakers["test"]
    assert speakers["dev"] == set(sorted(speakers["train"] | speakers["dev"])[::10]) and len(speakers["dev"]) == 8
    for entries in splits.values():
        for e in entries:
            assert e["duration"] > 0 and Path(e["audio_filepath"]).is_file()
            assert e["text"] and e["text"] == e["text"].strip()
            assert not any(marker in e["text"] for marker in ("<s>", "</s>", "(", ")"))
            assert e["id"].endswith(f"-{e['speaker']}-b")
    summary = result.stdout.splitlines()
    assert [line.split(":")[0] for line in summary] == ["train", "dev", "test"]
    assert "130 utterances, 10 speakers" in summary[2]


@needs_an4
def test_an4_manifest_paths_are_relative(an4_manifests):
    out, _ = an4_manifests
    first = (out / "test.jsonl").read_text().splitlines()[0]
    assert '"audio_filepath": "..' in first and '"text": "RUBOUT G M E F THREE NINE"' in first


@needs_an4
def test_an4_importable_dev_every(tmp_path):
    splits = an4.prepare(AN4, tmp_path, dev_every=0)
    assert len(splits["train"]) == 948 and splits["dev"] == [] and len(splits["test"]) == 130


def test_parse_transcription(tmp_path):
    path = tmp_path / "t.transcription"
    path.write_text("<s> YES </s> (an251-fash-b)\nRUBOUT G M E F THREE NINE (an406-fcaw-b)\n\n")
    assert an4.parse_transcription(path) == [("an251-fash-b", "YES"), ("an406-fcaw-b", "RUBOUT G M E F THREE NINE")]
    path.write_text("<s> YES </s>\n")
    with pytest.raises(an4.PrepError, match=r"t.transcription:1"):
        an4.parse_transcription(path)


# --- AN4 layout B (the original sphere tarball), built small -----------------------------------------

TRAIN = {"fash": ["an251-fash-b", "an253-fash-b"], "fbbh": ["an86-fbbh-b"], "mblw": ["an1-mblw-b"]}
TEST = {"fcaw": ["an406-fcaw-b"]}


def write_fake_an4(root: Path, suffix: str = ".sph") -> None:
    """An AN4 tree under root/an4 with short sphere files and the real etc/ formats."""
    etc = root / "an4" / "etc"
    etc.mkdir(parents=True)
    for split, folder, speakers, markers in (("train", "an4_clstk", TRAIN, True), ("test", "an4test_clstk", TEST, False)):
        fileids, lines = [], []
        for spk, utts in speakers.items():
            (root / "an4" / "wav" / folder / spk).mkdir(parents=True)
            for i, utt in enumerate(utts):
                samples = np.random.default_rng(i).uniform(-0.1, 0.1, 1600 * (i + 1)).astype("float32")
                soundfile.write(root / "an4" / "wav" / folder / spk / f"{utt}{suffix}", samples, 16000, format="NIST")
                fileids.append(f"{folder}/{spk}/{utt}")
                lines.append(f"<s> TWO NINE </s> ({utt})" if markers else f"TWO NINE ({utt})")
        (etc / f"an4_{split}.fileids").write_text("\n".join(fileids) + "\n")
        (etc / f"an4_{split}.transcription").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake_tarball(tmp_path) -> Path:
    write_fake_an4(tmp_path / "build")
    archive = tmp_path / "dl" / "an4_sphere.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "an4", arcname="an4")
    return archive


def test_an4_sphere_tarball_extract_and_prepare(fake_tarball, tmp_path):
    an4.safe_extract(fake_tarball, tmp_path / "x")
    splits = an4.prepare(tmp_path / "x", tmp_path / "out", dev_every=2)  # the parent of an4/ works as --src
    assert {e["speaker"] for e in splits["dev"]} == {"fash", "mblw"}  # sorted fash fbbh mblw -> 0, 2
    assert [e["id"] for e in splits["train"]] == ["an86-fbbh-b"]
    assert splits["test"][0]["text"] == "TWO NINE" and splits["test"][0]["speaker"] == "fcaw"
    durations = {e["id"]: e["duration"] for e in read_manifest(tmp_path / "out" / "dev.jsonl")}
    assert durations == {"an251-fash-b": 0.1, "an253-fash-b": 0.2, "an1-mblw-b": 0.1}
    assert all(Path(e["audio_filepath"]).suffix == ".sph" for e in read_manifest(tmp_path / "out" / "test.jsonl"))


def test_an4_download_dir_with_archive_present(fake_tarball, tmp_path):
    """--download skips fetching when the archive is already in DIR, then extracts it there (layout B)."""
    result = run_script("an4", "--download", str(fake_tarball.parent), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (fake_tarball.parent / "an4" / "etc" / "an4_train.transcription").is_file()
    assert result.stdout.splitlines()[0].startswith("train: 2 utterances, 2 speakers")  # fash held out


def test_an4_download_from_file_url(fake_tarball, tmp_path):
    root = an4.download(tmp_path / "fetched", url=fake_tarball.as_uri())
    assert root == tmp_path / "fetched" / "an4" and (tmp_path / "fetched" / "an4_sphere.tar.gz").is_file()


def test_an4_download_failure_is_one_line(tmp_path):
    with pytest.raises(an4.PrepError, match="download of .* failed"):
        an4.download(tmp_path, url=(tmp_path / "missing.tar.gz").as_uri())
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil.txt", "an4/../../evil.txt"])
def test_an4_unsafe_tarball_refused(tmp_path, name):
    archive = tmp_path / "bad.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    with pytest.raises(an4.PrepError, match="unsafe member"):
        an4.safe_extract(archive, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_an4_missing_audio_is_skipped_and_counted(tmp_path):
    write_fake_an4(tmp_path, suffix=".wav")
    (tmp_path / "an4" / "wav" / "an4_clstk" / "fash" / "an253-fash-b.wav").unlink()
    result = run_script("an4", "--src", str(tmp_path / "an4"), "--out", str(tmp_path / "out"), "--dev-every", "0")
    assert result.returncode == 0, result.stderr
    assert "an253-fash-b" in result.stderr and "skipped 1 utterance" in result.stderr
    assert len(read_manifest(tmp_path / "out" / "train.jsonl")) == 3


def test_an4_not_an4_tree(tmp_path):
    (tmp_path / "wav").mkdir()
    result = run_script("an4", "--src", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert result.stderr.startswith("error:") and "not an AN4 tree" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_an4_missing_transcription(tmp_path):
    write_fake_an4(tmp_path)
    (tmp_path / "an4" / "etc" / "an4_test.transcription").unlink()
    result = run_script("an4", "--src", str(tmp_path), "--out", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "an4_test.transcription: transcription file not found" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an4_needs_a_source(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        an4.main(["--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "--src" in capsys.readouterr().err


# --- yesno ------------------------------------------------------------------------------------------

def test_yesno_label_from_name():
    assert yesno.label_from_name("0_1_1_0_1_0_0_1") == "NO YES YES NO YES NO NO YES"
    with pytest.raises(ValueError):
        yesno.label_from_name("0_2_1")


@needs_yesno
def test_yesno_real_split(tmp_path):
    result = run_script("yesno", "--src", str(YESNO), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    train, test = read_manifest(tmp_path / "train.jsonl"), read_manifest(tmp_path / "test.jsonl")
    assert len(train) == 30 and len(test) == 30
    names = [Path(e["audio_filepath"]).name for e in train + test]
    assert names == sorted(names) and len(set(names)) == 60
    for e in train + test:
        assert e["duration"] > 0 and e["speaker"] == "yesno"
        assert e["text"].split() == ["YES" if d == "1" else "NO" for d in e["id"].split("_")]
        assert len(e["text"].split()) == 8
    assert result.stdout.splitlines()[0].startswith("train: 30 utterances")


@needs_yesno
def test_yesno_waves_folder_itself(tmp_path):
    splits = yesno.prepare(YESNO / "waves_yesno", tmp_path)
    assert [len(splits["train"]), len(splits["test"])] == [30, 30]


def test_yesno_empty_folder(tmp_path, capsys):
    assert yesno.main(["--src", str(tmp_path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "no .wav files" in err
