"""`nlp-lstm predict` as a script. Labels texts (arguments, or lines of stdin) as neg or pos.

python scripts/predict.py --help
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["predict", *sys.argv[1:]]))
