"""Load on `nlp-lstm serve`: requests/s and latency under concurrent clients, batched against unbatched.

Starts the server twice in the same run, as its own process on a free loopback port: with its default
batching, then with `--max-batch-size 1` (each request one model call: the reference). Against each,
this process runs `--clients` clients, each sending one request at a time for `--seconds`: first
single reviews of about `--words` words to the sentiment model, then short prefixes to the next-word
model. Prints requests/s, p50 and p99 latency and errors per phase.

    python scripts/bench_serve.py --sentiment saved_models/sentiment --nextword saved_models/nextword
    python scripts/bench_serve.py --sentiment DIR --nextword DIR --dry-run     # 2 clients, 1 s (CI)
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from nlp_lstm import machine


@dataclass
class Phase:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0

    def row(self, label: str) -> str:
        done = len(self.latencies_ms)
        if not done:
            return f"{label:<24}{'-':>12}{'-':>9}{'-':>9}{self.errors:>8}"
        ordered = sorted(self.latencies_ms)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        return (f"{label:<24}{done / self.seconds:>12.1f}{statistics.median(ordered):>9.1f}{p99:>9.1f}"
                f"{self.errors:>8}")  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, extra: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    command = [sys.executable, "-m", "nlp_lstm.cli", "serve", "--port", str(port), *extra]
    for app in ("sentiment", "nextword"):
        if getattr(args, app):
            command += [f"--{app}", getattr(args, app)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if "listening on" in line:
            return process, port
    raise SystemExit(f"bench_serve: the server did not start:\n{process.stderr.read()}")


def run_phase(port: int, path: str, bodies: list[bytes], clients: int, seconds: float) -> Phase:
    phase, lock = Phase(), threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        i = index
        while time.perf_counter() < deadline:
            body = bodies[i % len(bodies)]
            i += clients
            start = time.perf_counter()
            try:
                connection.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed_ms = (time.perf_counter() - start) * 1000
            with lock:
                if ok:
                    phase.latencies_ms.append(elapsed_ms)
                else:
                    phase.errors += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    phase.seconds = time.perf_counter() - start
    return phase


def vocabulary_of(folder: str) -> list[str]:
    path = Path(folder)
    for candidate in (path / "vocabulary.txt", *sorted(path.glob("*/assets.extra/vocabulary.txt"))):
        if candidate.is_file():
            words = candidate.read_text(encoding="utf-8").split("\n")
            return [w for w in words if w and not w.startswith("[")]
    return "the movie was good bad great film story acting plot and it not very".split()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sentiment", metavar="DIR", help="a sentiment model folder or export")
    parser.add_argument("--nextword", metavar="DIR", help="a next-word model folder or export")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase (default: %(default)s)")
    parser.add_argument("--words", type=int, default=200, help="words per review (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="2 clients for 1 s per phase (for CI)")
    args = parser.parse_args(argv)
    if not (args.sentiment or args.nextword):
        parser.error("give --sentiment DIR, --nextword DIR or both")
    clients, seconds = (2, 1.0) if args.dry_run else (args.clients, args.seconds)
    rng = random.Random(0)
    phases = []
    if args.sentiment:
        words = vocabulary_of(args.sentiment)
        reviews = [" ".join(rng.choice(words) for _ in range(args.words)) for _ in range(64)]
        bodies = [json.dumps({"instances": [review]}).encode() for review in reviews]
        phases.append(("sentiment", "/v1/models/sentiment:predict", bodies))
    if args.nextword:
        words = vocabulary_of(args.nextword)
        prefixes = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) for _ in range(64)]
        bodies = [json.dumps({"instances": [prefix]}).encode() for prefix in prefixes]
        phases.append(("nextword", "/v1/models/nextword:predict", bodies))
    print(f"bench_serve: {machine.cpu_line()}; {clients} clients x {seconds:g} s per phase; "
          f"reviews of {args.words} words; one instance per request")  # fmt: skip
    print(f"{'phase':<24}{'requests/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for label, extra in (("batched (default)", []), ("unbatched (reference)", ["--max-batch-size", "1"])):
        process, port = start_server(args, extra)
        try:
            for name, path, bodies in phases:
                run_phase(port, path, bodies[:4], 1, 0.5 if args.dry_run else 3.0)  # warm-up: traces, caches
                print(Phase.row(run_phase(port, path, bodies, clients, seconds), f"{name} {label}"), flush=True)
        finally:
            process.terminate()
            process.wait(timeout=60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
