"""speechrnn.cli: one parser for every command, help and --version without torch, the one error handler."""

import subprocess
import sys
import time

import pytest

from speechrnn import __version__
from speechrnn.cli import build_parser, main

LIST_COMMANDS = """
import argparse
from speechrnn.cli import build_parser

def leaves(parser, path):
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield path
    for action in subparsers:
        for name, child in action.choices.items():
            yield path + [name]
            yield from leaves(child, path + [name])

for command in leaves(build_parser(), []):
    print(" ".join(command))
"""

HELP_WITHOUT_TORCH = """
import contextlib, io, sys
from speechrnn.cli import main

for argv in [["--help"], ["--version"]] + [line.split() + ["--help"] for line in sys.stdin if line.strip()]:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(argv)
        except SystemExit as end:
            assert end.code == 0, (argv, end.code)
    assert "torch" not in sys.modules, f"speechrnn {' '.join(argv)} imported torch"
print("torch" in sys.modules, "numpy" in sys.modules)
"""


def leaf_commands() -> list[str]:
    """Every command and subcommand, e.g. "train", "classify", "classify adapt"."""
    run = subprocess.run([sys.executable, "-c", LIST_COMMANDS], capture_output=True, text=True, check=True)
    return run.stdout.splitlines()


def test_help_of_every_command_imports_no_torch():
    commands = leaf_commands()
    assert {"train", "eval", "transcribe", "lm build", "classify train", "classify adapt", "tagger labels",
            "tagger eval", "mic", "serve", "tune"} <= set(commands)
    run = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], input="\n".join(commands), capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]


def test_version(capsys):
    with pytest.raises(SystemExit) as end:
        main(["--version"])
    assert end.value.code == 0
    assert capsys.readouterr().out.strip() == f"speechrnn {__version__}" == "speechrnn 0.1.0"


def test_help_is_fast():
    seconds = []
    for _ in range(3):
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "speechrnn", "--help"], capture_output=True, text=True)
        seconds.append(time.perf_counter() - started)
        assert run.returncode == 0 and "transcribe" in run.stdout
    print(f"speechrnn --help: best of 3 {min(seconds):.3f} s")
    assert min(seconds) < 2.0  # about 0.05 s on an idle machine; lenient for a loaded one


def test_every_command_has_a_handler():
    parser = build_parser()
    for command in leaf_commands():
        words = command.split()
        if words[0] in ("lm", "classify", "tagger", "synthesis") and len(words) == 1:
            continue  # a group: its subcommands run
        positional = {"train": ["c.yaml"], "stats": ["c.yaml", "-o", "s.pt"], "plot": ["log"], "eval": ["b", "m"],
                      "tune": ["b", "m", "--lexicon", "l"], "calibrate": ["b", "m"], "transcribe": ["x.wav"], "align": ["b", "x", "-o", "p"],
                      "lm build": ["t", "-o", "a"], "lm lexicon": ["b", "t", "-o", "l"], "add-aligner": ["b", "a"],
                      "lm wordlist": ["b", "w", "--lexicon", "l", "--arpa", "a"], "lm train": ["c"], "lm score": ["m", "t"],
                      "lm generate": ["b"], "write": ["hello"], "synthesis train": ["c"], "synthesis score": ["b", "m"],
                      "export": ["b"], "plot-ink": ["-o", "p"], "orientation": ["b", "m"], "classify train": ["c"], "classify eval": ["b", "m"],
                      "classify adapt": ["b", "m", "-o", "a"], "tagger labels": ["b", "m", "--out", "o"],
                      "tagger train": ["c"], "tagger eval": ["b", "m", "l"], "serve": [], "mic": [], "models": []}[command]
        args = parser.parse_args(words + positional)
        assert callable(args.run) and args.run.__name__.startswith("cmd_"), command


def test_options():
    parser = build_parser()
    assert parser.parse_args(["serve"]).host == "127.0.0.1"
    adapt = parser.parse_args(["classify", "adapt", "b.pt", "m.jsonl", "-o", "a.pt", "--rounds", "2", "--lr", "0.01"])
    assert (adapt.rounds, adapt.lr, adapt.epochs, adapt.repeat, adapt.device) == (2, 0.01, None, None, "auto")
    labels = parser.parse_args(["tagger", "labels", "b.pt", "m.jsonl", "--out", "o", "--min-silence", "0.3"])
    assert (labels.min_silence, labels.ratio, labels.device, labels.threads) == (0.3, 0.25, "auto", 0)
    tune = parser.parse_args(["tune", "b.pt", "dev.jsonl", "--lexicon", "l.txt", "--word-scores", "0", "1"])
    assert tune.word_scores == [0.0, 1.0] and tune.oov_margins == [float("inf")] and tune.beam == 0  # cmd_tune: 50 with --lexicon, 16 with --char-lm
    assert parser.parse_args(["mic", "--input", "x.wav"]).threads == 1


