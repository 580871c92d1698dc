"""One example per command, shown at the end of its --help (build_parser adds them)."""

EXAMPLES = {
    "models": "speechrnn models",
    "transcribe": "speechrnn transcribe some.wav other.flac; speechrnn transcribe --model unipen word.json -f json",
    "align": "speechrnn align an4 some.wav -o align.png",
    "train": "speechrnn train recipes/an4/conf/default.yaml train.exp_dir=exp/default --resume",
    "stats": "speechrnn stats recipes/an4/conf/default.yaml -o exp/data/cmvn.pt",
    "plot": "speechrnn plot exp/default/train_log.jsonl -o curves.png",
    "eval": "speechrnn eval exp/default/model.pt exp/data/test.jsonl -o decode/ --tuned",
    "tune": "speechrnn tune exp/default/model.pt exp/data/dev.jsonl --lexicon words.lex --lm words.arpa",
    "calibrate": "speechrnn calibrate exp/default/model.pt exp/data/dev.jsonl --threads 1",
    "lm build": "speechrnn lm build exp/data/train.jsonl -o words.arpa --order 3",
    "lm lexicon": "speechrnn lm lexicon exp/default/model.pt exp/data/train.jsonl -o words.lex",
    "lm wordlist": "speechrnn lm wordlist unipen words.tsv --lexicon open.lex --arpa open.arpa --case-variants",
    "write": "speechrnn write \"hello world\" -o hello.svg --bias 1.5 --seed 3",
    "synthesis score": "speechrnn synthesis score unipen-writer recipes/unipen/exp/data/test.jsonl",
    "synthesis train": "speechrnn synthesis train recipes/unipen/conf/synthesis.yaml train.exp_dir=exp/writer",
    "lm train": "speechrnn lm train recipes/english_lm/conf/default.yaml train.exp_dir=exp/charlm",
    "lm score": "speechrnn lm score exp/charlm/model.pt exp/text/test.txt",
    "lm generate": "speechrnn lm generate unipen --prompt \"The \" --temperature 0.7 --seed 1",
    "add-aligner": "speechrnn add-aligner exp/default/model.pt exp/aligner/model.pt exp/aligner_end/model.pt",
    "export": "speechrnn export an4 --onnx an4.onnx; speechrnn export exp/default/model.pt --int8 small.pt",
    "plot-ink": "speechrnn plot-ink word.json --bundle unipen -o ink.png",
    "orientation": "speechrnn orientation recipes/unipen/exp/lines/model.pt recipes/unipen/exp/data/train_mixed.jsonl",
    "classify train": "speechrnn classify train recipes/fsdd/conf/default.yaml train.exp_dir=exp/fsdd --resume",
    "classify eval": "speechrnn classify eval exp/fsdd/model.pt exp/data/test.jsonl -o exp/fsdd/eval",
    "classify adapt": "speechrnn classify adapt exp/fsdd/model.pt new_voice.jsonl -o adapted.pt",
    "tagger labels": "speechrnn tagger labels exp/default/model.pt exp/data/train.jsonl --out exp/vad_labels",
    "tagger train": "speechrnn tagger train recipes/an4/conf/vad.yaml --resume",
    "tagger eval": "speechrnn tagger eval exp/vad/model.pt exp/data/test.jsonl exp/vad_labels/test.refined.npz",
    "serve": "speechrnn serve (then open http://127.0.0.1:8000/); speechrnn serve an4 --port 8080",
    "mic": "speechrnn mic; speechrnn mic --input some.wav --fast",
}


def add_examples(subcommands, prefix: str = "") -> None:
    """Append `example: ...` to the --help epilog of every command below `subcommands` (a subparsers action)."""
    for name, parser in subcommands.choices.items():
        full = f"{prefix}{name}"
        nested = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if nested:
            add_examples(nested[0], full + " ")
            continue
        if "example" in (parser.epilog or "").lower():
            continue  # the command's own epilog shows one (or several) already
        example = f"example: {EXAMPLES[full]}"
        parser.epilog = f"{parser.epilog}\n\n{example}" if parser.epilog else example
