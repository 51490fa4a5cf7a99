"""What the next-word evaluation counts, for the model and the baseline alike: perplexity, top-1, top-3.

Lowest of the evaluation modules: `nlp_lstm.nextword.evaluate` (the model) and `nlp_lstm.nextword.kn_trigram`
(the baseline) both count with `NextWordMetrics`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nlp_lstm.text import OOV_ID

TOP_K = 3


@dataclass
class NextWordMetrics:
    """Adds up the evaluation of next-token predictions, batch by batch.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.metrics import NextWordMetrics
    >>> metrics = NextWordMetrics()
    >>> metrics.update(np.array([5, 1, 7]), np.log([0.5, 0.1, 0.25]), np.array([[5, 6, 8], [5, 6, 8], [6, 7, 8]]))
    >>> result = metrics.result()
    >>> round(result["perplexity"], 3), result["top1"], result["top3"], result["scored_top_k"]
    (4.309, 0.5, 1.0, 2)
    """

    tokens: int = 0
    nll_sum: float = 0.0
    scored_top_k: int = 0
    top1_hits: int = 0
    top3_hits: int = 0

    def update(self, targets: np.ndarray, target_log_probs: np.ndarray, top_ids: np.ndarray) -> None:
        """Targets (n,), their log-probabilities (n,), and the top-k predictions (n, k) best first."""
        targets = np.asarray(targets).reshape(-1)
        self.tokens += targets.size
        self.nll_sum -= float(np.sum(np.asarray(target_log_probs, np.float64)))
        known = targets != OOV_ID  # [UNK] targets are left out of top-k (never a suggestion)
        hits = np.asarray(top_ids)[known] == targets[known, None]  # (n known, k)
        self.scored_top_k += int(known.sum())
        self.top1_hits += int(hits[:, :1].any(axis=1).sum())
        self.top3_hits += int(hits[:, :TOP_K].any(axis=1).sum())

    def result(self) -> dict[str, Any]:
        """perplexity = exp(mean negative log-likelihood); top1, top3 = accuracy over non-[UNK] targets."""
        return {
            "perplexity": math.exp(self.nll_sum / self.tokens) if self.tokens else None,
            "top1": self.top1_hits / self.scored_top_k if self.scored_top_k else None,
            "top3": self.top3_hits / self.scored_top_k if self.scored_top_k else None,
            "tokens": self.tokens,
            "scored_top_k": self.scored_top_k,
        }
