"""Sequence classification (speechrnn.tasks.classify) and the FSDD fold manifests (data_prep/fsdd.py): masked pooling
gives a padded batch what each utterance alone gets, attention weights live on valid frames only, the folds are
speaker-disjoint and reproducible, and a few real clips train with a falling loss into a bundle that scores the same
(and a killed run resumes to the same model); adaptation to a new speaker (`adapt`) self-trains on recordings without
labels into a bundle, and the recipe runs its stages end to end on one fold."""

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.audio import load_audio
from speechrnn.bundle import atomic_save
from speechrnn.cli import main as cli_main
from speechrnn.training import loop as training_loop
from speechrnn.tasks.classify.inference import load_classifier
from speechrnn.tasks.classify.model import AttentionPooling, MeanPooling, build_classifier
from speechrnn.tasks.classify.task import add_noise, confident_labels, load_classify_config, train
from speechrnn.data import collate, read_manifest, write_manifest
from speechrnn.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "recipes" / "fsdd" / "conf" / "default.yaml"


def run_cli(group: str, argv: list[str]) -> int:
    """`speechrnn GROUP ARGV...` in this process; its exit status."""
    try:
        cli_main([group, *map(str, argv)])
    except SystemExit as exit:
        return exit.code if isinstance(exit.code, int) else 1
    return 0


def main(argv: list[str]) -> int:
    return run_cli("classify", argv)


