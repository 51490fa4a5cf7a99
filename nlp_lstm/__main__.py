"""`python -m nlp_lstm`: the same as `nlp-lstm`."""

import sys

from nlp_lstm.cli import main

sys.exit(main())
