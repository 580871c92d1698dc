"""Print the hidden size at which CELL's model has about as many parameters as the config's own model (the
largest size that is not bigger), for comparing RNN cells at an equal parameter budget.

Usage: python tools/match_hidden.py CONFIG CELL [--classify]   (prints: hidden_size parameters reference_parameters)
--classify: CONFIG is a `speechrnn classify` config (e.g. recipes/fsdd), else a CTC recognizer config.
"""

import sys

VOCAB = 29  # CTC models: AN4's characters + blank (only the head depends on it)


def parameters(config_path: str, cell: str | None = None, hidden: int | None = None, classify: bool = False) -> int:
    overrides = ([f"model.rnn.cell={cell}"] if cell else []) + ([f"model.rnn.hidden_size={hidden}"] if hidden else [])
    if classify:
        from speechrnn.tasks.classify.model import build_classifier
        from speechrnn.tasks.classify.task import load_classify_config

        config = load_classify_config(config_path, overrides)
        model = build_classifier(len(config.data.classes) or 10, config)
    else:
        from speechrnn.config import load_config
        from speechrnn.model import build_model

        model = build_model(VOCAB, load_config(config_path, overrides))
    return sum(p.numel() for p in model.parameters())


def main(config_path: str, cell: str, classify: bool) -> None:
    reference = parameters(config_path, classify=classify)
    low, high = 8, 8192  # binary search for the largest hidden size whose model is not bigger than the reference
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if parameters(config_path, cell, middle, classify) <= reference else (low, middle - 1)
    print(low, parameters(config_path, cell, low, classify), reference)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--classify" in sys.argv[3:])
