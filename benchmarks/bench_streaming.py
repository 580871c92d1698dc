"""Streaming latency of unidirectional models (speechrnn/streaming.py), randomly initialised (compute time does not
depend on the weights): a tiny model and an AN4-sized one (conv 32 ch, 3 x LSTM 320 unidirectional, 80 mels).

For AN4 test utterances fed in chunks of 0.1 / 0.2 s: compute per chunk (mean, max) against the chunk's duration,
and the latency from the end of speech to the final greedy text = lookahead (audio that has to arrive after the last
speech sample: the frames it ends up in need 42.5 ms of right context) + flush compute. Compared with the offline
forward of the whole utterance, what a re-decode of the segment at its end costs (the mic's final decode).

    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py [--utterances 10] [--threads 1]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from speechrnn.features import FeatureConfig  # noqa: E402
from speechrnn.model import ModelConfig, build_speech_model  # noqa: E402
from speechrnn.rnn import RNNConfig  # noqa: E402
from speechrnn.streaming import StreamingDecoder  # noqa: E402

MODELS = {
    "tiny (conv 8, 2 x LSTM 32, 40 mels)": (ModelConfig(conv_channels=8, rnn=RNNConfig(hidden_size=32, num_layers=2,
                                                                                       bidirectional=False)), 40),
    "AN4-sized (conv 32, 3 x LSTM 320, 80 mels)": (ModelConfig(conv_channels=32, rnn=RNNConfig(
        hidden_size=320, num_layers=3, bidirectional=False)), 80),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "an4"))
    parser.add_argument("--utterances", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted((Path(args.data) / "wav" / "an4test_clstk").glob("*/*.wav"))[:args.utterances]
    wavs = [torch.from_numpy(soundfile.read(p, dtype="float32")[0]) for p in paths]
    seconds = sum(len(w) for w in wavs) / 16000
    print(f"{len(wavs)} AN4 test utterances, {seconds:.1f} s; torch threads {args.threads}")
    for name, (config, mels) in MODELS.items():
        torch.manual_seed(0)
        model = build_speech_model(29, config, FeatureConfig(n_mels=mels), None).eval()
        params = sum(p.numel() for p in model.parameters())
        lookahead = StreamingDecoder(model).lookahead
        print(f"\n{name}: {params / 1e6:.2f} M parameters; lookahead {lookahead['ms']:.1f} ms "
              f"({lookahead['feature_frames']} feature frames + half an STFT window)")
        with torch.inference_mode():  # offline: the whole utterance at once (warm-up first)
            model(wavs[0][None], torch.tensor([len(wavs[0])]))
            offline = []
            for wav in wavs:
                started = time.perf_counter()
                model(wav[None], torch.tensor([len(wav)]))
                offline.append(time.perf_counter() - started)
        print(f"  offline forward of the whole utterance: mean {1000 * statistics.mean(offline):.1f} ms, "
              f"RTF {sum(offline) / seconds:.4f}")
        for chunk_seconds in (0.1, 0.2):
            chunk = int(16000 * chunk_seconds)
            per_chunk, flushes, finals = [], [], []
            for wav in wavs:
                decoder = StreamingDecoder(model)
                for start in range(0, len(wav), chunk):
                    started = time.perf_counter()
                    decoder.push(wav[start:start + chunk].numpy())
                    per_chunk.append(time.perf_counter() - started)
                started = time.perf_counter()
                decoder.flush()
                flushes.append(time.perf_counter() - started)
                finals.append(lookahead["ms"] / 1000 + flushes[-1])
            per_chunk.sort()
            print(f"  chunks of {1000 * chunk_seconds:.0f} ms: compute per chunk mean "
                  f"{1000 * statistics.mean(per_chunk):.2f} ms, p95 {1000 * per_chunk[int(0.95 * len(per_chunk))]:.2f}"
                  f" ms, max {1000 * per_chunk[-1]:.2f} ms (RTF {sum(per_chunk) / seconds:.4f}); flush "
                  f"{1000 * statistics.mean(flushes):.2f} ms; end of speech -> final greedy text "
                  f"{1000 * statistics.mean(finals):.1f} ms (lookahead + flush)")


if __name__ == "__main__":
    main()
