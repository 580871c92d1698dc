"""How long the synthesis network takes to write one word on one CPU thread (the issue's goal: <= 0.2 s).

Words of the general-English list are written one at a time at the bundle's default bias, after one warm-up word;
prints the median, mean and 90th percentile of seconds per word, points per second, and the median's ratio to the
goal.

    python benchmarks/bench_write.py [--model unipen-writer] [--words 50] [--threads 1]
"""

import argparse
import statistics
import time

import torch

from speechrnn.tasks.synthesis.inference import load_writer, write

WORDS = ("morning quiet lamp garden violet pocket bridge stone river winter harbour candle journey whisper market "
         "silver thunder meadow orange basket planet shadow forest pillow mirror anchor butter castle dragon "
         "feather hollow island jacket kettle ladder monkey needle oyster pepper rabbit saddle tunnel velvet wagon "
         "yellow zipper quartz jigsaw puzzle").split()
GOAL = 0.2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="unipen-writer")
    parser.add_argument("--words", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    writer = load_writer(args.model)
    write(writer, "warm", seed=0)
    seconds, points = [], 0
    for k in range(args.words):
        word = WORDS[k % len(WORDS)]
        started = time.perf_counter()
        ink = write(writer, word, seed=k)
        seconds.append(time.perf_counter() - started)
        points += ink.num_points
    median = statistics.median(seconds)
    print(f"{args.model}: {len(seconds)} words on {args.threads} thread(s): median {median:.3f} s/word, mean "
          f"{statistics.mean(seconds):.3f}, p90 {sorted(seconds)[int(0.9 * len(seconds))]:.3f}; "
          f"{points / sum(seconds):.0f} points/s; median / goal ({GOAL} s) = {median / GOAL:.2f}")


if __name__ == "__main__":
    main()
