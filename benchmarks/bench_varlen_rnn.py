"""Training-step time of a variable-length bidirectional RNN stack on CPU, three (four) ways, side by side.

  ours     speechrnn.rnn.StackedRNN on the padded batch (backward direction reversed within each length):
           exact per-utterance results
  packed   nn.LSTM/GRU(bidirectional=True) with pack_padded_sequence(enforce_sorted=False) /
           pad_packed_sequence: the usual exact baseline
  padded   nn.LSTM/GRU(bidirectional=True) on the plain padded batch: the backward direction starts in
           the padding, so results at shorter utterances are WRONG; it is only the upper bound on speed
  ours, mkldnn off (optional, --mkldnn-off-row)  ours under torch.backends.mkldnn.flags(enabled=False),
           to show what mkldnn contributes (pack_padded_sequence never gets the mkldnn path)

A step is forward + a CTC-like masked sum loss over the valid frames + backward (no optimizer; gradients
are reset to None between steps, identically for all variants). All variants have the same parameter
count, are warmed up, then timed in interleaved rounds (variant order rotated every round) so a
concurrent load on the machine hits them alike; rounds stop after --repeats or once --time-budget seconds
are spent (at least 3 rounds). Reported: median ms/step and ratios.

Run:  python benchmarks/bench_varlen_rnn.py [--cell gru] [--repeats 15] [--threads 2] [--mkldnn-off-row]
"""

import argparse
import statistics
import time
import warnings

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from speechrnn.rnn import RNNConfig, StackedRNN

TORCH_RNN = {"lstm": nn.LSTM, "gru": nn.GRU}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cell", choices=sorted(TORCH_RNN), default="lstm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frames", type=int, default=100, help="T, frames after subsampling (longest item)")
    parser.add_argument("--min-frac", type=float, default=0.3, help="lengths ~ uniform[min_frac*T, T]")
    parser.add_argument("--input", type=int, default=640)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20, help="max timed rounds (one step per variant each)")
    parser.add_argument("--time-budget", type=float, default=40.0,
                        help="stop timed rounds after this many seconds (at least 3 rounds); 0: no limit")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per variant first")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mkldnn-off-row", action="store_true", help="add the variant 'ours, mkldnn off'")
    return parser.parse_args()


def make_lengths(batch, frames, min_frac, generator):
    low = max(1, round(min_frac * frames))
    lens = torch.randint(low, frames + 1, (batch,), generator=generator)
    lens[torch.randint(0, batch, (1,), generator=generator)] = frames  # the padded batch is exactly T long
    return lens


def copy_weights(ours: StackedRNN, torch_rnn: nn.Module):
    """Give ours the weights of the bidirectional torch RNN (same function, same parameter count)."""
    with torch.no_grad():
        for index in range(ours.config.num_layers):
            for layer, suffix in ((ours.forward_layers[index], ""), (ours.backward_layers[index], "_reverse")):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(layer, f"{name}_l0").copy_(getattr(torch_rnn, f"{name}_l{index}{suffix}"))


def run_ours(model, x, lens):
    return model(x, lens)


def run_packed(model, x, lens):
    packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(model(packed)[0], batch_first=True, total_length=x.shape[1])[0]


def run_padded(model, x, lens):
    return model(x)[0]


def uses_mkldnn(output):
    """True if the autograd graph of output contains a mkldnn RNN node."""
    seen, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if "mkldnn" in type(node).__name__.lower():
            return True
        stack.extend(next_node for next_node, _ in node.next_functions)
    return False


