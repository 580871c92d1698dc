"""Training-step time of the hand-written cells (indrnn, jordan) against nn.LSTM on CPU, side by side in one run.

Each variant is a speechrnn.rnn.StackedRNN (bidirectional by default, 3 layers) at the same hidden size on the same
variable-length padded batch:

  lstm                 cell=lstm (torch's oneDNN kernel): the baseline
  indrnn               cell=indrnn as used in training: the recurrence is a custom autograd Function whose
                       forward and backward loops are TorchScript-compiled (IndRNN impl "scripted")
  indrnn, python fn    the same Function with its loops run by Python (impl "python")
  indrnn, autograd     the plain Python loop h = relu(a_t + u * h), every step recorded by autograd (impl "autograd")
  jordan               cell=jordan (Python loop over time recorded by autograd), for information

The three indrnn variants share one set of weights (checked: same outputs). A step is zero_grad + forward + a
CTC-like masked loss over the valid frames + backward + AdamW step. Variants are warmed up, then timed in
interleaved rounds (order rotated each round) so a concurrent load hits them alike; rounds stop after
--repeats or once --time-budget seconds are spent (at least 3 rounds). Reported: median ms/step, the ratio of
medians and the paired ratio (median over rounds of the ratio within a round). Note IndRNN has ~4x fewer
recurrent-layer parameters than an LSTM of the same hidden size (its recurrent weights are a vector).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_indrnn.py [--hidden 256 --batch 32 --frames 100 --input 80]
      [--layers 3] [--unidirectional] [--repeats 10] [--no-jordan] [--threads 1]
"""

import argparse
import copy
import statistics
import time
import warnings

import torch

from speechrnn.rnn import IndRNN, RNNConfig, StackedRNN, indrnn_loops


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=100, help="T, the longest item (frames after subsampling)")
    parser.add_argument("--min-frac", type=float, default=0.3, help="lengths ~ uniform[min_frac*T, T]")
    parser.add_argument("--input", type=int, default=80)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--unidirectional", action="store_true")
    parser.add_argument("--repeats", type=int, default=10, help="max timed rounds (one step per variant each)")
    parser.add_argument("--time-budget", type=float, default=60.0,
                        help="stop timed rounds after this many seconds (at least 3 rounds); 0: no limit")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--no-jordan", action="store_true", help="leave out the jordan variant")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def set_indrnn_impl(model: StackedRNN, impl: str) -> StackedRNN:
    for module in model.modules():
        if isinstance(module, IndRNN):
            module.impl = impl
    return model


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*TF32 acceleration on top of oneDNN.*")
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)

    low = max(1, round(args.min_frac * args.frames))
    lens = torch.randint(low, args.frames + 1, (args.batch,), generator=generator)
    lens[0] = args.frames  # the padded batch is exactly T long
    x = torch.randn(args.batch, args.frames, args.input, generator=generator)
    mask = (torch.arange(args.frames)[None, :] < lens[:, None]).unsqueeze(-1).float()  # (B, T, 1)

    def config(cell):
        return RNNConfig(cell=cell, hidden_size=args.hidden, num_layers=args.layers,
                         bidirectional=not args.unidirectional, dropout=0.0)

    indrnn = StackedRNN(args.input, config("indrnn"))
    models = {
        "lstm": StackedRNN(args.input, config("lstm")),
        "indrnn": indrnn,
        "indrnn, python fn": set_indrnn_impl(copy.deepcopy(indrnn), "python"),
        "indrnn, autograd": set_indrnn_impl(copy.deepcopy(indrnn), "autograd"),
    }
    if not args.no_jordan:
        models["jordan"] = StackedRNN(args.input, config("jordan"))
    names = list(models)
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, model in models.items()}

    def step(name):
        model = models[name]
        optimizers[name].zero_grad(set_to_none=True)
        out = model(x, lens)
        loss = (out * mask).pow(2).sum() / lens.sum()  # CTC-like: a loss over the valid frames only
        loss.backward()
        optimizers[name].step()
        return out

    count = lambda module: sum(p.numel() for p in module.parameters())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, indrnn loops: {indrnn_loops()[2]}")
    directions = 1 if args.unidirectional else 2
    print(f"{args.layers} layers x {directions} directions, hidden {args.hidden}, input {args.input}; "
          f"batch {args.batch}, T {args.frames}, lengths {lens.min().item()}..{lens.max().item()} "
          f"({lens.sum().item() / (args.batch * args.frames):.0%} of the padded batch)")
    print("parameters: " + ", ".join(f"{name} {count(models[name]):,}" for name in names if "," not in name))

    outputs = {}
    for name in names:  # warm-up (the first indrnn step also compiles the TorchScript loops)
        for index in range(args.warmup):
            out = step(name)
            if index == 0:
                outputs[name] = out.detach()
    for name in ("indrnn, python fn", "indrnn, autograd"):
        diff = (outputs[name] - outputs["indrnn"]).abs().max().item()
        print(f"check: {name} vs indrnn at the first step: max |output diff| {diff:.1e} "
              f"(max |output| {outputs['indrnn'].abs().max().item():.1f})")

    times = {name: [] for name in names}
    timing_start = time.perf_counter()
    for round_index in range(args.repeats):
        if round_index >= 3 and args.time_budget and time.perf_counter() - timing_start > args.time_budget:
            break
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            step(name)
            times[name].append(time.perf_counter() - start)

    median = {name: 1000 * statistics.median(values) for name, values in times.items()}

    def paired(a, b):  # median over rounds of the ratio a/b within a round
        return statistics.median(ta / tb for ta, tb in zip(times[a], times[b]))

    rounds = len(times[names[0]])
    print(f"\ntraining step (zero_grad + fwd + masked loss + bwd + AdamW), {rounds} interleaved rounds after "
          f"{args.warmup} warm-up step{'s' if args.warmup != 1 else ''} each:")
    print(f"  {'variant':20s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s} {'vs lstm':>8s} {'paired':>7s}")
    for name in names:
        values = [1000 * v for v in times[name]]
        print(f"  {name:20s} {median[name]:10.1f} {min(values):8.1f} {max(values):8.1f} "
              f"{median[name] / median['lstm']:7.2f}x {paired(name, 'lstm'):6.2f}x")
    print("  (vs lstm: ratio of medians; paired: median over rounds of the ratio within a round)")
    ratio = median["indrnn"] / median["lstm"]
    print(f"\nratio indrnn/lstm = {ratio:.2f}x (paired {paired('indrnn', 'lstm'):.2f}x): goal <= 2x "
          f"{'met' if ratio <= 2 else 'NOT met'}")
    print(f"speed-up of the fast loop: indrnn autograd (plain Python loop) / indrnn = "
          f"{median['indrnn, autograd'] / median['indrnn']:.2f}x (paired {paired('indrnn, autograd', 'indrnn'):.2f}x); "
          f"python fn / indrnn = {median['indrnn, python fn'] / median['indrnn']:.2f}x "
          f"(paired {paired('indrnn, python fn', 'indrnn'):.2f}x)")
    if "jordan" in median:
        print(f"ratio jordan/lstm = {median['jordan'] / median['lstm']:.2f}x (paired {paired('jordan', 'lstm'):.2f}x)")


if __name__ == "__main__":
    main()
