"""Quality of the next-word model against an interpolated Kneser-Ney trigram, same data, same run.

Both are scored on the held-out test texts (default: the first 2,000 test reviews of the seeded
order): perplexity over every target, top-1 and top-3 accuracy over the non-[UNK] targets, the
candidates being the words the prompt may suggest. The trigram (nlp_lstm/nextword/kn_trigram.py) is trained on
the model's own training texts with the model's vocabulary. The same as `nlp-lstm evaluate nextword`;
writes MODEL/evaluation.json.

    python scripts/bench_nextword.py --model saved_models/nextword --data ../shared/data/aclImdb.tar.gz
    python scripts/bench_nextword.py --data tests/tiny_aclImdb --dry-run   # tiny model, 4 texts (CI)
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", "nextword", *sys.argv[1:]]))
