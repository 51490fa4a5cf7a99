"""A loaded next-word model folder, for code: the words it suggests next, and continuations.

The same machinery as `nlp-lstm prompt` (`nlp_lstm.nextword.prompt.TypedContext`), so the API and the
terminal agree: `suggest` completes the word being typed, `generate` continues the text by whole words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from nlp_lstm.checks import check_count, check_seed
from nlp_lstm.nextword.config import DEFAULT_MODEL_DIR
from nlp_lstm.nextword.generate import Decoder, WordTokenizer
from nlp_lstm.nextword.model import NextWordFolder, load_nextword_folder
from nlp_lstm.nextword.prompt import MAX_MORE_WORDS, TypedContext, parse_rule


@dataclass
class NextWordPredictor:
    """A next-word model folder, loaded: `.suggest(text, k)` and `.generate(text, n, rule, seed)`.

    Example (``model_dir``: a folder a tiny training wrote):

    >>> import nlp_lstm
    >>> model = nlp_lstm.nextword.load(model_dir)
    >>> suggestions = model.suggest("the movie was ", k=3)  # the word after "was"
    >>> len(suggestions), all(0 < p <= 1 for _, p in suggestions)
    (3, True)
    >>> words = model.generate("the movie was", 5, rule="topp 0.9", seed=1).split()
    >>> len(words), words == model.generate("the movie was", 5, rule="topp 0.9", seed=1).split()
    (5, True)
    """

    folder: NextWordFolder
    _context: TypedContext = field(init=False, repr=False)

    def __post_init__(self) -> None:
        vocabulary = self.folder.vocabulary
        self._context = TypedContext(Decoder(self.folder.model, vocabulary), WordTokenizer(vocabulary))

    def _read(self, text: str) -> str:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        # The context rewinds to the first word that differs from the last text it read, so texts
        # that share a start (as a user's successive calls do) cost only their new words.
        return self._context.update(text)

    def suggest(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The k likeliest next words after `text`, with their probabilities, likeliest first.

        As in the prompt: if `text` ends inside a word ("the movie was gr"), the suggestions complete
        that word; after a space they are the next word. '', [UNK] and [BOS] are never suggested.
        """
        check_count("k", k)
        self._read(text)
        return [(word, float(probability)) for word, probability in self._context.suggestions(k)]

    def generate(self, text: str, n: int, rule: str = "greedy", seed: int | None = None) -> str:
        """`text` continued by `n` words (the new words only, space-separated).

        Args:
            text: The start; all of it is read, its last word as a whole word.
            n: Words to add, 0 to 1,000.
            rule: As on the command line: "greedy", "topk K", "topp P", "temp T" or "beam B".
            seed: Seeds the sampling rules (the same seed, the same words); None draws afresh.

        Raises:
            ValueError: A bad `n`, `rule` or `seed`.
        """
        check_count("n", n, least=0)
        if n > MAX_MORE_WORDS:
            raise ValueError(f"n must be at most {MAX_MORE_WORDS}, got {n}")
        if seed is not None:
            check_seed("seed", seed)
        if not isinstance(rule, str):
            raise TypeError(f"rule must be a str such as 'topp 0.9', got {type(rule).__name__}")
        next_token_rule = parse_rule(rule.split())
        self._read(text + " ")
        return " ".join(self._context.continue_text(n, next_token_rule, seed).words)


def load(path: str | os.PathLike = DEFAULT_MODEL_DIR) -> NextWordPredictor:
    """Loads a next-word model folder (what `nlp-lstm train nextword` wrote).

    Raises:
        ModelFolderError: `path` is not a usable next-word model folder.
    """
    return NextWordPredictor(load_nextword_folder(path))
