"""`nlp-lstm evaluate sentiment` as a script.

Scores a trained sentiment model on the IMDB test split.

    python scripts/evaluate_sentiment.py --help
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", "sentiment", *sys.argv[1:]]))
