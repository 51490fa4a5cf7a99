"""The server's limits and batching, in plain Python (no TensorFlow), so the command line checks them cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    """Limits and batching of a server (the `nlp-lstm serve` flags)."""

    max_body_bytes: int = 4 << 20
    max_instances: int = 1_000
    max_batch_size: int = 64
    batch_timeout_ms: float = 2.0

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_instances", "max_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not 0 <= self.batch_timeout_ms < 10_000:
            raise ValueError(f"batch_timeout_ms must be in [0, 10000), got {self.batch_timeout_ms!r}")
