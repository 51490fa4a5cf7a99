"""The page's next-word state: one `TypedContext` per open page, bounded and expiring.

A page sends its whole text on each keystroke; its context feeds only the words new since the last
one (one LSTM step each) and rewinds over edited ones, as the terminal prompt does. At most
`max_sessions` contexts are kept, the least recently used dropped first, and one idle for `ttl_s`
seconds is dropped; a dropped page simply starts again from its text.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class Sessions:
    """Contexts by session id, least recently used first.

    Example:

    >>> from nlp_lstm.serve.sessions import Sessions
    >>> sessions = Sessions(make=list, max_sessions=2, ttl_s=60)
    >>> a, b = sessions.get("a"), sessions.get("b")
    >>> sessions.get("a") is a, len(sessions)
    (True, 2)
    >>> _ = sessions.get("c")  # "b" is the least recently used: dropped
    >>> sorted(sessions.ids())
    ['a', 'c']
    """

    def __init__(self, make: Callable[[], Any], max_sessions: int = 256, ttl_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic):  # fmt: skip
        self.make, self.max_sessions, self.ttl_s, self.clock = make, max_sessions, ttl_s, clock
        self._contexts: OrderedDict[str, tuple[float, Any]] = OrderedDict()

    def get(self, session: str) -> Any:
        now = self.clock()
        while self._contexts:  # expire the idle ones, oldest first
            oldest, (seen, _) = next(iter(self._contexts.items()))
            if now - seen <= self.ttl_s:
                break
            del self._contexts[oldest]
        context = self._contexts.pop(session, (now, None))[1]
        if context is None:
            context = self.make()
        self._contexts[session] = (now, context)
        while len(self._contexts) > self.max_sessions:
            self._contexts.popitem(last=False)
        return context

    def ids(self) -> list[str]:
        return list(self._contexts)

    def __len__(self) -> int:
        return len(self._contexts)
