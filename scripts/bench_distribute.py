"""Steps per second of `nlp-lstm train sentiment` on 1 replica, 2 mirrored replicas, and a 2-worker cluster.

    python scripts/bench_distribute.py --data ../shared/data/aclImdb.tar.gz --limit 3000
    python scripts/bench_distribute.py --data tests-made-tiny-aclImdb --dry-run    # one step each, for CI

Each configuration runs the train command in its own process, one after the other (the cluster's two
workers together, on 127.0.0.1), on the same reviews with the same seed and global batch; the
reference is the one-device run of the same invocation. Steps/s is the last epoch's batches over its
time (the first epoch also traces). Expect no speed-up on a 2-core CPU: two replicas share the same
cores, and each step adds an all-reduce of the gradients.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nlp_lstm.distribute import free_ports


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", metavar="PATH", required=True, help="an aclImdb folder or .tar.gz")
    parser.add_argument("--limit", type=int, default=3000, help="reviews per split (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default: %(default)s)")
    parser.add_argument("--out", metavar="DIR", default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--dry-run", action="store_true", help="one step per run, on a handful of reviews")
    return parser.parse_args(argv)  # fmt: skip


def _command(args: argparse.Namespace, out: Path, *flags: str) -> list[str]:
    size = ["--dry-run"] if args.dry_run else ["--limit", str(args.limit), "--epochs", str(args.epochs)]
    return [sys.executable, "-m", "nlp_lstm.cli", "train", "sentiment", "--data", args.data, "--out", str(out),
            "--overwrite", "--patience", "100", *size, *flags]  # fmt: skip


def _steps_per_s(out: Path, output: str) -> float:
    """Batches of the last epoch (from Keras's `N/N` progress line) over its time (history.csv)."""
    with open(out / "history.csv", newline="") as file:
        seconds = float(list(csv.DictReader(file))[-1]["epoch_time_s"])
    steps = [int(a) for a, b in re.findall(r"^\s*(\d+)/(\d+) ", output, re.MULTILINE) if a == b]
    return steps[-1] / seconds if steps and seconds else float("nan")


def run(args: argparse.Namespace, name: str, out: Path, flags: list[str], workers: int = 1) -> tuple[float, float]:
    """(steps/s, wall s) of one configuration; a cluster's workers run at once."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    print(f"{name}: training ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    if workers == 1:
        processes = [subprocess.Popen(_command(args, out, *flags), env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)]  # fmt: skip
    else:
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
        processes = [
            subprocess.Popen(
                _command(args, out, *flags),
                env={**env, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})},
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
            for i in range(workers)
        ]  # fmt: skip
    outputs = [process.communicate()[0] for process in processes]
    wall = time.perf_counter() - started
    for process, output in zip(processes, outputs):
        if process.returncode != 0:
            raise SystemExit(f"{name} failed (status {process.returncode}):\n{output[-3000:]}")
    return _steps_per_s(out, outputs[0]), wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-distribute-"))
    configurations = [
        ("default (1 replica)", [], 1),
        ("mirrored, CPU:0,CPU:1 (2 replicas)", ["--strategy", "mirrored", "--devices", "CPU:0,CPU:1"], 1),
        ("multiworker, 2 workers on 127.0.0.1 (2 replicas)", ["--strategy", "multiworker"], 2),
    ]
    rows = []
    for index, (name, flags, workers) in enumerate(configurations):
        steps_per_s, wall = run(args, name, root / f"run{index}", flags, workers)
        rows.append((name, steps_per_s, wall))
    reference = rows[0][1]
    print(f"{'configuration':<52} {'steps/s':>8} {'vs 1 replica':>12} {'wall s':>7}")
    for name, steps_per_s, wall in rows:
        print(f"{name:<52} {steps_per_s:>8.2f} {steps_per_s / reference:>11.2f}x {wall:>7.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
