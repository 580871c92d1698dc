"""train.compile=true (torch.compile of the encoder) on CPU: one training step on real AN4 audio writes checkpoints
and a bundle with the eager run's state_dict keys (no `_orig_mod.` prefix) and the same weights, and either run
resumes from the other's checkpoint."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from speechrnn.config import load_config
from speechrnn.data import read_manifest, write_manifest
from speechrnn.tasks.ctc import train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def an4_one_batch(shared_data, tmp_path_factory) -> Path:
    """The 3 shortest AN4 training utterances (one batch) and the 2 shortest of the held-out speakers (dev)."""
    out = tmp_path_factory.mktemp("an4")
    subprocess.run([sys.executable, str(REPO / "data_prep" / "an4.py"), "--src", str(shared_data / "an4"),
                    "--out", str(out)], check=True, capture_output=True)
    for name, count in (("train", 3), ("dev", 2)):
        entries = sorted(read_manifest(out / f"{name}.jsonl"), key=lambda e: e["duration"])[:count]
        write_manifest(out / f"one_{name}.jsonl", entries)
    return out


def tiny_config(data: Path, exp_dir: Path, *extra: str):
    """A tiny model without dropout or SpecAugment (nothing random in a step): eager and compiled steps agree."""
    return load_config(REPO / "recipes" / "an4" / "conf" / "default.yaml", [
        f"data.train_manifest={data / 'one_train.jsonl'}", f"data.dev_manifest={data / 'one_dev.jsonl'}",
        "data.cmvn=", "data.num_workers=0", "data.max_frames=1500", f"train.exp_dir={exp_dir}",
        "model.conv_channels=4", "model.rnn.hidden_size=16", "model.rnn.num_layers=2", "model.rnn.dropout=0",
        "model.dropout=0", "use_specaugment=false", "train.max_epochs=1", "train.tensorboard=false", *extra,
    ])


def test_compiled_training_writes_the_eager_state_dict(an4_one_batch, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    train(tiny_config(an4_one_batch, tmp_path / "eager"))
    assert not counters["stats"]["unique_graphs"]  # train.compile=false (the default) compiles nothing
    train(tiny_config(an4_one_batch, tmp_path / "compiled", "train.compile=true"))
    assert counters["stats"]["unique_graphs"] >= 1, "train.compile=true compiled no graph"

    for name in ("last.pt", "best.pt", "model.pt"):
        eager, compiled = (torch.load(tmp_path / run / name, weights_only=True) for run in ("eager", "compiled"))
        key = "state_dict" if name == "model.pt" else "model"
        assert list(compiled[key]) == list(eager[key]), name
        assert not any("_orig_mod" in k for k in compiled[key]), name
        for k, tensor in eager[key].items():  # one identical step: the same weights up to float rounding
            assert torch.allclose(compiled[key][k], tensor, atol=1e-5), f"{name}: {k}"
    assert torch.load(tmp_path / "eager" / "last.pt", weights_only=True)["scheduler"]["last_epoch"] == 1  # 1 step

    # each resumes from the other's checkpoint: compiled from eager's, eager from compiled's
    for run, flag in (("eager", "true"), ("compiled", "false")):
        (tmp_path / f"from_{run}").mkdir()
        for name in ("last.pt", "best.pt"):
            (tmp_path / f"from_{run}" / name).write_bytes((tmp_path / run / name).read_bytes())
        train(tiny_config(an4_one_batch, tmp_path / f"from_{run}", "train.max_epochs=2", f"train.compile={flag}"),
              resume=True)
        assert torch.load(tmp_path / f"from_{run}" / "last.pt", weights_only=True)["epoch"] == 2
    torch._dynamo.reset()
