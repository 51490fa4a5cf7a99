"""Killing a training run mid-way, for the resume tests."""

import json
import signal
import subprocess
import time
from pathlib import Path


def kill_once_backed_up(process: subprocess.Popen, metadata: Path, epoch: int, timeout_s: float) -> None:
    """Sends SIGKILL to `process` once BackupAndRestore's `metadata` reaches `epoch` (mid-epoch: backups
    come every few steps). Fails if the process ends by itself first."""
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if json.loads(metadata.read_text())["epoch"] >= epoch:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        assert process.poll() is None, "the first run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
