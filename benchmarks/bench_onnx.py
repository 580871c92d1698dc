"""Inference speed on CPU: the torch model vs its ONNX export (speechrnn.export) run by onnxruntime.

The model is a bundle (--bundle) or, by default, one of the AN4 default size built with random weights
(recipes/an4/conf/default.yaml: 80 fbank, conv subsampling with 32 channels, 3 x BiLSTM 256; 29 symbols), saved
to a temporary bundle and exported with `speechrnn.export.export_onnx` (the path `speechrnn export` takes).

Both run the same padded batches (waveforms of random lengths, zero-padded, as `data.collate` gives them), from
waveform to log-probs: torch with the torchaudio front-end, onnxruntime with the export's Conv1d-DFT front-end.
Each side gets the same number of threads (--threads, default 1: torch.set_num_threads / intra_op_num_threads).
After one warm-up call each, timing runs in interleaved rounds, one call per side per round on the same batch
with the order alternated, so a load on the machine hits both alike. Reported: median ms per batch, real-time
factor (audio seconds per compute second), the ratio of the medians and the median of the per-round ratios.
Before timing, the outputs are compared (max |log-prob| difference over the valid frames).

Run:  python benchmarks/bench_onnx.py [--bundle exp/default/model.pt] [--batch 8] [--repeats 10] [--threads 1]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from speechrnn.bundle import save_bundle
from speechrnn.config import load_config, to_dict
from speechrnn.export import OnnxRecognizer, export_onnx
from speechrnn.model import build_model
from speechrnn.bundle import load_model
from speechrnn.text import TextConfig, Tokenizer

REPO = Path(__file__).resolve().parents[1]
AN4_CONFIG = REPO / "recipes" / "an4" / "conf" / "default.yaml"
AN4_CHARS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ '")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="model bundle (default: AN4 default size, random weights)")
    parser.add_argument("--batch", type=int, default=8, help="utterances per padded batch")
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--max-seconds", type=float, default=6.0, help="lengths ~ uniform[min, max] seconds")
    parser.add_argument("--batches", type=int, default=3, help="distinct padded batches, used in turn")
    parser.add_argument("--repeats", type=int, default=10, help="max timed rounds (one call per side each)")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="stop timed rounds after this many seconds (at least 3 rounds); 0: no limit")
    parser.add_argument("--threads", type=int, default=1, help="threads for torch and for onnxruntime")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="also write the ONNX file here")
    return parser.parse_args()


def an4_bundle(path: Path) -> Path:
    config = load_config(AN4_CONFIG)
    tokenizer = Tokenizer(AN4_CHARS, TextConfig())
    torch.manual_seed(0)
    model = build_model(len(tokenizer), config)
    save_bundle(path, model.state_dict(), to_dict(config), tokenizer.to_dict())
    return path


def make_batches(args, sample_rate: int, generator: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    batches = []
    for _ in range(args.batches):
        seconds = args.min_seconds + (args.max_seconds - args.min_seconds) * torch.rand(args.batch, generator=generator)
        lens = (seconds * sample_rate).long().clamp(min=1)
        lens[0] = int(args.max_seconds * sample_rate)  # every padded batch is max_seconds long
        wav = 0.1 * torch.randn(args.batch, int(lens.max()), generator=generator)
        wav = wav * (torch.arange(wav.shape[1])[None, :] < lens[:, None])
        batches.append((wav, lens))
    return batches


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(args.bundle) if args.bundle else an4_bundle(Path(tmp) / "an4_default.pt")
        onnx_path = Path(args.keep) if args.keep else Path(tmp) / "model.onnx"
        start = time.perf_counter()
        export_onnx(bundle, onnx_path, opset=args.opset, verify=False)
        export_s = time.perf_counter() - start
        model, tokenizer, config, _ = load_model(bundle)
        runner = OnnxRecognizer(onnx_path, threads=args.threads)
        run_benchmark(args, model, tokenizer, config, runner, bundle, onnx_path, export_s)


def run_benchmark(args, model, tokenizer, config, runner, bundle, onnx_path, export_s):
    import onnxruntime

    if config.modality != "audio":
        raise SystemExit(f"{bundle}: a {config.modality} model; this benchmark feeds waveforms")
    rate = config.features.sample_rate
    params = sum(p.numel() for p in model.parameters())
    rnn = config.model.rnn
    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, threads {args.threads} each")
    print(f"model: {bundle if args.bundle else 'AN4 default size, random weights'}: {config.features.kind} "
          f"{config.features.n_mels if config.features.kind == 'fbank' else config.features.n_mfcc}, conv "
          f"{config.model.conv_channels} ch, {rnn.num_layers} x {'bi' if rnn.bidirectional else ''}{rnn.cell} "
          f"{rnn.hidden_size}, vocab {len(tokenizer)}; {params:,} parameters")
    print(f"export: {export_s:.1f} s, {onnx_path.stat().st_size / 1e6:.1f} MB, opset {args.opset}")

    g = torch.Generator().manual_seed(args.seed)
    batches = make_batches(args, rate, g)
    audio_s = [float(lens.sum()) / rate for _, lens in batches]
    print(f"batches: {args.batches} x {args.batch} utterances, {args.min_seconds:g}..{args.max_seconds:g} s "
          f"(padded to {args.max_seconds:g} s), {statistics.mean(audio_s):.1f} s of audio per batch on average")

    def run_torch(wav, lens):
        with torch.inference_mode():
            return model(wav, lens)

    def run_onnx(wav, lens):
        return runner(wav.numpy(), lens.numpy())

    # parity and warm-up
    worst = 0.0
    for wav, lens in batches:
        ref, ref_lens = run_torch(wav, lens)
        out, out_lens = run_onnx(wav, lens)
        assert np.array_equal(out_lens, ref_lens.numpy()), "output lengths differ"
        valid = np.arange(out.shape[1])[None, :] < out_lens[:, None]
        worst = max(worst, float(np.abs(out - ref.numpy())[valid].max()))
    print(f"max |log-prob| difference onnxruntime vs torch over valid frames: {worst:.1e}")

    sides = {"torch": run_torch, "onnxruntime": run_onnx}
    times = {name: [] for name in sides}
    ratios = []
    start = time.perf_counter()
    for round_ in range(args.repeats):
        wav, lens = batches[round_ % len(batches)]
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        took = {}
        for name in order:
            t0 = time.perf_counter()
            sides[name](wav, lens)
            took[name] = time.perf_counter() - t0
            times[name].append(took[name])
        ratios.append(took["torch"] / took["onnxruntime"])
        if args.time_budget and round_ >= 2 and time.perf_counter() - start > args.time_budget:
            break
    rounds = len(ratios)
    mean_audio = statistics.mean(audio_s[r % len(batches)] for r in range(rounds))
    print(f"\n{rounds} interleaved rounds (1 call per side per round, order alternated):")
    print(f"  {'side':<12} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'x real time':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<12} {1000 * median:10.1f} {1000 * min(values):9.1f} {1000 * max(values):9.1f} "
              f"{mean_audio / median:12.1f}")
    ratio = statistics.median(times["torch"]) / statistics.median(times["onnxruntime"])
    print(f"speed-up onnxruntime vs torch: {ratio:.2f}x (ratio of medians), {statistics.median(ratios):.2f}x "
          f"(median of per-round ratios)")


if __name__ == "__main__":
    main()
