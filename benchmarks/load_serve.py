"""Load test of `speechrnn serve`: the batching server against a one-at-a-time server (--batch 1), side by side.

Starts both servers itself (`python -m speechrnn serve --host 127.0.0.1 --port 0`, the shipped AN4 bundle unless
--bundle), posts one AN4 utterance --requests times at each --concurrency to each (in alternating rounds of
--round requests, so that other jobs on the machine weigh on both alike), and prints throughput
(requests/s), p50 and p99 latency, the answers that were not 200, and each server's RSS before and after two
consecutive runs at the highest concurrency (memory flat), then the batched / one-at-a-time throughput ratio.
Loopback only; bounded: --requests per run, and it stops by itself after --time-limit seconds (what is measured
by then is reported, marked partial).

    python benchmarks/load_serve.py                          # 300 requests at concurrency 1 and 8, threads 2
    python benchmarks/load_serve.py --requests 50 --concurrency 8
"""

import argparse
import http.client
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "an4" / "wav" / "an4test_clstk" / "fjlp" / "an417-fjlp-b.wav"  # 2.5 s: the median


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    def __init__(self, name: str, options: list[str], bundle: str | None, threads: int):
        self.name = name
        cmd = [sys.executable, "-m", "speechrnn", "serve", "--host", "127.0.0.1", "--port", "0",
               "--threads", str(threads), *options, *([bundle] if bundle else [])]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
        self.log = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line, deadline = "", time.monotonic() + 120
        while "serving on" not in line:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(deadline - time.monotonic(), 0))
            line = self.proc.stdout.readline() if ready else ""
            if not ready or (not line and self.proc.poll() is not None):
                self.stop()
                sys.exit(f"error: {name} server did not start ({' '.join(cmd)})")
        self.host, self.port = re.search(r"http://([\d.]+):(\d+)/", line).groups()

    def post(self, body: bytes) -> tuple[int, float]:
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(self.host, int(self.port), timeout=60)
            conn.request("POST", "/api/transcribe", body, {"Content-Type": "audio/wav"})
            response = conn.getresponse()
            response.read()
            status = response.status
            conn.close()
        except OSError:
            status = 0
        return status, time.perf_counter() - start

    def stop(self) -> str:
        """Stop the server as Ctrl-C does; its batch counts line ("" when it has none)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.seek(0)
        return next((line.strip() for line in self.log if "batches" in line), "")


def burst(server: Server, body: bytes, requests: int, concurrency: int, deadline: float) -> tuple[list, float]:
    """`requests` posts, `concurrency` at a time (none started after `deadline`): [(status, seconds)], wall time."""
    def one(_):
        return server.post(body) if time.monotonic() < deadline else None

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for r in pool.map(one, range(requests)) if r is not None]
    return results, time.perf_counter() - start


def run(server: Server, body: bytes, requests: int, concurrency: int, deadline: float) -> dict:
    return summary(*burst(server, body, requests, concurrency, deadline), requests)


def side_by_side(servers: list[Server], body: bytes, requests: int, concurrency: int, deadline: float,
                 round_size: int) -> list[dict]:
    """`requests` posts to each server, in alternating rounds of `round_size` (the order turned every round), so
    that a load that comes and goes on the machine hits all servers alike."""
    results, walls = [[] for _ in servers], [0.0] * len(servers)
    for k in range(0, requests, round_size):
        turn = (k // round_size) % len(servers)
        for i in list(range(turn, len(servers))) + list(range(turn)):
            done, wall = burst(servers[i], body, min(round_size, requests - k), concurrency, deadline)
            results[i] += done
            walls[i] += wall
    return [summary(r, wall, requests) for r, wall in zip(results, walls)]


def summary(results: list, wall: float, requests: int) -> dict:
    latencies = sorted(seconds for _, seconds in results)
    pick = (lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]) if latencies else (lambda q: 0.0)
    return {"done": len(results), "rps": len(results) / wall if wall > 0 else 0.0, "p50": pick(0.50),
            "p99": pick(0.99), "errors": sum(status != 200 for status, _ in results),
            "partial": len(results) < requests}


def line(name: str, concurrency: int, result: dict) -> str:
    return (f"{name:<15} c={concurrency:<3} {result['done']:>4} req  {result['rps']:6.2f} req/s  "
            f"p50 {result['p50']:5.2f} s  p99 {result['p99']:5.2f} s  non-200 {result['errors']}"
            + ("  (partial: time limit)" if result["partial"] else ""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="requests per run (default 300)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="default: 1 8")
    parser.add_argument("--clip", type=Path, default=CLIP, help=f"the audio posted (default {CLIP.name})")
    parser.add_argument("--bundle", help="speech bundle (default: the shipped AN4 model)")
    parser.add_argument("--batch", type=int, default=16, help="the batching server's --batch (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per server (default 2)")
    parser.add_argument("--round", type=int, default=50,
                        help="requests to one server before turning to the other (default 50)")
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds, all runs (default 900)")
    args = parser.parse_args(argv)
    if not args.clip.is_file():
        sys.exit(f"error: {args.clip}: not found; give an AN4 utterance with --clip")
    body = args.clip.read_bytes()
    deadline = time.monotonic() + args.time_limit
    print(f"{args.clip.name}, {args.requests} requests per run, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.2f} at start", flush=True)
    servers = [Server("one-at-a-time", ["--batch", "1"], args.bundle, args.threads),
               Server(f"batched ({args.batch})", ["--batch", str(args.batch)], args.bundle, args.threads)]
    rps = {}
    try:
        for server in servers:  # warm up: first requests load lazily initialised parts
            for _ in range(3):
                server.post(body)
        for concurrency in sorted(args.concurrency):
            results = side_by_side(servers, body, args.requests, concurrency, deadline, args.round)
            for server, result in zip(servers, results):
                rps[server.name, concurrency] = result["rps"]
                print(line(server.name, concurrency, result), flush=True)
        top = max(args.concurrency)
        for server in servers:  # memory: two more runs at the top concurrency
            before = rss_mb(server.proc.pid)
            results = [run(server, body, args.requests, top, deadline) for _ in range(2)]
            after = rss_mb(server.proc.pid)
            speeds = ", ".join(f"{r['rps']:.2f} req/s" for r in results)
            print(f"{server.name:<15} RSS {before:.0f} MB before, {after:.0f} MB after two runs at c={top} "
                  f"({speeds})", flush=True)
    finally:
        for server in servers:
            print(f"{server.name:<15} {server.stop()}")
    names = [server.name for server in servers]
    if all((name, top) in rps for name in names) and rps[names[0], top] > 0:
        print(f"batched / one-at-a-time at c={top}: {rps[names[1], top] / rps[names[0], top]:.2f}x; "
              f"load average {os.getloadavg()[0]:.2f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
