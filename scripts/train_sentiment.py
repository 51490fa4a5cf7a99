"""`nlp-lstm train sentiment` as a script.

Trains the IMDB sentiment classifier (see --help); rerun the same command to resume after an interruption.

    python scripts/train_sentiment.py --help
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "sentiment", *sys.argv[1:]]))
