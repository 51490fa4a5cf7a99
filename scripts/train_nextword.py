"""Train the next-word model: the same as `nlp-lstm train nextword`.

    python scripts/train_nextword.py --data ../shared/data/aclImdb.tar.gz    # the default run (< 1 hour, 2 cores)
    python scripts/train_nextword.py --corpus my_text.txt --out saved_models/mine
    python scripts/train_nextword.py --data tests/tiny_aclImdb --dry-run     # a tiny model, one step (CI)

Rerun the same command after an interruption to resume it.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nlp_lstm.nextword import add_train_arguments, run_train, script_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main(__doc__.splitlines()[0], add_train_arguments, run_train))
