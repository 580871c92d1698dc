"""Handwriting on the speech spine: a few training steps on real UNIPEN words lower the loss, bad ink in a
manifest is reported and skipped, the bundle transcribes ink files through the CLI, and plot-ink draws them."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.config import load_config
from speechrnn.data import InkDataset, collate, write_manifest
from speechrnn.ink import InkFeatureConfig, featurize, ink_to_dict, write_ink_store, write_json
from speechrnn.model import build_model
from speechrnn.recognizer import Recognizer
from speechrnn.text import TextConfig, Tokenizer
from speechrnn.tasks.ctc import train

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
BAD_INKS = {
    "empty": {"strokes": []},
    "one_point": {"strokes": [[[1.0, 2.0]]]},
    "nan": {"strokes": [[[0.0, 0.0], [float("nan"), 1.0], [2.0, 2.0]]]},
}


@pytest.fixture(scope="module")
def unipen_small(unipen_words, tmp_path_factory) -> Path:
    """40 real words for training (in an ink store) and 10 for dev (inline in the manifest), plus bad inks."""
    out = tmp_path_factory.mktemp("unipen")
    train_words, dev_words = unipen_words[:40], unipen_words[40:50]
    write_ink_store(out / "train_ink.npz", [w.ink for w in train_words])
    entries = [{"id": f"w{i}", "ink_filepath": str(out / "train_ink.npz"), "ink_index": i, "text": w.label}
               for i, w in enumerate(train_words)]
    entries += [{"id": f"bad_{name}", "ink": ink, "text": "bad"} for name, ink in BAD_INKS.items()]
    write_manifest(out / "train.jsonl", entries)
    write_manifest(out / "dev.jsonl", [{"id": f"d{i}", "ink": ink_to_dict(w.ink), "text": w.label}
                                       for i, w in enumerate(dev_words)])
    return out


def ink_config(data: Path, exp_dir: Path, *extra: str):
    return load_config(REPO / "recipes" / "unipen" / "conf" / "default.yaml", [
        f"data.train_manifest={data / 'train.jsonl'}", f"data.dev_manifest={data / 'dev.jsonl'}",
        "data.num_workers=0", "data.max_frames=2000", f"train.exp_dir={exp_dir}", "model.rnn.hidden_size=48",
        "model.rnn.num_layers=2", "optim.warmup_steps=5", "optim.lr=3e-3", "train.tensorboard=false", *extra,
    ])


def test_unipen_training_steps_lower_the_loss_and_the_bundle_reads_ink_files(unipen_small, unipen_words, tmp_path,
                                                                             capsys):
    result = train(ink_config(unipen_small, tmp_path, "train.max_epochs=6"))
    err = capsys.readouterr().err
    for name in BAD_INKS:  # each bad ink: one error line naming it; the other samples trained
        assert sum(f"bad_{name}" in line for line in err.splitlines()) == 1, err
    assert "3 of 43 ink sample(s) skipped" in err
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [e["train_loss"] for e in log]
    assert len(losses) == 6 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0], losses

    # the bundle transcribes ink files (JSON and InkML) through the CLI, one line per file, like audio
    json_path = tmp_path / "word.json"
    write_json(unipen_words[45].ink, json_path)
    inkml_path = tmp_path / "word.inkml"
    traces = "".join(f"<trace>{', '.join(f'{x} {y}' for x, y in stroke[:, :2])}</trace>"
                     for stroke in unipen_words[46].ink.strokes)
    inkml_path.write_text(f'<ink xmlns="http://www.w3.org/2003/InkML">{traces}</ink>')
    bad_path = tmp_path / "broken.inkml"
    bad_path.write_text("<ink><trace>1 2, 3")
    run = subprocess.run([sys.executable, "-m", "speechrnn", "transcribe", str(result.bundle), str(json_path),
                          str(bad_path), str(inkml_path), "--format", "jsonl"], env=ENV, capture_output=True, text=True)
    assert run.returncode == 1  # one input failed
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(json_path), str(inkml_path)]
    assert all(isinstance(line["text"], str) for line in lines)
    assert [line for line in run.stderr.splitlines() if "broken.inkml" in line and line.startswith("error:")]

    # the CLI's text is what the Recognizer API reads from the same ink
    assert Recognizer.load(result.bundle).transcribe_inks([unipen_words[45].ink]) == [lines[0]["text"]]

    # lexicon decoding as the recipe does it: the training words, word score tuned on dev, stored in the bundle
    lexicon = tmp_path / "words.lex"
    for command in (["lm", "lexicon", result.bundle, unipen_small / "train.jsonl", "-o", lexicon],
                    ["tune", result.bundle, unipen_small / "dev.jsonl", "--lexicon", lexicon, "--word-scores", "0",
                     "--beam", "8", "--workers", "1"],
                    ["eval", result.bundle, unipen_small / "dev.jsonl", "--out", tmp_path, "--name", "dev_lex",
                     "--tuned"]):
        run = subprocess.run([sys.executable, "-m", "speechrnn", *map(str, command)], env=ENV, capture_output=True,
                             text=True)
        assert run.returncode == 0, run.stderr
    words = {line.split("\t")[0] for line in lexicon.read_text().splitlines()}
    hyps = [json.loads(line)["hyp"] for line in (tmp_path / "dev_lex.per_utt.jsonl").read_text().splitlines()]
    assert len(hyps) == 10 and all(word in words for hyp in hyps for word in hyp.split())

    png = tmp_path / "words.png"
    run = subprocess.run([sys.executable, "-m", "speechrnn", "plot-ink", str(json_path), "--manifest",
                          str(unipen_small / "dev.jsonl"), "--first", "2", "--bundle", str(result.bundle), "-o", str(png)],
                         env=ENV, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stroke_frames_batch_equals_each_word_alone(unipen_words):
    """Padded batches of stacked stroke frames give what each word alone gives (stack 3 leaves partial groups)."""
    config = load_config(REPO / "recipes" / "unipen" / "conf" / "default.yaml",
                         ["ink.stack=3", "model.rnn.hidden_size=16", "model.rnn.num_layers=2"])
    inks = [w.ink for w in unipen_words[:5]]
    tokenizer = Tokenizer.build([w.label for w in unipen_words[:5]], TextConfig(case="keep"))
    model = build_model(len(tokenizer), config).eval()
    items = [{"id": str(i), "inputs": torch.from_numpy(featurize(ink, config.ink)).float(),
              "tokens": torch.zeros(0, dtype=torch.long), "text": ""} for i, ink in enumerate(inks)]
    assert len({len(item["inputs"]) % 3 for item in items}) > 1
    batch = collate(items)
    with torch.no_grad():
        log_probs, lens = model(batch["inputs"], batch["input_lens"])
        for row, item in enumerate(items):
            alone, alone_lens = model(item["inputs"][None], torch.tensor([len(item["inputs"])]))
            assert int(lens[row]) == int(alone_lens[0]) == math.ceil(len(item["inputs"]) / 3)
            torch.testing.assert_close(log_probs[row, : lens[row]], alone[0], atol=1e-5, rtol=1e-5)


def test_ink_dataset_augments_deterministically_per_epoch(unipen_words):
    entries = [{"id": str(i), "ink": ink_to_dict(w.ink), "text": w.label} for i, w in enumerate(unipen_words[:4])]
    tokenizer = Tokenizer.build([e["text"] for e in entries], TextConfig(case="keep"))
    config = InkFeatureConfig(augment=True)
    a = InkDataset(entries, tokenizer, config, augment=True, seed=5)
    b = InkDataset(entries, tokenizer, config, augment=True, seed=5)
    plain = InkDataset(entries, tokenizer, config)
    assert torch.equal(a[2]["inputs"], b[2]["inputs"])
    first = a[2]["inputs"]
    a.epoch = 1
    assert not (first.shape == a[2]["inputs"].shape and torch.equal(first, a[2]["inputs"]))
    assert torch.equal(a.without_augmentation()[2]["inputs"], plain[2]["inputs"])
    assert a[2]["tokens"].tolist() == tokenizer.encode(entries[2]["text"])
