"""The interactive next-word prompt: the same as `nlp-lstm prompt`.

python scripts/prompt.py                                   # saved_models/nextword, live suggestions
echo "the movie was" | python scripts/prompt.py --more 10 --rule "topp 0.9" --seed 1
python scripts/prompt.py --dry-run                         # a tiny untrained model, one prompt (CI)
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from nlp_lstm.nextword import script_main  # noqa: E402
from nlp_lstm.prompt import add_prompt_arguments, run_prompt  # noqa: E402

if __name__ == "__main__":
    sys.exit(script_main(__doc__.splitlines()[0], add_prompt_arguments, run_prompt))
