"""`speechrnn models`: the models shipped with the package, by name, with what each recognises."""

from .common import add_command


def cmd_models(args) -> None:
    """List the shipped models: name, kind (audio or ink recognisers, a synthesis network that writes ink), size,
    what each knows and its held-out scores. Use a name
    wherever a bundle file is asked for (`speechrnn transcribe unipen word.json`, `speechrnn.load("an4")`)."""
    from ..pretrained import DEFAULTS, MODELS

    for model in MODELS.values():
        size = f"{model.path.stat().st_size / 1e6:.1f} MB" if model.path.is_file() else "missing from this install"
        default = next((f" (default for {kind})" for kind, name in DEFAULTS.items() if name == model.name), "")
        print(f"{model.name}: {model.modality}{default}, {size}\n  knows:  {model.knows}\n  scores: {model.scores}")


def add_parsers(commands) -> None:
    add_command(commands, "models", cmd_models, "list the shipped models and what they recognise")
