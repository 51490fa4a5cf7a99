"""The interactive next-word prompt: the same as `nlp-lstm prompt`.

python scripts/prompt.py                                   # saved_models/nextword, live suggestions
echo "the movie was" | python scripts/prompt.py --more 10 --rule "topp 0.9" --seed 1
python scripts/prompt.py --dry-run                         # a tiny untrained model, one prompt (CI)
"""

import sys

from nlp_lstm.cli import main

if __name__ == "__main__":
    sys.exit(main(["prompt", *sys.argv[1:]]))
