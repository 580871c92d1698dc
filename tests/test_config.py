"""speechrnn.config: `base:` files (a config that says only what it changes) and choices declared on the fields,
checked for any schema."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from speechrnn.config import CHOICES, Config, choice, declared_choices, from_dict, load_config, to_dict
from speechrnn.errors import ConfigError
from speechrnn.rnn import RNN_CELLS, RNNConfig

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ["data.train_manifest=a.jsonl", "data.dev_manifest=b.jsonl"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_base_is_merged_first_and_the_file_wins(tmp_path):
    write(tmp_path / "conf" / "default.yaml",
          "model:\n  rnn:\n    cell: gru\n    hidden_size: 64\ntrain:\n  max_epochs: 5\n")
    write(tmp_path / "conf" / "more" / "long.yaml", "base: ../default.yaml\ntrain:\n  max_epochs: 50\n")
    delta = write(tmp_path / "conf" / "more" / "longer.yaml", "base: long.yaml\ntrain:\n  patience: 3\n")
    config = load_config(delta, REQUIRED + ["model.rnn.hidden_size=32"])
    assert (config.model.rnn.cell, config.model.rnn.hidden_size) == ("gru", 32)  # override > base
    assert (config.train.max_epochs, config.train.patience) == (50, 3)


@pytest.mark.parametrize("layout", [{"a.yaml": "base: a.yaml\n"},
                                    {"a.yaml": "base: b.yaml\n", "b.yaml": "base: sub/c.yaml\n",
                                     "sub/c.yaml": "base: ../a.yaml\n"}])
def test_a_base_cycle_is_one_line(tmp_path, layout):
    for name, text in layout.items():
        write(tmp_path / name, text)
    with pytest.raises(ConfigError, match="cycle") as err:
        load_config(tmp_path / "a.yaml", REQUIRED)
    assert "\n" not in str(err.value)


def test_bad_base_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"nope.yaml: config file not found \(the base of"):
        load_config(write(tmp_path / "a.yaml", "base: nope.yaml\n"), REQUIRED)
    with pytest.raises(ConfigError, match="must be the path of one YAML file"):
        load_config(write(tmp_path / "b.yaml", "base: [x.yaml]\n"), REQUIRED)
    write(tmp_path / "typo.yaml", "model:\n  rnn:\n    cel: gru\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: .*model.rnn.cel"):  # the file that has the bad key
        load_config(write(tmp_path / "c.yaml", "base: typo.yaml\n"), REQUIRED)


@pytest.mark.parametrize("delta, base, keys", [
    ("an4/conf/long.yaml", "an4/conf/default.yaml", ["data.speed_perturb=[0.9,1.0,1.1]", "train.exp_dir=exp/long",
                                                     "train.max_epochs=80", "train.patience=15"]),
    ("an4/conf/aligner_end.yaml", "an4/conf/aligner.yaml", ["model.rnn.reverse=true", "train.exp_dir=exp/aligner_end"]),
])
def test_recipe_deltas_are_their_base_plus_their_keys(delta, base, keys):
    recipes = REPO / "recipes"
    assert to_dict(load_config(recipes / delta)) == to_dict(load_config(recipes / base, keys))


@dataclass
class PoolingConfig:
    pooling: str = choice("mean", "attention")
    rnn: RNNConfig = field(default_factory=RNNConfig)


@dataclass
class OtherSchema:
    model: PoolingConfig = field(default_factory=PoolingConfig)


def test_choices_are_declared_on_fields_and_checked_for_any_schema():
    assert CHOICES == declared_choices(Config)
    assert CHOICES["model.rnn.cell"] == sorted(RNN_CELLS) and CHOICES["modality"] == ["audio", "ink"]
    assert declared_choices(OtherSchema) == {"model.pooling": ["mean", "attention"],
                                             "model.rnn.cell": sorted(RNN_CELLS)}
    assert load_config(None, ["model.pooling=attention"], schema=OtherSchema).model.pooling == "attention"
    with pytest.raises(ConfigError, match=r"^config: model.pooling='max' is not one of: mean, attention$"):
        load_config(None, ["model.pooling=max"], schema=OtherSchema)
    with pytest.raises(ConfigError, match=r"^config: model.rnn.cell='lstmm' is not one of: elman, gru, "):
        load_config(None, ["model.rnn.cell=lstmm"], schema=OtherSchema)
    for override in ("modality=pen", "text.case=title", "features.kind=plp"):
        with pytest.raises(ConfigError, match=f"^config: {override.split('=')[0]}="):
            load_config(None, REQUIRED + [override])
    with pytest.raises(ConfigError, match="is not one of"):
        from_dict({"model": {"pooling": "max"}}, schema=OtherSchema)


@dataclass
class RangedSchema:
    rate: float = field(default=0.5, metadata={"range": "> 0 and <= 1"})  # as a module that cannot import config
    sizes: list = field(default_factory=lambda: [1, 2], metadata={"range": ">= 1"})
    model: PoolingConfig = field(default_factory=PoolingConfig)


def test_ranges_are_declared_on_fields_and_checked_for_any_schema():
    from speechrnn.config import bounded

    assert load_config(None, ["rate=1", "sizes=[3]", "model.rnn.hidden_size=4"], schema=RangedSchema).rate == 1
    for override, message in (("rate=0", "rate=0.0 is out of range: it must be > 0 and <= 1"),
                              ("rate=nan", "rate=nan is out of range"),
                              ("sizes=[1,0]", "sizes=[1, 0] is out of range: it must be >= 1 (each value)"),
                              ("model.rnn.hidden_size=0", "model.rnn.hidden_size=0 is out of range: it must be > 0"),
                              ("model.rnn.dropout=1", "model.rnn.dropout=1.0 is out of range: it must be >= 0 and < 1")):
        with pytest.raises(ConfigError) as err:
            load_config(None, [override], schema=RangedSchema)
        assert str(err.value).startswith(f"config: {message}"), str(err.value)
    with pytest.raises(ConfigError, match="rate="):
        from_dict({"rate": -1.0}, schema=RangedSchema)  # a bundle's config is checked as well
    assert bounded(3, ">= 1").metadata == {"range": ">= 1"} and bounded([], "> 0").default_factory() == []


@pytest.mark.parametrize("conf", sorted(str(p.relative_to(REPO / "recipes")) for p in (REPO / "recipes").glob("*/conf/*.yaml")))
def test_every_recipe_config_is_in_range(conf):
    from speechrnn.tasks.classify.task import load_classify_config
    from speechrnn.tasks.lm.task import load_lm_config
    from speechrnn.tasks.synthesis.task import load_synth_config
    from speechrnn.tasks.tagger.task import load_tagger_config

    loader = load_classify_config if conf.startswith("fsdd/") else load_lm_config if conf.startswith("english_lm/") \
        else load_tagger_config if "vad" in conf else load_synth_config if "synthesis" in conf else load_config
    loader(REPO / "recipes" / conf)


@pytest.mark.parametrize("text", ["- a\n- b\n", "7\n", "- [1]\n"])
def test_a_yaml_file_that_is_no_mapping_is_one_line(tmp_path, text):
    with pytest.raises(ConfigError, match="must be a mapping of keys"):
        load_config(write(tmp_path / "c.yaml", text), REQUIRED)
