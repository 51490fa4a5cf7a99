"""Train the next-word model: the same as `nlp-lstm train nextword`.

    python scripts/train_nextword.py --data ../shared/data/aclImdb.tar.gz    # the default run (< 1 hour, 2 cores)
    python scripts/train_nextword.py --corpus my_text.txt --out saved_models/mine
    python scripts/train_nextword.py --data tests/tiny_aclImdb --dry-run     # a tiny model, one step (CI)

Rerun the same command after an interruption to resume it.
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "nextword", *sys.argv[1:]]))