def load_fsdd_prep():
    spec = importlib.util.spec_from_file_location("data_prep_fsdd", REPO / "data_prep" / "fsdd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def padded(lens: list[int], dim: int = 6, pad_value: float = float("nan")) -> torch.Tensor:
    """(B, max(lens), dim) random frames whose padding holds `pad_value` (NaN: any leak shows)."""
    torch.manual_seed(0)
    x = torch.randn(len(lens), max(lens), dim)
    for row, length in enumerate(lens):
        x[row, length:] = pad_value
    return x


@pytest.mark.parametrize("pooling", [MeanPooling(), AttentionPooling(6, 8)], ids=["mean", "attention"])
def test_pooling_of_a_padded_batch_equals_each_alone(pooling):
    lens = [9, 5, 1, 3]
    x, lens_t = padded(lens), torch.tensor(lens)
    batch_out, _ = pooling(x, lens_t)
    assert torch.isfinite(batch_out).all()
    for row, length in enumerate(lens):
        alone, _ = pooling(x[row : row + 1, :length], torch.tensor([length]))
        torch.testing.assert_close(batch_out[row], alone[0], rtol=1e-6, atol=1e-6)
    if isinstance(pooling, MeanPooling):
        torch.testing.assert_close(batch_out[0], x[0].mean(0))
        torch.testing.assert_close(batch_out[2], x[2, 0])


def test_attention_weights_sum_to_one_on_valid_frames_and_are_zero_on_padding():
    pooling = AttentionPooling(6, 8)
    lens = torch.tensor([9, 5, 1, 3])
    _, weights = pooling(padded(lens.tolist()), lens)
    valid = torch.arange(9)[None, :] < lens[:, None]
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert (weights[~valid] == 0).all()
    assert (weights[valid] > 0).all()
    assert weights[2, 0] == 1.0
    assert not torch.allclose(weights[0, :9], torch.full((9,), 1 / 9))  # attention, not a disguised mean


@pytest.fixture(scope="module")
def fsdd_folds(shared_data, tmp_path_factory) -> tuple[Path, Path, dict]:
    """The fold manifests written twice, into two folders."""
    prep = load_fsdd_prep()
    first, second = tmp_path_factory.mktemp("fsdd_a"), tmp_path_factory.mktemp("fsdd_b")
    folds = prep.prepare(shared_data / "fsdd", first)
    prep.prepare(shared_data / "fsdd", second)
    return first, second, folds


def test_fsdd_folds_are_speaker_disjoint_and_complete(fsdd_folds):
    out, _, folds = fsdd_folds
    speakers = ["george", "jackson", "nicolas", "theo"]
    assert (out / "folds.txt").read_text().split() == speakers
    for fold in speakers:
        splits = {name: read_manifest(out / fold / f"{name}.jsonl") for name in ("train", "dev", "test")}
        by_split = {name: {e["speaker"] for e in entries} for name, entries in splits.items()}
        assert by_split["test"] == {fold}
        assert by_split["train"] == by_split["dev"] == set(speakers) - {fold}
        assert [len(splits[name]) for name in ("train", "dev", "test")] == [1350, 150, 500]
        ids = {name: {e["id"] for e in entries} for name, entries in splits.items()}
        assert not (ids["train"] & ids["dev"]) and not (ids["test"] & (ids["train"] | ids["dev"]))
        for entries in splits.values():
            for e in entries:
                assert Path(e["audio_filepath"]).is_file()
                digit, speaker, index = e["id"].split("_")
                assert (e["label"], e["speaker"]) == (digit, speaker) and e["duration"] > 0.1
        assert all(e["index"] < 5 for e in splits["dev"]) and all(e["index"] >= 5 for e in splits["train"])
        assert sorted({e["label"] for e in splits["dev"]}) == [str(d) for d in range(10)]
        halves = [read_manifest(out / fold / f"test_{half}.jsonl") for half in "ab"]  # adaptation / scoring halves
        assert [len(h) for h in halves] == [250, 250] and sorted(e["id"] for h in halves for e in h) == sorted(ids["test"])
        assert all(e["index"] < 25 for e in halves[0]) and all(e["index"] >= 25 for e in halves[1])


def test_fsdd_folds_are_deterministic(fsdd_folds):
    first, second, _ = fsdd_folds
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 21  # 4 folds x 5 manifests + folds.txt
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel


def test_classifier_on_a_padded_batch_of_real_clips_equals_each_alone(fsdd_folds):
    out, _, _ = fsdd_folds
    entries = read_manifest(out / "george" / "test.jsonl")
    chosen = [entries[i] for i in (0, 57, 130, 402)]  # different digits, different lengths
    wavs = [load_audio(e["audio_filepath"], 8000) for e in chosen]
    assert len({len(w) for w in wavs}) == 4
    batch = collate([{"id": str(i), "inputs": w, "tokens": torch.zeros(1, dtype=torch.long), "text": ""}
                     for i, w in enumerate(wavs)])
    for pooling in ("mean", "attention"):
        config = load_classify_config(CONF, [f"model.pooling={pooling}", "model.rnn.hidden_size=32",
                                             "model.conv_channels=4"])
        torch.manual_seed(0)
        model = build_classifier(10, config, training=True).eval()  # SpecAugment present but off in eval
        logits = model(batch["inputs"], batch["input_lens"])
        for row, wav in enumerate(wavs):
            alone = model(wav[None], torch.tensor([len(wav)]))
            torch.testing.assert_close(logits[row], alone[0], rtol=1e-4, atol=1e-5)


def test_config_choices_are_checked():
    assert load_classify_config(CONF, ["model.rnn.cell=lstm"]).model.rnn.cell == "lstm"
    with pytest.raises(ConfigError, match="model.pooling"):
        load_classify_config(CONF, ["model.pooling=max"])
    with pytest.raises(ConfigError, match="model.rnn.cell"):
        load_classify_config(CONF, ["model.rnn.cell=transformer"])
    with pytest.raises(ConfigError, match="valid keys"):
        load_classify_config(CONF, ["model.poolin=mean"])
    for bad in ("[40,10]", "[10]"):
        with pytest.raises(ConfigError, match="data.noise_snr"):
            load_classify_config(CONF, [f"data.noise_snr={bad}"])


def test_noise_is_added_at_the_drawn_snr_and_never_on_padding():
    torch.manual_seed(0)
    lens = torch.tensor([16000, 9000, 4000])
    clean = torch.randn(3, 16000) * torch.tensor([[0.5], [0.01], [2.0]])  # three loudness levels
    clean[1, 9000:] = 0
    clean[2, 4000:] = 0
    noisy = add_noise(clean, lens, [10.0, 10.0])
    for row, n in enumerate(lens.tolist()):
        snr = 10 * torch.log10(clean[row, :n].square().mean() / (noisy - clean)[row, :n].square().mean())
        assert abs(float(snr) - 10.0) < 0.3, (row, float(snr))  # 10 dB whatever the loudness
        assert torch.equal(noisy[row, n:], clean[row, n:])  # padding untouched
    snrs = []
    for _ in range(50):
        noise = add_noise(clean[:1], lens[:1], [5.0, 30.0]) - clean[:1]
        snrs.append(float(10 * torch.log10(clean[0].square().mean() / noise.square().mean())))
    assert 4.8 < min(snrs) and max(snrs) < 30.2 and max(snrs) - min(snrs) > 10  # spread over the range


def tiny_config(data: Path, exp: Path, *extra: str):
    return load_classify_config(CONF, [
        f"data.train_manifest={data / 'train.jsonl'}", f"data.dev_manifest={data / 'dev.jsonl'}",
        "data.classes=[]", "data.speed_perturb=[]", "data.noise_snr=[]", "use_specaugment=false", "model.conv_channels=4",
        "model.rnn.hidden_size=32", "model.rnn.num_layers=1", "model.dropout=0", "optim.warmup_steps=3",
        "optim.label_smoothing=0", "optim.lr=1e-2", "data.max_batch_size=12", "train.max_epochs=6",
        f"train.exp_dir={exp}", "train.device=cpu", *extra])


def test_training_on_a_few_real_clips_lowers_the_loss_and_the_bundle_scores_the_same(fsdd_folds, tmp_path, capsys, monkeypatch):
    out, _, _ = fsdd_folds
    train_entries = [e for e in read_manifest(out / "george" / "train.jsonl") if e["label"] in ("1", "4", "9")]
    dev_entries = [e for e in read_manifest(out / "george" / "dev.jsonl") if e["label"] in ("1", "4", "9")]
    small_train = [e for e in train_entries if e["index"] in (5, 6, 7, 8)]  # 3 digits x 3 speakers x 4 = 36 clips
    small_dev = [e for e in dev_entries if e["index"] == 0]  # 9 clips
    write_manifest(tmp_path / "train.jsonl", small_train)
    write_manifest(tmp_path / "dev.jsonl", small_dev)
    exp = tmp_path / "exp"
    result = train(tiny_config(tmp_path, exp))
    log = [json.loads(line) for line in (exp / "train_log.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in log]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.8 * losses[0], losses
    assert (exp / "best.pt").is_file() and (exp / "last.pt").is_file() and result.bundle.is_file()

    model, classes, loaded, extra = load_classifier(result.bundle)
    assert classes == ["1", "4", "9"] and extra["task"] == "classify" and loaded.model.rnn.hidden_size == 32
    assert main(["eval", str(result.bundle), str(tmp_path / "dev.jsonl"), "--out", str(tmp_path / "eval"),
                 "--name", "dev", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "eval" / "dev.summary.json").read_text())
    best = next(r for r in log if r["epoch"] == result.best_epoch)
    assert summary["utterances"] == 9 and summary["accuracy"] == pytest.approx(best["dev_accuracy"])
    assert sum(map(sum, summary["confusion"])) == 9
    rows = [json.loads(line) for line in (tmp_path / "eval" / "dev.per_utt.jsonl").read_text().splitlines()]
    assert {r["speaker"] for r in rows} == {"jackson", "nicolas", "theo"}
    assert "dev: accuracy" in capsys.readouterr().out

    # A run killed after epoch 3 and started again with --resume ends with the model of the uninterrupted run;
    # this one keeps SpecAugment, speed perturbation and noise on, so their random draws must resume too.
    augmented = ("use_specaugment=true", "data.speed_perturb=[0.9,1.0,1.1]", "data.noise_snr=[10,40]",
                 "model.dropout=0.2")
    whole = train(tiny_config(tmp_path, tmp_path / "whole", *augmented))

    class Killed(Exception):
        pass

    def save_then_die(obj, path):
        atomic_save(obj, path)
        if Path(path).name == "last.pt" and obj["epoch"] == 3:
            raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(training_loop, "atomic_save", save_then_die)
        with pytest.raises(Killed):
            train(tiny_config(tmp_path, tmp_path / "killed", *augmented))
    assert len((tmp_path / "killed" / "train_log.jsonl").read_text().splitlines()) == 3
    resumed = train(tiny_config(tmp_path, tmp_path / "killed", *augmented), resume=True)
    assert resumed.best_epoch == whole.best_epoch
    logs = [[{k: v for k, v in json.loads(line).items() if k not in ("epoch_seconds", "utts_per_second")}
             for line in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("whole", "killed")]
    assert len(logs[0]) == 6 and logs[0] == logs[1]
    for key, value in torch.load(whole.bundle, weights_only=True)["state_dict"].items():
        torch.testing.assert_close(torch.load(resumed.bundle, weights_only=True)["state_dict"][key], value)


def test_confident_labels_take_the_surest_share_of_each_predicted_class():
    posteriors = {"a": torch.tensor([0.9, 0.1, 0.0]), "b": torch.tensor([0.6, 0.4, 0.0]),
                  "c": torch.tensor([0.7, 0.3, 0.0]), "d": torch.tensor([0.2, 0.5, 0.3]),
                  "e": torch.tensor([0.1, 0.0, 0.9])}
    assert confident_labels(posteriors, 0.5) == {"a": 0, "c": 0, "d": 1, "e": 2}  # 2 of class 0's 3, at least 1 each
    assert confident_labels(posteriors, 1.0) == {"a": 0, "b": 0, "c": 0, "d": 1, "e": 2}
    assert confident_labels(posteriors, 0.1) == {"a": 0, "d": 1, "e": 2}


def test_adapt_self_trains_on_unlabelled_recordings_into_a_bundle(fsdd_folds, tmp_path, capsys):
    out, _, _ = fsdd_folds
    digits = ("1", "4", "9")
    write_manifest(tmp_path / "train.jsonl", [e for e in read_manifest(out / "george" / "train.jsonl")
                                              if e["label"] in digits and e["index"] in (5, 6, 7, 8)])
    write_manifest(tmp_path / "dev.jsonl", [e for e in read_manifest(out / "george" / "dev.jsonl")
                                            if e["label"] in digits and e["index"] == 0])
    new_speaker = [e for e in read_manifest(out / "george" / "test.jsonl") if e["label"] in digits and e["index"] < 4]
    # no labels in the adaptation manifest: adapt must not need them
    write_manifest(tmp_path / "unlabelled.jsonl", [{k: v for k, v in e.items() if k not in ("label", "text")}
                                                   for e in new_speaker])
    source = train(tiny_config(tmp_path, tmp_path / "exp", "adapt.rounds=2", "adapt.epochs=2")).bundle
    adapted = tmp_path / "adapted.pt"
    assert main(["adapt", str(source), str(tmp_path / "unlabelled.jsonl"), "-o", str(adapted), "--device", "cpu",
                 "--repeat", "2"]) == 0
    assert "adapt round 2/2" in capsys.readouterr().err
    model, classes, config, extra = load_classifier(adapted)
    assert classes == list(digits) and extra["task"] == "classify" and extra["adapted_from"] == str(source)
    assert (config.adapt.rounds, config.adapt.epochs, config.adapt.repeat) == (2, 2, 2)  # bundle's, then the flag
    counts = [r["pseudo_labels"] for r in extra["adapt_rounds"]]
    assert counts[-1] == len(new_speaker) and 1 <= counts[0] < counts[-1]
    before = torch.load(source, weights_only=True)["state_dict"]
    after = torch.load(adapted, weights_only=True)["state_dict"]
    assert before.keys() == after.keys() and any(not torch.equal(before[k], after[k]) for k in before)
    assert main(["eval", str(adapted), str(tmp_path / "dev.jsonl"), "--out", str(tmp_path / "eval")]) == 0
    assert main(["eval", str(adapted), str(tmp_path / "dev.jsonl"), "--out", str(tmp_path / "eval"), "--name",
                 "trimmed", "--trim-edges"]) == 0
    summaries = [json.loads((tmp_path / "eval" / f"{name}.summary.json").read_text()) for name in ("dev", "trimmed")]
    assert summaries[0]["utterances"] == summaries[1]["utterances"] == 9
    (tmp_path / "empty.jsonl").write_text("")
    assert main(["adapt", str(source), str(tmp_path / "empty.jsonl"), "-o", str(tmp_path / "x.pt")]) == 2
    assert "no utterances to adapt to" in capsys.readouterr().err and not (tmp_path / "x.pt").exists()

    # a round that teaches the model a confusion (here: every recording is "9") is refused on the training
    # speakers' dev recordings, and the model before it kept
    import speechrnn.tasks.classify.task as classify_task

    def locked_in(source_model, *args):
        broken = copy.deepcopy(source_model)
        with torch.no_grad():
            broken.head.weight.zero_()
            broken.head.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))
        return broken.eval()

    kept = tmp_path / "kept.pt"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(classify_task, "fine_tune", locked_in)
        assert main(["adapt", str(source), str(tmp_path / "unlabelled.jsonl"), "-o", str(kept), "--device", "cpu",
                     "--max-dev-drop", "0.05"]) == 0
    assert "adapt round 1 refused" in capsys.readouterr().err
    rounds = torch.load(kept, weights_only=True)["extra"]["adapt_rounds"]
    assert len(rounds) == 1 and rounds[0]["refused"] and rounds[0]["dev_accuracy"] == pytest.approx(1 / 3, abs=0.01)
    assert all(torch.equal(before[k], v) for k, v in torch.load(kept, weights_only=True)["state_dict"].items())


def test_eval_refuses_a_bundle_that_is_not_a_classifier(tmp_path, capsys):
    from speechrnn.bundle import save_bundle

    save_bundle(tmp_path / "ctc.pt", {}, {}, {"chars": []})  # what a CTC recognizer bundle looks like to load_bundle
    (tmp_path / "m.jsonl").write_text("")
    assert main(["eval", str(tmp_path / "ctc.pt"), str(tmp_path / "m.jsonl")]) == 2
    assert "not a sequence-classifier bundle" in capsys.readouterr().err


def test_encoder_from_a_recognizer_bundle_copies_its_front_end_and_encoder(tmp_path):
    """model.encoder_from: the classifier takes the CTC bundle's features, encoder shape and weights (not its head)."""
    from speechrnn.bundle import save_bundle
    from speechrnn.tasks.classify.model import load_pretrained_encoder
    from speechrnn.config import load_config, to_dict
    from speechrnn.model import build_model
    from speechrnn.text import TextConfig, Tokenizer

    speech = load_config(None, ["data.train_manifest=x", "data.dev_manifest=x", "features.n_mels=24",
                                "model.conv_channels=4", "model.rnn.hidden_size=16", "model.rnn.num_layers=2",
                                "model.rnn.cell=gru"])
    tokenizer = Tokenizer.build(["ONE TWO"], TextConfig())
    recognizer = build_model(len(tokenizer), speech)
    bundle = tmp_path / "speech.pt"
    save_bundle(bundle, recognizer.state_dict(), to_dict(speech), tokenizer.to_dict())
    config = load_classify_config(CONF, ["data.train_manifest=x", "data.dev_manifest=x", f"model.encoder_from={bundle}",
                                         "model.rnn.dropout=0.3"])
    weights = load_pretrained_encoder(config)
    assert config.features.n_mels == 24 and config.features.sample_rate == speech.features.sample_rate
    assert (config.model.rnn.cell, config.model.rnn.hidden_size, config.model.rnn.dropout) == ("gru", 16, 0.3)
    classifier = build_classifier(10, config)
    missing, unexpected = classifier.load_state_dict(weights, strict=False)
    assert not unexpected and all(name.startswith(("pooling.", "head.")) for name in missing)
    for name, value in recognizer.state_dict().items():
        if not name.startswith("head."):
            torch.testing.assert_close(classifier.state_dict()[name], value)


@pytest.mark.slow
def test_fsdd_recipe_trains_scores_adapts_and_summarises_one_fold(shared_data):
    """recipes/fsdd/run.sh stages 0-4 on one fold, tiny (one epoch, one adaptation round, FSDD alone), run as a user
    runs it under its own tag (removed afterwards): the summary has the plain and the adapted accuracy."""
    recipe = REPO / "recipes" / "fsdd"
    tag = f"pytest-{os.getpid()}"
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    try:
        run = subprocess.run([str(recipe / "run.sh"), "--tag", tag, "--folds", "nicolas", "--tts", "false",
                              "--an4-digits", "false", "--fsdd", str(shared_data / "fsdd"), "train.max_epochs=1",
                              "model.rnn.hidden_size=32", "adapt.rounds=1", "adapt.epochs=1", "train.threads=1"],
                             env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        fold = recipe / "exp" / tag / "nicolas"
        plain = json.loads((fold / "eval" / "test.summary.json").read_text())
        halves = [json.loads((fold / "eval" / f"adapted_on_{h}.summary.json").read_text()) for h in "ab"]
        results = (recipe / "exp" / tag / "results.txt").read_text()
    finally:
        shutil.rmtree(recipe / "exp" / tag, ignore_errors=True)
    assert plain["utterances"] == 500 and [h["utterances"] for h in halves] == [250, 250]
    adapted = sum(h["correct"] for h in halves) / 500
    assert f"{100 * plain['accuracy']:.2f}%" in results and f"{100 * adapted:.2f}%" in results, results
    assert "nicolas" in results and "adapted" in results
