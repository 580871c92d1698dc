"""Hostile and careless inputs through the training and scoring commands (issue 15, items 3, 4, 5, 9): generated bad
manifests, configs, checkpoints, bundles and CMVN files pushed through `train`, `eval`, `stats`, `classify train`,
`classify eval` and `tagger train`. Each must end in one `error:` line naming the culprit and a non-zero exit, never
a traceback, and leave an earlier run folder as it was. The commands run in this process through speechrnn.cli.main
(what a subprocess runs; any exception but SystemExit is a traceback), a few also as real subprocesses."""

import contextlib
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from speechrnn.cli import main

REPO = Path(__file__).resolve().parents[1]
CTC_CONF = REPO / "recipes" / "an4" / "conf" / "default.yaml"
CLASSIFY_CONF = REPO / "recipes" / "fsdd" / "conf" / "default.yaml"
TAGGER_CONF = REPO / "recipes" / "an4" / "conf" / "vad.yaml"
TINY = ["data.cmvn=", "data.num_workers=0", "model.conv_channels=4", "model.rnn.hidden_size=8", "model.rnn.num_layers=1",
        "optim.warmup_steps=1", "train.max_epochs=1", "train.tensorboard=false", "train.device=cpu", "train.threads=1"]


def cli(*argv) -> tuple[int | str, str]:
    """(exit status, stdout + stderr) of `speechrnn ARGV` run in this process; the status is "traceback" when an
    exception other than SystemExit escaped main()."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main([str(a) for a in argv])
            status = 0
        except SystemExit as done:
            status = done.code if isinstance(done.code, int) else 1
        except BaseException:  # noqa: BLE001 - what a user would see as a traceback
            status, _ = "traceback", out.write(traceback.format_exc())
    return status, out.getvalue()


def one_error(status, output: str, *culprits: str) -> str:
    """The one `error:` line of a failed command; it names every culprit."""
    assert status not in (0, "traceback"), output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    for culprit in culprits:
        assert culprit in errors[0], (culprit, errors[0])
    return errors[0]


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def write_jsonl(path: Path, entries: list) -> Path:
    path.write_text("".join((e if isinstance(e, str) else json.dumps(e)) + "\n" for e in entries))
    return path


# --- data ------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def data(shared_data, tmp_path_factory) -> Path:
    """An AN4 sliver (train.jsonl 10, dev.jsonl 4: the shortest of 40 files, transcript "HELLO WORLD"), an FSDD
    sliver labelled by digit (fsdd_train.jsonl 20, fsdd_dev.jsonl 10) and tagger labels for the AN4 one."""
    out = tmp_path_factory.mktemp("fuzz_data")
    wavs = sorted((shared_data / "an4" / "wav" / "an4_clstk").glob("*/*.wav"))[:40]
    entries = sorted(({"audio_filepath": str(w), "duration": soundfile.info(str(w)).duration, "text": "HELLO WORLD"}
                      for w in wavs), key=lambda e: e["duration"])
    write_jsonl(out / "train.jsonl", entries[:10])
    write_jsonl(out / "dev.jsonl", entries[10:14])
    digits = [shared_data / "fsdd" / "recordings" / f"{d}_george_{i}.wav" for d in range(10) for i in range(3)]
    labelled = [{"audio_filepath": str(w), "duration": soundfile.info(str(w)).duration, "label": w.name[0]}
                for w in digits]
    write_jsonl(out / "fsdd_train.jsonl", labelled[0::3] + labelled[1::3])
    write_jsonl(out / "fsdd_dev.jsonl", labelled[2::3])
    labels = {Path(e["audio_filepath"]).stem: np.ones(int(e["duration"] * 25), dtype=np.uint8) for e in entries}
    np.savez(out / "labels.npz", **labels)
    return out


def ctc_args(data: Path, exp: Path, *extra) -> list:
    return ["train", CTC_CONF, f"data.train_manifest={data / 'train.jsonl'}", f"data.dev_manifest={data / 'dev.jsonl'}",
            *TINY, f"train.exp_dir={exp}", *extra]


def classify_args(data: Path, exp: Path, *extra) -> list:
    return ["classify", "train", CLASSIFY_CONF, f"data.train_manifest={data / 'fsdd_train.jsonl'}",
            f"data.dev_manifest={data / 'fsdd_dev.jsonl'}", "data.speed_perturb=[]", "data.noise_snr=[]", *TINY,
            f"train.exp_dir={exp}", *extra]


def tagger_args(data: Path, exp: Path, *extra) -> list:
    return ["tagger", "train", TAGGER_CONF, f"data.train_manifest={data / 'train.jsonl'}",
            f"data.dev_manifest={data / 'dev.jsonl'}", f"data.train_labels={data / 'labels.npz'}",
            f"data.dev_labels={data / 'labels.npz'}", *TINY, f"train.exp_dir={exp}", *extra]


def trained(args, folder: Path) -> Path:
    """A finished run folder (last.pt, best.pt, model.pt, train_log.jsonl) of the command `args(folder)`."""
    status, output = cli(*args(folder))
    assert status == 0, output
    return folder


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory) -> Path:
    """A finished CTC run folder."""
    return trained(lambda exp: ctc_args(data, exp), tmp_path_factory.mktemp("finished"))


@pytest.fixture(scope="module")
def classifier(data, tmp_path_factory) -> Path:
    return trained(lambda exp: classify_args(data, exp), tmp_path_factory.mktemp("classifier"))


# --- item 3: an earlier run is never clobbered ----------------------------------------------------------------

@pytest.mark.parametrize("command", [ctc_args, classify_args, tagger_args])
def test_training_into_an_earlier_run_is_refused_without_resume_or_overwrite(data, finished, command, tmp_path):
    exp = tmp_path / "exp"
    exp.mkdir()
    for name in ("last.pt", "best.pt", "model.pt", "train_log.jsonl"):
        (exp / name).write_bytes((finished / name).read_bytes())
    before = snapshot(exp)
    status, output = cli(*command(data, exp))
    one_error(status, output, str(exp), "--resume", "--overwrite")
    assert snapshot(exp) == before


@pytest.mark.parametrize("only", ["model.pt", "train_log.jsonl", "best.pt"])
def test_any_trace_of_a_run_counts(data, finished, only, tmp_path):
    (tmp_path / only).write_bytes((finished / only).read_bytes())
    before = snapshot(tmp_path)
    one_error(*cli(*ctc_args(data, tmp_path)), str(tmp_path), only)
    assert snapshot(tmp_path) == before
    (tmp_path / only).write_text("") if only == "train_log.jsonl" else (tmp_path / only).unlink()  # an empty log is none
    assert cli(*ctc_args(data, tmp_path))[0] == 0


def test_resume_without_last_pt_keeps_a_finished_run_and_restarts_a_first_epoch_killed_while_saving(data, finished,
                                                                                                    tmp_path):
    (tmp_path / "model.pt").write_bytes((finished / "model.pt").read_bytes())
    before = snapshot(tmp_path)
    one_error(*cli(*ctc_args(data, tmp_path), "--resume"), str(tmp_path), "model.pt", "no last.pt")
    assert snapshot(tmp_path) == before
    killed = tmp_path / "killed"  # killed between best.pt and last.pt of epoch 1: the log line and best.pt are there
    killed.mkdir()
    for name in ("best.pt", "train_log.jsonl"):
        (killed / name).write_bytes((finished / name).read_bytes())
    status, output = cli(*ctc_args(data, killed), "--resume")
    assert status == 0, output
    assert [json.loads(line)["epoch"] for line in (killed / "train_log.jsonl").read_text().splitlines()] == [1]


def test_overwrite_replaces_the_earlier_run_and_says_so(data, finished, tmp_path):
    for name in ("last.pt", "best.pt", "model.pt", "train_log.jsonl"):
        (tmp_path / name).write_bytes((finished / name).read_bytes())
    (tmp_path / "train_log.jsonl").write_text((finished / "train_log.jsonl").read_text() * 3)  # 3 epochs logged
    status, output = cli(*ctc_args(data, tmp_path), "--overwrite")
    assert status == 0, output
    notes = [line for line in output.splitlines() if "--overwrite" in line]
    assert len(notes) == 1 and "last.pt" in notes[0] and str(tmp_path) in notes[0]
    assert len((tmp_path / "train_log.jsonl").read_text().splitlines()) == 1
    status, output = cli(*ctc_args(data, tmp_path), "--overwrite", "--resume")
    assert status == 2 and "not allowed with" in output and "Traceback" not in output


# --- item 4: unreadable data is checked before training ------------------------------------------------------

def bad_audio(folder: Path, count: int) -> list[dict]:
    """Entries of unreadable files: text, random bytes, empty, missing, a folder, a FIFO."""
    folder.mkdir(exist_ok=True)
    kinds = []
    for i in range(count):
        path = folder / f"bad{i}.wav"
        kind = i % 6
        if kind == 0:
            path.write_text("not audio")
        elif kind == 1:
            path.write_bytes(os.urandom(500))
        elif kind == 2:
            path.write_bytes(b"")
        elif kind == 4:
            path.mkdir()
        elif kind == 5:
            os.mkfifo(path)
        kinds.append({"audio_filepath": str(path), "duration": 1.0, "text": "HELLO"})
    return kinds


def test_all_unreadable_audio_stops_before_training(data, tmp_path):
    manifest = write_jsonl(tmp_path / "bad.jsonl", bad_audio(tmp_path / "wav", 6))
    status, output = cli(*ctc_args(data, tmp_path / "exp", f"data.train_manifest={manifest}"))
    line = one_error(status, output, str(manifest), "0 of 6")
    assert "none to train on" in line
    assert not (tmp_path / "exp" / "last.pt").exists() and not (tmp_path / "exp" / "model.pt").exists()
    dev = cli(*ctc_args(data, tmp_path / "exp2", f"data.dev_manifest={manifest}"))
    one_error(*dev, str(manifest), "0 of 6")


def test_some_unreadable_files_are_reported_once_and_left_out(data, tmp_path):
    good = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    manifest = write_jsonl(tmp_path / "mixed.jsonl", good + bad_audio(tmp_path / "wav", 1))
    status, output = cli(*ctc_args(data, tmp_path / "exp", f"data.train_manifest={manifest}", "train.max_epochs=2"))
    assert status == 0, output
    assert sum("bad0.wav" in line for line in output.splitlines()) == 1, output  # once, not every epoch
    assert "1 of 11 audio file(s) unreadable and left out" in output
    assert "train 10 samples" in output  # not counted as samples
    status, output = cli(*ctc_args(data, tmp_path / "exp2", f"data.train_manifest={manifest}", "data.min_usable=0.95"))
    one_error(status, output, str(manifest), "10 of 11", "data.min_usable=0.95")


def test_a_file_shorter_than_its_manifest_says_is_reported_and_its_real_duration_used(data, tmp_path):
    from speechrnn.config import load_config
    from speechrnn.data import load_dataset
    from speechrnn.datacheck import usable_audio
    from speechrnn.text import Tokenizer

    entries = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    whole = Path(entries[0]["audio_filepath"]).read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(whole[: 44 + (len(whole) - 44) // 2])  # half its samples, header unchanged
    entries[0] = {**entries[0], "audio_filepath": str(truncated)}
    manifest = write_jsonl(tmp_path / "m.jsonl", entries)
    config = load_config(CTC_CONF, [f"data.train_manifest={manifest}", "data.dev_manifest=x"])
    tokenizer = Tokenizer.build(["HELLO WORLD"], config.text)
    dataset = load_dataset(config, manifest, tokenizer)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        checked = usable_audio(dataset, config.data, str(manifest))
    assert "truncated.wav" in err.getvalue() and "real duration is used" in err.getvalue()
    real = soundfile.info(str(truncated)).duration
    assert checked.utterances.durations[0] == pytest.approx(real) and real < entries[0]["duration"] - 0.1
    assert checked.input_lengths[0] == int(real * 16000)
    with contextlib.redirect_stderr(io.StringIO()):
        original = load_dataset(config, data / "train.jsonl", tokenizer)
        assert usable_audio(original, config.data, "train") is original  # valid data: the very same dataset


# --- item 5: manifest fields of the wrong type, empty manifests ----------------------------------------------

BAD_FIELDS = [("duration", None), ("duration", "abc"), ("duration", math.nan), ("duration", -1.5),
              ("duration", 1e300), ("duration", True), ("audio_filepath", 5), ("audio_filepath", None),
              ("audio_filepath", ""), ("text", None), ("text", 7), ("text", ["A"]), ("id", None), ("id", {"a": 1})]


def bad_manifest(data: Path, folder: Path, key: str, value, source: str = "train.jsonl") -> Path:
    entries = [json.loads(line) for line in (data / source).read_text().splitlines()]
    entries[1][key] = value
    return write_jsonl(folder / f"bad_{key}.jsonl", [json.dumps(e) for e in entries])  # NaN written as NaN


@pytest.mark.parametrize("key, value", BAD_FIELDS)
def test_a_field_of_the_wrong_type_is_one_line_naming_file_line_and_field(data, finished, key, value, tmp_path):
    manifest = bad_manifest(data, tmp_path, key, value)
    for argv in (["eval", finished / "model.pt", manifest, "--out", tmp_path / "eval"],
                 ctc_args(data, tmp_path / "exp", f"data.train_manifest={manifest}"),
                 ctc_args(data, tmp_path / "exp", f"data.dev_manifest={manifest}")):
        one_error(*cli(*argv), f"{manifest}:2", key)
    assert not (tmp_path / "exp" / "last.pt").exists()


@pytest.mark.parametrize("line", ['{"audio_filepath": "a.wav", "duration": 1', "[1, 2]", '"text"', "null",
                                  '{"duration": 1.0, "text": "A"}', b"\xff\xfe{}".decode("latin-1")])
def test_lines_that_are_not_entries_are_one_line(data, finished, line, tmp_path):
    good = (data / "train.jsonl").read_text().splitlines()
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(("\n".join([good[0], "", good[1], line, good[2]]) + "\n").encode("latin-1"))
    one_error(*cli("eval", finished / "model.pt", manifest, "--out", tmp_path), f"{manifest}:4")


def test_blank_and_duplicate_lines_are_fine(data, finished, tmp_path):
    good = (data / "dev.jsonl").read_text().splitlines()
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n\n".join(good + good[:1]) + "\n\n")
    status, output = cli("eval", finished / "model.pt", manifest, "--out", tmp_path)
    assert status == 0 and "Traceback" not in output, output
    assert len((tmp_path / "m.per_utt.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_an_empty_manifest_is_an_error_in_eval_train_and_stats(data, finished, content, tmp_path):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text(content)
    before = snapshot(finished)
    for argv in (["eval", finished / "model.pt", manifest, "--out", tmp_path],
                 ctc_args(data, tmp_path / "exp", f"data.train_manifest={manifest}"),
                 ctc_args(data, finished, f"data.dev_manifest={manifest}", "--resume"),
                 ["stats", CTC_CONF, f"data.train_manifest={manifest}", "data.dev_manifest=x", "-o", tmp_path / "s.pt"],
                 ["classify", "eval", finished / "model.pt", manifest]):
        one_error(*cli(*argv), str(manifest) if argv[0] != "classify" else "model.pt")
    assert not (tmp_path / "summary.json").exists() and snapshot(finished) == before


def test_classify_and_tagger_manifests_are_checked_too(data, classifier, tmp_path):
    for key, value in (("duration", "abc"), ("label", None), ("audio_filepath", 5)):
        manifest = bad_manifest(data, tmp_path, key, value, "fsdd_train.jsonl")
        one_error(*cli(*classify_args(data, tmp_path / "exp", f"data.train_manifest={manifest}")), f"{manifest}:2", key)
        one_error(*cli("classify", "eval", classifier / "model.pt", manifest, "--out", tmp_path), f"{manifest}:2", key)
    for key, value in (("duration", None), ("audio_filepath", [])):
        manifest = bad_manifest(data, tmp_path, key, value)
        one_error(*cli(*tagger_args(data, tmp_path / "exp", f"data.train_manifest={manifest}")), f"{manifest}:2", key)
    all_bad = write_jsonl(tmp_path / "all_bad.jsonl", bad_audio(tmp_path / "wav", 4))
    with np.load(data / "labels.npz") as stored:
        np.savez(tmp_path / "labels.npz", **dict(stored), **{f"bad{i}": np.ones(25, dtype=np.uint8) for i in range(4)})
    one_error(*cli(*tagger_args(data, tmp_path / "exp", f"data.dev_manifest={all_bad}",
                                f"data.dev_labels={tmp_path / 'labels.npz'}")), str(all_bad), "0 of 4")
    labelled = [{**e, "label": "1"} for e in bad_audio(tmp_path / "wav2", 4)]
    all_bad = write_jsonl(tmp_path / "all_bad_labelled.jsonl", labelled)
    one_error(*cli(*classify_args(data, tmp_path / "exp", f"data.dev_manifest={all_bad}")), str(all_bad), "0 of 4")
    assert not (tmp_path / "exp" / "last.pt").exists()


# --- item 9: configs, checkpoints, bundles, CMVN files, unwritable folders ------------------------------------

BAD_OVERRIDES = [("model.rnn.hidden_size=-5", "model.rnn.hidden_size"), ("model.rnn.hidden_size=abc", "hidden_size"),
                 ("optim.lr=-1e-3", "optim.lr"), ("optim.lr=nan", "optim.lr"), ("train.max_epochs=0", "max_epochs"),
                 ("model.rnn.num_layers=0", "num_layers"), ("data.max_frames=-1", "data.max_frames"),
                 ("model.rnn.dropout=1.5", "model.rnn.dropout"), ("data.speed_perturb=[0.9,-1]", "speed_perturb"),
                 ("optim.betas=[0.9,2]", "optim.betas"), ("train.seed=-3", "train.seed"),
                 ("features.n_mels=0", "features.n_mels"), ("data.min_usable=1.5", "data.min_usable"),
                 ("model=[1,2]", "model"), ("train.patience=-1", "patience"), ("model.rnn=5", "model.rnn")]


@pytest.mark.parametrize("override, key", BAD_OVERRIDES)
@pytest.mark.parametrize("command", [ctc_args, classify_args, tagger_args])
def test_nonsensical_config_values_are_one_line_naming_the_key(data, command, override, key, tmp_path):
    one_error(*cli(*command(data, tmp_path / "exp", override)), key)
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("text, culprit", [("- a\n- b\n", "mapping"), ("model: [1, 2]\n", "ModelConfig"),
                                           ("data: 5\n", "DataConfig"), ("train:\n  max_epochs: [3]\n", "max_epochs"),
                                           ("7\n", "mapping"), ("optim:\n  lr: -1\n", "optim.lr")])
def test_yaml_of_the_wrong_shape_is_one_line(data, text, culprit, tmp_path):
    conf = tmp_path / "conf.yaml"
    conf.write_text(text)
    argv = ctc_args(data, tmp_path / "exp")
    argv[1] = conf
    one_error(*cli(*argv), culprit)


def damaged(kind: str, finished: Path, classifier: Path, path: Path) -> Path:
    """A file standing in for a checkpoint or bundle: truncated, random bytes, text, pickled code, another model's."""
    source = (finished / "last.pt").read_bytes()
    if kind == "truncated":
        path.write_bytes(source[: len(source) // 2])
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif kind == "text":
        path.write_text("just some text\n")
    elif kind == "code":
        torch.save({"model": print}, path)
    elif kind == "bundle":
        path.write_bytes((finished / "model.pt").read_bytes())
    elif kind == "classifier":
        path.write_bytes((classifier / "last.pt").read_bytes())
    return path


@pytest.mark.parametrize("kind", ["truncated", "random", "text", "code", "bundle", "classifier"])
def test_resuming_from_a_damaged_or_foreign_last_pt_is_one_line(data, finished, classifier, kind, tmp_path):
    for name in ("best.pt", "model.pt", "train_log.jsonl"):
        (tmp_path / name).write_bytes((finished / name).read_bytes())
    damaged(kind, finished, classifier, tmp_path / "last.pt")
    before = snapshot(tmp_path)
    line = one_error(*cli(*ctc_args(data, tmp_path, "train.max_epochs=2"), "--resume"), str(tmp_path / "last.pt"))
    assert "--overwrite" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("change", ["model.rnn.hidden_size=12", "model.rnn.num_layers=2", "model.conv_channels=0",
                                    "model.rnn.cell=gru", "features.n_mels=40"])
def test_resuming_with_another_model_is_one_line_naming_the_difference(data, finished, change, tmp_path):
    for name in ("last.pt", "best.pt", "model.pt", "train_log.jsonl"):
        (tmp_path / name).write_bytes((finished / name).read_bytes())
    before = snapshot(tmp_path)
    line = one_error(*cli(*ctc_args(data, tmp_path, "train.max_epochs=2", change), "--resume"),
                     str(tmp_path / "last.pt"), change.split("=")[0])
    assert len(line) < 600
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["truncated", "random", "text", "code", "classifier"])
def test_damaged_or_foreign_bundles_are_one_line_in_eval_and_classify_eval(data, finished, classifier, kind, tmp_path):
    bundle = damaged(kind, finished, classifier, tmp_path / "model.pt")
    if kind == "classifier":
        bundle.write_bytes((classifier / "model.pt").read_bytes())
    one_error(*cli("eval", bundle, data / "dev.jsonl", "--out", tmp_path), str(bundle))
    if kind == "classifier":
        bundle.write_bytes((finished / "model.pt").read_bytes())
    one_error(*cli("classify", "eval", bundle, data / "fsdd_dev.jsonl", "--out", tmp_path), str(bundle))


def test_a_bundle_whose_weights_do_not_fit_its_config_is_one_line(data, finished, tmp_path):
    bundle = torch.load(finished / "model.pt", weights_only=True)
    bundle["config"]["model"]["rnn"]["hidden_size"] = 12
    torch.save(bundle, tmp_path / "model.pt")
    one_error(*cli("eval", tmp_path / "model.pt", data / "dev.jsonl", "--out", tmp_path), str(tmp_path / "model.pt"),
              "do not fit")


def test_model_loading_errors_are_not_cut_mid_word(tmp_path):
    from speechrnn.bundle import load_bundle
    from speechrnn.errors import BundleError

    torch.save({"format": print}, tmp_path / "code.pt")
    with pytest.raises(BundleError) as err:
        load_bundle(tmp_path / "code.pt")
    message = str(err.value)
    assert "Unsupported global: GLOBAL print was not an allowed global by default" in message, message
    assert message.endswith(")") and "\n" not in message and "\x1b" not in message


@pytest.mark.parametrize("kind", ["missing", "random", "text", "no_keys", "wrong_size", "nan"])
def test_a_bad_cmvn_file_is_one_line(data, kind, tmp_path):
    cmvn = tmp_path / "cmvn.pt"
    if kind == "random":
        cmvn.write_bytes(os.urandom(1000))
    elif kind == "text":
        cmvn.write_text("mean std\n")
    elif kind == "no_keys":
        torch.save({"avg": torch.zeros(80)}, cmvn)
    elif kind == "wrong_size":
        torch.save({"mean": torch.zeros(3), "std": torch.ones(3)}, cmvn)
    elif kind == "nan":
        torch.save({"mean": torch.full((80,), math.nan), "std": torch.ones(80)}, cmvn)
    argv = ctc_args(data, tmp_path / "exp", f"data.cmvn={cmvn}")
    one_error(*cli(*argv), f"data.cmvn={cmvn}")
    assert not (tmp_path / "exp" / "last.pt").exists()


def test_an_unwritable_experiment_folder_is_one_line_naming_the_file(data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    one_error(*cli(*ctc_args(data, blocker / "exp")), str(blocker / "exp"), "train.exp_dir")
    (tmp_path / "exp" / "best.pt.tmp").mkdir(parents=True)  # the checkpoint cannot be written
    one_error(*cli(*ctc_args(data, tmp_path / "exp")), str(tmp_path / "exp" / "best.pt"))
    one_error(*cli("stats", CTC_CONF, f"data.train_manifest={data / 'dev.jsonl'}", "data.dev_manifest=x",
                   "-o", blocker / "cmvn.pt"), str(blocker / "cmvn.pt"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_experiment_folder_is_one_line(data, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        one_error(*cli(*ctc_args(data, folder)), str(folder))
    finally:
        folder.chmod(0o755)


def test_real_subprocesses_end_in_one_line_too(data, finished, tmp_path):
    """The same through `python -m speechrnn`: an earlier run, unreadable audio, a corrupt last.pt."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    (tmp_path / "last.pt").write_bytes(b"\x00" * 100)
    bad = write_jsonl(tmp_path / "bad.jsonl", bad_audio(tmp_path / "wav", 3))
    before = snapshot(finished)
    for argv in (ctc_args(data, finished), ctc_args(data, tmp_path / "e", f"data.train_manifest={bad}"),
                 ctc_args(data, tmp_path, "--resume")):
        run = subprocess.run([sys.executable, "-m", "speechrnn", *map(str, argv)], env=env, capture_output=True,
                             text=True, timeout=120)
        one_error(run.returncode, run.stdout + run.stderr)
    assert snapshot(finished) == before


def test_a_damaged_train_log_does_not_stop_a_resume(tmp_path):
    from speechrnn.training.state import trim_log

    log = tmp_path / "train_log.jsonl"
    log.write_bytes(b'{"epoch": 1, "x": 1}\n{"epoch": 2}\nnot json\n[1]\n{"epoch": "3"}\n\xff\n{"epoch": 3, "x": ')
    trim_log(log, 2)
    assert log.read_text() == '{"epoch": 1, "x": 1}\n{"epoch": 2}\n'


def test_a_classifier_bundle_whose_weights_do_not_fit_is_one_line(data, classifier, tmp_path):
    bundle = torch.load(classifier / "model.pt", weights_only=True)
    bundle["config"]["model"]["rnn"]["hidden_size"] = 12
    torch.save(bundle, tmp_path / "model.pt")
    one_error(*cli("classify", "eval", tmp_path / "model.pt", data / "fsdd_dev.jsonl", "--out", tmp_path),
              str(tmp_path / "model.pt"), "do not fit")


def test_an_empty_manifest_is_an_error_in_classify_eval_too(classifier, tmp_path):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text("\n")
    one_error(*cli("classify", "eval", classifier / "model.pt", manifest, "--out", tmp_path), str(manifest), "empty")
    assert not list(tmp_path.glob("*.summary.json"))
