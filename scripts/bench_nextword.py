"""Quality of the next-word model against an interpolated Kneser-Ney trigram, same data, same run.

Both are scored on the held-out test texts (default: the first 2,000 test reviews of the seeded
order): perplexity over every target, top-1 and top-3 accuracy over the non-[UNK] targets, the
candidates being the words the prompt may suggest. The trigram (nlp_lstm/kn_trigram.py) is trained on
the model's own training texts with the model's vocabulary. The same as `nlp-lstm evaluate nextword`;
writes MODEL/evaluation.json.

    python scripts/bench_nextword.py --model saved_models/nextword --data ../shared/data/aclImdb.tar.gz
    python scripts/bench_nextword.py --data tests/tiny_aclImdb --dry-run   # tiny model, 4 texts (CI)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nlp_lstm.nextword import script_main  # noqa: E402
from nlp_lstm.nextword_eval import add_evaluate_arguments, run_evaluate  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main(__doc__.splitlines()[0], add_evaluate_arguments, run_evaluate))
