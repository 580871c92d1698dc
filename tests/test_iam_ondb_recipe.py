"""recipes/iam_ondb/run.sh end to end on a tiny fake IAM-OnDB download in the real layout (the one of
tests/test_iam_ondb.py, with the t1 split lists): manifests, a seconds-long training, greedy decoding, scores."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from test_iam_ondb import make_corpus  # the fake download: lineStrokes/, ascii/, original/, t1 lists

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "recipes" / "iam_ondb" / "run.sh"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--init", "none", "model.rnn.hidden_size=16", "model.rnn.num_layers=1", "ink.stack=1", "ink.augment=false",
        "train.max_epochs=1", "train.threads=1", "data.num_workers=0", "train.tensorboard=false"]
T1_LISTS = {"train": ["trainset.txt"], "dev": ["testset_v.txt", "testset_t.txt"], "test": ["testset_f.txt"]}


def run_recipe(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([str(RUN), *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def recipe_run(tmp_path_factory):
    """Stages 0-4 once, with the manifests and the run under tmp (--exp, given relative to the caller's folder)."""
    top = tmp_path_factory.mktemp("iam_recipe")
    root = make_corpus(top / "IAM-OnDB")
    result = run_recipe("--src", "IAM-OnDB", "--exp", "exp", "--stop-stage", "4", *TINY, cwd=top)
    return root, top / "exp", result


def test_recipe_manifests_follow_t1_lists_and_scores(recipe_run):
    from speechrnn.data import read_manifest

    root, exp, result = recipe_run
    assert result.returncode == 0, result.stderr[-3000:]
    for split, names in T1_LISTS.items():
        listed = {line.strip() for name in names for line in (root / name).read_text().splitlines() if line.strip()}
        entries = read_manifest(exp / "data" / f"{split}.jsonl", fields=("ink_filepath", "ink_index", "text"))
        assert entries and {e["form"] for e in entries} <= listed, split
    sizes = {split: len((exp / "data" / f"{split}.jsonl").read_text().splitlines()) for split in T1_LISTS}
    assert sizes == {"train": 4, "dev": 3, "test": 1}  # the usable lines of trainset, testset_v + _t, testset_f
    assert (exp / "default" / "model.pt").is_file()
    assert not (REPO / "recipes" / "iam_ondb" / "exp").exists()  # everything went under --exp
    results = (exp / "default" / "decode" / "results.txt").read_text().splitlines()
    assert len(results) == 2, results
    for line, split, lines in zip(results, ("dev", "test"), (3, 1)):
        assert re.match(rf"default {split} +greedy: CER \d+\.\d\d %, WER \d+\.\d\d % \({lines} lines, ", line), line


def test_recipe_skips_finished_stages(recipe_run):
    root, exp, _ = recipe_run
    again = run_recipe("--src", str(root), "--exp", str(exp), "--stop-stage", "3", *TINY)
    assert again.returncode == 0, again.stderr[-3000:]
    for skipped in ("stage 1: manifests in", "stage 2: " + str(exp / "default" / "model.pt") + " exists",
                    "stage 3: dev already decoded", "stage 3: test already decoded"):
        assert skipped in again.stderr, again.stderr


def test_missing_source_parts_are_one_error_line(tmp_path):
    result = run_recipe("--stop-stage", "0")
    errors = error_lines(result.stderr)
    assert result.returncode == 1 and len(errors) == 1 and "--src DIR" in errors[0], result.stderr
    root = make_corpus(tmp_path / "IAM-OnDB")
    (root / "testset_f.txt").unlink()
    result = run_recipe("--src", str(root), "--stop-stage", "0")
    errors = error_lines(result.stderr)
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert f"missing {root / 'testset_f.txt'};" in errors[0] and "--splits DIR" in errors[0]
    result = run_recipe("--src", str(tmp_path), "--stop-stage", "0")
    errors = error_lines(result.stderr)
    assert result.returncode == 1 and len(errors) == 1, result.stderr
    assert f"missing {tmp_path / 'lineStrokes'}/, {tmp_path / 'ascii'}/;" in errors[0]


def test_default_config_takes_the_shipped_handwriting_bundle(capsys):
    """conf/default.yaml has UNIPEN's model shape and text settings: the shipped handwriting model fills every
    tensor of a run whose vocabulary adds digits (the head's rows by symbol)."""
    from speechrnn.bundle import load_bundle
    from speechrnn.config import load_config
    from speechrnn.model import build_model
    from speechrnn.tasks.ctc import init_weights_from
    from speechrnn.text import Tokenizer

    config = load_config(REPO / "recipes" / "iam_ondb" / "conf" / "default.yaml")
    assert config.modality == "ink" and config.ink.flip_y and config.text.case == "keep"
    bundle = REPO / "speechrnn" / "pretrained" / "unipen.pt"
    letters = load_bundle(str(bundle))["tokenizer"]["symbols"][1:]
    tokenizer = Tokenizer(sorted({*letters, " ", *"0123456789"}), config.text)
    model = build_model(len(tokenizer), config, training=True)
    init_weights_from(model, str(bundle), tokenizer)
    copied = re.search(r"initialised (\d+) of (\d+) tensors", capsys.readouterr().err)
    assert copied and copied[1] == copied[2], copied
