"""Batching concurrent requests into one model call, as TF Serving's batcher does.

Many small requests at once are a server's normal load, and a model call costs about as much for 16
short texts as for one. A `Batcher` per signature takes each request's inputs, waits up to
`timeout_s` after the first for others (or until `max_batch_size` instances are waiting), runs the
signature once on them all, in a worker thread so the event loop keeps answering, and hands each
request its own rows back. One batch runs at a time; the next one fills while it runs.

`max_batch_size=1` turns batching off: each request is one call (the reference `scripts/bench_serve.py`
measures against).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

Inputs = Mapping[str, np.ndarray]
Outputs = dict[str, np.ndarray]


@dataclass
class _Pending:
    inputs: Inputs
    size: int
    future: asyncio.Future = field(repr=False)


class Batcher:
    """Runs `call` on the rows of concurrent `submit`s, concatenated along the first axis.

    Example:

    >>> import asyncio, numpy as np
    >>> from concurrent.futures import ThreadPoolExecutor
    >>> from nlp_lstm.serve.batching import Batcher
    >>> calls = []
    >>> def double(inputs):
    ...     calls.append(len(inputs["x"]))
    ...     return {"y": inputs["x"] * 2}
    >>> async def main():
    ...     batcher = Batcher(double, ThreadPoolExecutor(1), max_batch_size=8, timeout_s=0.05)
    ...     answers = await asyncio.gather(*(batcher.submit({"x": np.array([i])}) for i in range(3)))
    ...     return [answer["y"].tolist() for answer in answers]
    >>> asyncio.run(main()), calls
    ([[0], [2], [4]], [3])
    """

    def __init__(self, call: Callable[[Inputs], Outputs], executor: Executor, max_batch_size: int, timeout_s: float):
        if max_batch_size < 1 or timeout_s < 0:
            raise ValueError(f"max_batch_size must be >= 1 and timeout_s >= 0, got {max_batch_size}, {timeout_s}")
        self.call, self.executor = call, executor
        self.max_batch_size, self.timeout_s = max_batch_size, timeout_s
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self.batches = 0  # model calls made, for tests and the benchmark

    async def submit(self, inputs: Inputs) -> Outputs:
        """The outputs of `call` for these rows (batch first), computed with other requests' rows."""
        size = len(next(iter(inputs.values())))
        if self.max_batch_size == 1 or size >= self.max_batch_size:
            self.batches += 1  # alone: no waiting, no copying
            return await asyncio.get_running_loop().run_in_executor(self.executor, self.call, inputs)
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(inputs, size, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._queue is not None
        while True:
            batch = [await self._queue.get()]
            total = batch[0].size
            deadline = loop.time() + self.timeout_s
            while total < self.max_batch_size:
                remaining = deadline - loop.time()
                try:
                    pending = self._queue.get_nowait() if remaining <= 0 else await asyncio.wait_for(
                        self._queue.get(), remaining
                    )  # fmt: skip
                except (asyncio.QueueEmpty, TimeoutError):
                    break
                if total + pending.size > self.max_batch_size:
                    await self._run_batch(loop, batch)  # this one starts the next batch
                    batch, total, deadline = [pending], pending.size, loop.time() + self.timeout_s
                    continue
                batch.append(pending)
                total += pending.size
            await self._run_batch(loop, batch)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        keys = list(batch[0].inputs)
        joined = {key: np.concatenate([pending.inputs[key] for pending in batch]) for key in keys}
        self.batches += 1
        try:
            outputs = await loop.run_in_executor(self.executor, self.call, joined)
        except Exception as error:  # every request of the batch gets the error
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        start = 0
        for pending in batch:
            rows = {key: value[start : start + pending.size] for key, value in outputs.items()}
            start += pending.size
            if not pending.future.done():  # a client that left has its future cancelled
                pending.future.set_result(rows)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
