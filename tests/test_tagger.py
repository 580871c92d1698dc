"""Frame tagging (speechrnn.tasks.tagger): speech / non-speech labels from a CTC alignment (blank runs -> silence with the
minimum-length rule), a padded batch tags each valid frame as the utterance alone does and the masked loss ignores
padding, labels made from a few real AN4 utterances train a tagger whose loss falls into a bundle that TaggerVAD
loads, and bad labels (a zero-length sequence) are rejected naming the utterance."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from speechrnn.audio import audio_duration, load_audio
from speechrnn.bundle import save_bundle
from speechrnn.config import Config, to_dict
from speechrnn.data import write_manifest
from speechrnn.errors import ManifestError
from speechrnn.model import build_model
from speechrnn.tasks.tagger.inference import TaggerVAD
from speechrnn.tasks.tagger.labels import ctc_labels, make_labels, read_labels, refined_labels, write_labels
from speechrnn.tasks.tagger.model import build_tagger, frame_loss
from speechrnn.tasks.tagger.task import load_tagged, load_tagger_config, train
from speechrnn.text import TextConfig, Tokenizer
from test_classify import run_cli

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "recipes" / "an4" / "conf" / "vad.yaml"


def main(argv: list[str]) -> int:
    return run_cli("tagger", argv)


def test_ctc_labels_blank_runs_are_silence_from_min_silence_on():
    # frame:          0  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17 18
    path = np.array([0, 0, 0, 5, 0, 0, 7, 7, 1, 0, 0, 0, 0, 3, 0, 0, 0, 9, 0])
    labels = ctc_labels(path, min_silence=4)
    # leading blanks silence; a 2-frame blank run between spikes is speech; the space token (1) is speech; the
    # 4-frame run (= min_silence) is silence, the 3-frame one is speech; the trailing blank is silence
    assert labels.tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
    assert labels.dtype == np.uint8
    assert ctc_labels(np.zeros(5, dtype=int), 2).tolist() == [0] * 5
    assert ctc_labels(np.array([4, 4]), 2).tolist() == [1, 1]


def test_refined_keeps_the_energy_segments_the_alignment_supports():
    energy = np.array([0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0], dtype=np.uint8)
    ctc = np.array([1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1], dtype=np.uint8)
    # segment 1-3 is supported only by the frame-0 spike (skipped: the early-spike artifact); 6-9 holds ctc speech;
    # 14-16 has ctc speech 2 frames away, inside a window of 2 but not of 1
    assert refined_labels(energy, ctc, window=2).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert refined_labels(energy, ctc, window=1).tolist() == [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert refined_labels(energy, ctc, window=1, skip=0)[1:3].tolist() == [1, 1]


def test_padded_batch_tags_each_frame_as_alone_and_the_loss_ignores_padding():
    config = load_tagger_config(CONF, ["data.train_labels=x", "data.dev_labels=x"])
    torch.manual_seed(0)
    model = build_tagger(config).eval()
    lengths = [16000, 7000, 2561]  # samples
    waves = [0.1 * torch.randn(n) for n in lengths]
    batch = torch.zeros(len(waves), max(lengths))
    for row, wav in enumerate(waves):
        batch[row, : len(wav)] = wav
    with torch.no_grad():
        logits, lens = model(batch, torch.tensor(lengths))  # (B, T', 2)
        assert lens.tolist() == [n // 640 + 1 for n in lengths]  # one frame per 40 ms, centred at i * 40 ms
        labels = torch.randint(0, 2, lens.shape + (logits.shape[1],))  # (B, T')
        total, frames = frame_loss(logits, labels, lens)
        assert frames == int(lens.sum())
        alone_sum = 0.0
        for row, wav in enumerate(waves):
            alone, alone_lens = model(wav[None], torch.tensor([len(wav)]))
            assert alone.shape[1] == alone_lens[0] == lens[row]
            torch.testing.assert_close(logits[row, : lens[row]], alone[0], rtol=1e-4, atol=1e-5)
            alone_sum += float(frame_loss(alone, labels[row : row + 1, : lens[row]], alone_lens)[0])
        assert float(total) == pytest.approx(alone_sum, rel=1e-5)
        flipped = labels.clone()
        for row, n in enumerate(lens.tolist()):
            flipped[row, n:] = 1 - flipped[row, n:]  # other labels on the padding only
        assert float(frame_loss(logits, flipped, lens)[0]) == pytest.approx(float(total), rel=1e-6)


@pytest.fixture(scope="module")
def an4_labelled(shared_data, tmp_path_factory) -> Path:
    """Eight AN4 training utterances (6 train, 2 dev manifests) and their labels from the forced alignment of a tiny
    untrained CTC model (its alignment is arbitrary; these tests check the plumbing, the recipe the quality)."""
    out = tmp_path_factory.mktemp("an4_vad")
    an4 = shared_data / "an4"
    transcription = (an4 / "etc" / "an4_train.transcription").read_text()
    texts = {uid: text for text, uid in re.findall(r"<s> (.*) </s> \((\S+)\)", transcription)}
    wavs = sorted((an4 / "wav" / "an4_clstk" / "fash").glob("*.wav"))[:8]
    entries = [{"id": w.stem, "audio_filepath": str(w), "duration": audio_duration(w), "text": texts[w.stem]}
               for w in wavs]
    write_manifest(out / "train.jsonl", entries[:6])
    write_manifest(out / "dev.jsonl", entries[6:])
    speech = Config()
    speech.data.train_manifest = speech.data.dev_manifest = str(out / "train.jsonl")
    speech.model.conv_channels, speech.model.rnn.hidden_size, speech.model.rnn.num_layers = 4, 16, 1
    tokenizer = Tokenizer.build([e["text"] for e in entries], TextConfig())
    torch.manual_seed(0)
    save_bundle(out / "ctc.pt", build_model(len(tokenizer), speech).state_dict(), to_dict(speech), tokenizer.to_dict())
    for name in ("train", "dev"):
        make_labels(out / "ctc.pt", out / f"{name}.jsonl", out / "labels", name)
    return out


def test_labels_from_a_forced_alignment_fit_the_tagger_frames(an4_labelled):
    stats = json.loads((an4_labelled / "labels" / "train.stats.json").read_text())
    assert stats["utterances"] == 6 and not stats["skipped"] and stats["frame_shift"] == pytest.approx(0.04)
    assert {"ctc_vs_energy", "start_minus_energy_onset_s", "first_token_in_first_2_frames"} <= set(stats)
    config = load_tagger_config(CONF, ["data.train_labels=x", "data.dev_labels=x"])
    model = build_tagger(config)
    for kind in ("ctc", "energy", "refined"):
        labels, shift = read_labels(an4_labelled / "labels" / f"train.{kind}.npz")
        assert shift == pytest.approx(0.04) and len(labels) == 6
        for line in (an4_labelled / "train.jsonl").read_text().splitlines():
            entry = json.loads(line)
            samples = len(load_audio(an4_labelled / entry["audio_filepath"], 16000))
            assert len(labels[entry["id"]]) == int(model.output_lengths(torch.tensor([samples]))[0])
            assert set(np.unique(labels[entry["id"]])) <= {0, 1}
    energy = read_labels(an4_labelled / "labels" / "train.energy.npz")[0]
    assert 0.3 < np.concatenate(list(energy.values())).mean() < 0.95  # AN4: mostly speech, some lead-in silence


def test_a_few_an4_utterances_train_with_a_falling_loss_into_a_vad(an4_labelled, tmp_path):
    labels = an4_labelled / "labels"
    config = load_tagger_config(CONF, [
        f"data.train_manifest={an4_labelled / 'train.jsonl'}", f"data.dev_manifest={an4_labelled / 'dev.jsonl'}",
        f"data.train_labels={labels / 'train.energy.npz'}", f"data.dev_labels={labels / 'dev.energy.npz'}",
        "data.max_frames=800", "model.conv_channels=8", "model.rnn.hidden_size=24", "model.rnn.num_layers=1",
        "optim.lr=1e-2", "optim.warmup_steps=3", "train.max_epochs=8", "train.patience=0", f"train.exp_dir={tmp_path}"])
    result = train(config)
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    losses = [e["train_loss"] for e in log]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0], losses

    vad = TaggerVAD.load(result.bundle)
    assert vad.frame_shift == pytest.approx(0.04)
    dev = [json.loads(line) for line in (an4_labelled / "dev.jsonl").read_text().splitlines()]
    wav = load_audio(an4_labelled / dev[0]["audio_filepath"], 16000).numpy()
    prob = vad.speech_probability(wav, 16000)
    assert prob.shape == read_labels(labels / "dev.energy.npz")[0][dev[0]["id"]].shape and prob.dtype == np.float32
    assert ((prob >= 0) & (prob <= 1)).all()
    chunked = TaggerVAD.load(result.bundle, chunk_seconds=0.5, context_seconds=0.4).speech_probability(wav, 16000)
    np.testing.assert_allclose(chunked, prob, atol=0.02)  # long audio goes in chunks on the same frame grid
    at_8k = vad.speech_probability(wav[::2].copy(), 8000)  # resampled to the model's rate
    assert abs(len(at_8k) - len(prob)) <= 1

    # the bundle scored on dev through the command line gives the accuracy the trainer logged for its best epoch
    assert main(["eval", str(result.bundle), str(an4_labelled / "dev.jsonl"), str(labels / "dev.energy.npz"),
                 str(labels / "dev.ctc.npz"), "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads((tmp_path / "eval" / "dev.energy.summary.json").read_text())
    best = next(e for e in log if e["epoch"] == result.best_epoch)
    assert summary["accuracy"] == pytest.approx(best["dev_accuracy"], abs=1e-9)
    assert summary["utterances"] == 2 and summary["rtf"] > 0
    assert (tmp_path / "eval" / "dev.ctc.summary.json").is_file()
    # the energy VAD (10 ms frames) is scored on the same 40 ms label frames
    assert main(["eval", "energy", str(an4_labelled / "dev.jsonl"), str(labels / "dev.energy.npz"),
                 "--out", str(tmp_path / "energy")]) == 0
    assert json.loads((tmp_path / "energy" / "dev.energy.summary.json").read_text())["frames"] == summary["frames"]


def test_zero_length_label_sequence_is_rejected_with_its_id(an4_labelled, tmp_path, capsys):
    labels, shift = read_labels(an4_labelled / "labels" / "train.energy.npz")
    bad_id = sorted(labels)[2]
    labels[bad_id] = np.zeros(0, dtype=np.uint8)
    write_labels(tmp_path / "bad.npz", labels, shift)
    config = load_tagger_config(CONF, [f"data.train_labels={tmp_path / 'bad.npz'}", "data.dev_labels=x"])
    with pytest.raises(ManifestError, match=f"utterance {bad_id} has an empty label sequence"):
        load_tagged(config, an4_labelled / "train.jsonl", tmp_path / "bad.npz")
    code = main(["train", str(CONF), f"data.train_manifest={an4_labelled / 'train.jsonl'}",
                 f"data.dev_manifest={an4_labelled / 'dev.jsonl'}", f"data.train_labels={tmp_path / 'bad.npz'}",
                 f"data.dev_labels={an4_labelled / 'labels' / 'dev.energy.npz'}", f"train.exp_dir={tmp_path / 'exp'}"])
    assert code == 2 and bad_id in capsys.readouterr().err

    vad = TaggerVAD(build_tagger(config).eval(), config)
    assert vad.speech_probability(np.zeros(0, dtype=np.float32), 16000).shape == (0,)
    with pytest.raises(ValueError, match="mono"):
        vad.speech_probability(np.zeros((2, 800), dtype=np.float32), 16000)