def correctness(cell, layers):
    """Small batch, shared weights: each variant against processing every utterance alone (no padding).
    Returns {variant: (max |diff| forward-direction half, max |diff| backward-direction half)}."""
    torch.manual_seed(1)
    hidden = 8
    torch_rnn = TORCH_RNN[cell](16, hidden, num_layers=layers, bidirectional=True, batch_first=True).eval()
    ours = StackedRNN(16, RNNConfig(cell, hidden, layers, True, 0.0)).eval()
    copy_weights(ours, torch_rnn)
    lens = torch.tensor([9, 12, 3, 6])
    x = torch.randn(len(lens), 12, 16)
    with torch.no_grad():
        reference = [torch_rnn(x[i : i + 1, :length])[0][0] for i, length in enumerate(lens.tolist())]
        outputs = {
            "ours": run_ours(ours, x, lens),
            "packed": run_packed(torch_rnn, x, lens),
            "padded": run_padded(torch_rnn, x, lens),
        }
    diffs = {}
    for name, out in outputs.items():
        errors = [(out[i, :length] - ref).abs() for i, (length, ref) in enumerate(zip(lens.tolist(), reference))]
        forward = max(error[:, :hidden].max().item() for error in errors)
        backward = max(error[:, hidden:].max().item() for error in errors)
        diffs[name] = (forward, backward)
    return diffs


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*TF32 acceleration on top of oneDNN.*")
    generator = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)

    lens = make_lengths(args.batch, args.frames, args.min_frac, generator)
    x = torch.randn(args.batch, args.frames, args.input, generator=generator)
    mask = (torch.arange(args.frames)[None, :] < lens[:, None]).unsqueeze(-1).float()  # (B, T, 1)

    torch_rnn = TORCH_RNN[args.cell](args.input, args.hidden, num_layers=args.layers, bidirectional=True, batch_first=True)
    ours = StackedRNN(args.input, RNNConfig(args.cell, args.hidden, args.layers, True, 0.0))
    copy_weights(ours, torch_rnn)
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert count(ours) == count(torch_rnn), (count(ours), count(torch_rnn))

    def step_fn(model, run, mkldnn=True):
        def step():
            for p in model.parameters():
                p.grad = None
            with torch.backends.mkldnn.flags(enabled=mkldnn):
                out = run(model, x, lens)
                loss = (out * mask).sum() / lens.sum()  # CTC-like: a sum over valid frames only
                loss.backward()
            return out

        return step

    variants = {
        "ours (StackedRNN, exact)": step_fn(ours, run_ours),
        "packed (pack_padded, exact)": step_fn(torch_rnn, run_packed),
        "padded (unmasked, WRONG)": step_fn(torch_rnn, run_padded),
    }
    if args.mkldnn_off_row:
        variants["ours, mkldnn off"] = step_fn(ours, run_ours, mkldnn=False)
    names = list(variants)

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"mkldnn available {torch.backends.mkldnn.is_available()}, enabled {torch.backends.mkldnn.enabled}")
    print(f"{args.cell} {args.layers} layers x 2 directions, hidden {args.hidden}, input {args.input}; "
          f"batch {args.batch}, T {args.frames}, lengths {lens.min().item()}..{lens.max().item()} "
          f"(mean {lens.float().mean():.1f}, {lens.sum().item() / (args.batch * args.frames):.0%} of the padded batch)")
    print(f"parameters: ours {count(ours):,} = torch {args.cell} {count(torch_rnn):,}")

    print(f"\ncorrectness (lengths [9, 12, 3, 6], T 12, shared weights; max |diff| of the output vs each utterance alone):")
    checks = [(args.layers, correctness(args.cell, args.layers))]
    if args.layers > 1:
        checks.append((1, {"padded": correctness(args.cell, 1)["padded"]}))
    for layers, diffs in checks:
        for name, (forward, backward) in diffs.items():
            verdict = "exact" if max(forward, backward) < 1e-5 else "DIFFERS"
            print(f"  {name:7s} {layers} layer{'s' if layers > 1 else ' '}  forward dir {forward:.1e}   "
                  f"backward dir {backward:.1e}   {verdict}")
    if args.layers > 1:
        print("  (padded: the backward direction starts in the padding; from layer 2 on that error also reaches the "
              "forward direction)")

    mkldnn_used = {}
    for name in names:  # warm-up
        for _ in range(args.warmup):
            out = variants[name]()
        mkldnn_used[name] = uses_mkldnn(out)

    times = {name: [] for name in names}
    timing_start = time.perf_counter()
    for round_index in range(args.repeats):
        if round_index >= 3 and args.time_budget and time.perf_counter() - timing_start > args.time_budget:
            break
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)

    median = {name: 1000 * statistics.median(values) for name, values in times.items()}
    base = median[names[0]]
    rounds = len(times[names[0]])
    print(f"\ntraining step (fwd + masked sum loss + bwd), {rounds} interleaved rounds after {args.warmup} warm-up "
          f"step{'s' if args.warmup != 1 else ''} each:")
    # paired: the ratio to ours within each round, then the median over rounds (robust to load drifting)
    paired = {name: statistics.median(t / o for t, o in zip(times[name], times[names[0]])) for name in names}
    print(f"  {'variant':30s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s} {'vs ours':>8s} {'paired':>7s}  mkldnn rnn")
    for name in names:
        values = [1000 * v for v in times[name]]
        print(f"  {name:30s} {median[name]:10.1f} {min(values):8.1f} {max(values):8.1f} {median[name] / base:7.2f}x "
              f"{paired[name]:6.2f}x  {'yes' if mkldnn_used[name] else 'no'}")
    print("  (vs ours: ratio of medians; paired: median over rounds of the ratio within a round)")
    print(f"ratios: packed/ours = {median[names[1]] / base:.2f}x, ours/padded = {base / median[names[2]]:.2f}x"
          f"  (paired: {paired[names[1]]:.2f}x, {1 / paired[names[2]]:.2f}x)")


if __name__ == "__main__":
    main()
