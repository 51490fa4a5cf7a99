"""`nlp-lstm export` as a script.

Exports a trained model folder as a TensorFlow SavedModel (EXPORT_DIR/<version>/).

    python scripts/export.py --help
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
