"""Real-time factor of `speechrnn transcribe` on one CPU thread, and where the time goes.

Transcribes a folder of audio files (default: the AN4 test set, ../shared/data/an4/wav/an4test_clstk) the way
`speechrnn transcribe` does (Recognizer: files read, batches of similar length, decoded) with torch on one thread,
greedy and with the bundle's tuned beam search, and prints audio seconds, wall seconds and RTF (wall / audio) for
each, the median of --repeats runs. Model loading and interpreter start are not included (printed apart).

The breakdown times each stage separately over the same batches: file reading (soundfile + resampling), the
front-end (log-mel features + CMVN), the encoder and CTC head, and decoding. The variants row times the whole
path with one setting changed: torch.no_grad (what Recognizer used before) instead of torch.inference_mode, one
file per batch instead of batches of up to 240 s, and oneDNN (mkldnn) disabled. The long-recording row writes
the same files into one WAV file (0.5 s of silence between them) and transcribes it as `speechrnn transcribe` does
a file over --split-over seconds: read in blocks, energy VAD, segments decoded in batches, word times aligned.

    python benchmarks/bench_rtf.py [--bundle speechrnn/pretrained/an4.pt] [--folder DIR] [--repeats 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from speechrnn.cli.transcribe import AUDIO_EXTENSIONS, expand_inputs  # noqa: E402
from speechrnn.data import collate  # noqa: E402
from speechrnn.decode import greedy_decode  # noqa: E402
from speechrnn.recognizer import Recognizer  # noqa: E402


def batches(recognizer: Recognizer, inputs: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """The batches Recognizer.transcribe_inputs makes (sorted by length, up to max_batch_seconds padded)."""
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))
    out, batch = [], []
    for i in order:
        if batch and recognizer._units(len(inputs[i])) * (len(batch) + 1) > recognizer.max_batch_seconds:
            out.append(batch)
            batch = []
        batch.append(inputs[i])
    return out + [batch] if batch else out


def transcribe(recognizer: Recognizer, paths: list[str], grad_mode=torch.inference_mode, mkldnn: bool = True):
    with grad_mode(), (nullcontext() if mkldnn else torch.backends.mkldnn.flags(enabled=False)):
        inputs = [recognizer.load_input(path) for path in paths]
        return recognizer.transcribe_inputs(inputs)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def breakdown(recognizer: Recognizer, paths: list[str], repeats: int) -> dict[str, float]:
    """Seconds per stage (median of repeats), inference_mode, the Recognizer's batches."""
    stages = {"read": [], "features": [], "encoder + head": [], "decoding": []}
    model = recognizer.model
    for _ in range(repeats):
        start = time.perf_counter()
        inputs = [recognizer.load_input(path) for path in paths]
        stages["read"].append(time.perf_counter() - start)
        spent = dict.fromkeys(["features", "encoder + head", "decoding"], 0.0)
        with torch.inference_mode():
            for batch in batches(recognizer, inputs):
                b = collate([{"id": str(i), "inputs": x, "tokens": torch.zeros(0, dtype=torch.long), "text": ""}
                             for i, x in enumerate(batch)])
                t0 = time.perf_counter()
                feats, lens = model.frontend(b["inputs"], b["input_lens"])
                t1 = time.perf_counter()
                hidden, lens = model.encoder(feats, lens)
                log_probs = model.head(hidden).float().log_softmax(-1)
                t2 = time.perf_counter()
                if recognizer.decoder is None:
                    [recognizer.tokenizer.decode(ids) for ids in greedy_decode(log_probs, lens)]
                else:
                    recognizer.decoder.decode(log_probs, lens)
                t3 = time.perf_counter()
                spent["features"] += t1 - t0
                spent["encoder + head"] += t2 - t1
                spent["decoding"] += t3 - t2
        for key, value in spent.items():
            stages[key].append(value)
    return {key: statistics.median(values) for key, values in stages.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", default=str(REPO / "speechrnn" / "pretrained" / "an4.pt"))
    parser.add_argument("--folder", default=str(REPO.parent / "shared" / "data" / "an4" / "wav" / "an4test_clstk"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="TF32 acceleration")  # torch.backends.mkldnn.flags() on CPU

    paths = expand_inputs([args.folder], AUDIO_EXTENSIONS)
    start = time.perf_counter()
    greedy = Recognizer.load(args.bundle, decoding="greedy")
    load_s = time.perf_counter() - start
    tuned = Recognizer.load(args.bundle, decoding="tuned")
    audio_s = sum(len(x) for x in map(greedy.load_input, paths)) / greedy.config.features.sample_rate
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {len(paths)} files, {audio_s:.1f} s of "
          f"audio; bundle {args.bundle} loaded in {load_s:.2f} s; median of {args.repeats} runs after a warm-up")
    transcribe(greedy, paths)  # warm-up

    rows = [("greedy", greedy, {}), ("tuned" + (" beam search" if tuned.decoder else " (= greedy: no decoder)"),
                                     tuned, {})]
    rows += [("greedy, torch.no_grad", greedy, {"grad_mode": torch.no_grad}),
             ("greedy, mkldnn off", greedy, {"mkldnn": False})]
    print(f"\n{'system':34s} {'audio s':>8s} {'wall s':>8s} {'RTF':>8s}")
    for name, recognizer, options in rows:
        wall = timed(lambda: transcribe(recognizer, paths, **options), args.repeats)
        print(f"{name:34s} {audio_s:8.1f} {wall:8.2f} {wall / audio_s:8.4f}", flush=True)
    saved = greedy.max_batch_seconds
    greedy.max_batch_seconds = 0.0  # every file alone
    wall = timed(lambda: transcribe(greedy, paths), args.repeats)
    greedy.max_batch_seconds = saved
    print(f"{'greedy, one file per batch':34s} {audio_s:8.1f} {wall:8.2f} {wall / audio_s:8.4f}")
    with tempfile.TemporaryDirectory() as folder:
        long_wav = Path(folder) / "long.wav"
        gap = np.zeros(greedy.config.features.sample_rate // 2, dtype=np.float32)
        with soundfile.SoundFile(long_wav, "w", greedy.config.features.sample_rate, 1, "PCM_16") as out:
            for path in paths:
                out.write(greedy.load_input(path).numpy())
                out.write(gap)
        long_s = soundfile.info(long_wav).duration
        for name, recognizer in (("greedy", greedy), ("tuned", tuned)):
            wall = timed(lambda: recognizer.transcribe_long(long_wav, timestamps=True), args.repeats)
            print(f"{'one long recording, ' + name:34s} {long_s:8.1f} {wall:8.2f} {wall / long_s:8.4f}", flush=True)

    for name, recognizer in (("greedy", greedy), ("tuned", tuned)):
        stages = breakdown(recognizer, paths, args.repeats)
        total = sum(stages.values())
        print(f"\nwhere the time goes ({name}): " + ", ".join(
            f"{key} {value:.2f} s ({100 * value / total:.0f} %)" for key, value in stages.items())
              + f"; total {total:.2f} s, RTF {total / audio_s:.4f}")


if __name__ == "__main__":
    main()