def test_error_handler(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as end:
        main(["lm", "build", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "lm.arpa")])
    assert end.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'missing.txt'}: text file not found"

    from speechrnn.cli import train

    def interrupted(args):
        """Ctrl-C while running."""
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "cmd_plot", interrupted)
    with pytest.raises(SystemExit) as end:
        main(["plot", "train_log.jsonl"])
    assert end.value.code == 130 and capsys.readouterr().err.strip() == "interrupted"


def test_overrides_after_an_option(tmp_path, capsys):
    """`train CONF --resume key=value`: the overrides still reach the command; other strays are refused."""
    missing = str(tmp_path / "missing.yaml")
    for argv in (["train", missing, "--resume", "train.max_epochs=2"],
                 ["synthesis", "train", missing, "--overwrite", "model.hidden_size=8", "train.threads=1"]):
        with pytest.raises(SystemExit) as end:
            main(argv)
        assert end.value.code == 2 and capsys.readouterr().err.strip() == f"error: {missing}: config file not found"
    with pytest.raises(SystemExit) as end:
        main(["train", missing, "--resume", "stray"])
    assert end.value.code == 2 and "unrecognized arguments: stray" in capsys.readouterr().err


def test_cli_defaults_agree_with_the_library():
    """The defaults the parser carries (written out there so that it needs no torch) are the library's."""
    from speechrnn import mic, tune
    from speechrnn.cli import evaluate, mic as mic_cli
    from speechrnn.decode import BeamConfig
    from speechrnn.fusion import FusionConfig
    from speechrnn.rnn import RNN_CELLS
    from speechrnn.cli.classify import RNN_CELL_NAMES

    assert (evaluate.LM_WEIGHTS, evaluate.WORD_SCORES) == (tune.LM_WEIGHTS, tune.WORD_SCORES)
    assert (evaluate.FUSION_WEIGHTS, evaluate.CHAR_BONUSES, evaluate.FUSION_BEAM) == (
        tune.FUSION_WEIGHTS, tune.CHAR_BONUSES, FusionConfig.beam_size)
    assert evaluate.BEAM_THRESHOLD == BeamConfig.beam_threshold
    assert (mic_cli.BLOCK_SECONDS, mic_cli.PARTIAL_EVERY) == (mic.BLOCK_SECONDS, mic.PARTIAL_EVERY)
    assert (mic_cli.THRESHOLD, mic_cli.MIN_SILENCE, mic_cli.MAX_SEGMENT) == (
        mic.MIC_RULES.threshold, mic.MIC_RULES.min_silence, mic.MIC_RULES.max_length)
    assert RNN_CELL_NAMES == tuple(sorted(RNN_CELLS))


def test_task_defaults_agree_with_the_library():
    from dataclasses import asdict

    from speechrnn.cli.classify import ADAPT_OPTIONS
    from speechrnn.cli.tagger import LABEL_OPTIONS
    from speechrnn.tasks.classify.model import AdaptConfig
    from speechrnn.tasks.tagger.labels import LabelConfig

    assert {key: (kind, default) for key, (kind, default, _) in ADAPT_OPTIONS.items()} == {
        key: (type(value), value) for key, value in asdict(AdaptConfig()).items()}
    assert {key: default for key, (default, _) in LABEL_OPTIONS.items()} == asdict(LabelConfig())


def test_every_command_help_ends_with_an_example():
    parser = build_parser()
    for command in leaf_commands():
        words = command.split()
        if words[0] in ("lm", "classify", "tagger", "synthesis") and len(words) == 1:
            continue  # a group
        sub = parser
        for word in words:
            sub = next(a for a in sub._actions if a.__class__.__name__ == "_SubParsersAction").choices[word]
        assert "example" in (sub.epilog or "").lower() and f"speechrnn {command}" in sub.epilog, command
