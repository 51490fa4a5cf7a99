"""The next-word app's configs, in plain Python (no TensorFlow), so the command line checks them cheaply.

    NextWordConfig       the model, its vocabulary and its training schedule; every value checked
    NextWordModelConfig  the model's shape (`nlp_lstm.nextword.model`)
    dry_run_config       a tiny model and a few batches, for --dry-run
    check_corpus_files   --corpus files that are not text, or too small to validate or train on, refused
    max_train_minutes    the time limit a train command runs under

The command line (`nlp_lstm.cli.nextword`) builds the configs and reads the --corpus files with these,
so a bad value or an unusable corpus is refused in a second, with exit status 2, before TensorFlow loads.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from typing import Any

from nlp_lstm.checks import check_count, check_positive, check_precision, check_rate, check_seed
from nlp_lstm.data_config import CorpusConfig, DataError, corpus_split, read_text_files, split_paragraphs

APP = "nextword"  # config.json's "app"
DEFAULT_MODEL_DIR = "saved_models/nextword"
EVALUATION_FILE = "evaluation.json"  # what `evaluate nextword` writes into the model folder
DEFAULT_TEST_TEXTS = 2_000  # test texts `evaluate nextword` scores
# `nlp-lstm train nextword` on one machine stops after the epoch when another would pass this many minutes
# of training: the default budget took 52 min here (epochs of 9.6 to 11.2 min, as the shared machine's
# speed varies), and the command must stay within the hour with reading and saving.
DEFAULT_MAX_TRAIN_MINUTES = 55.0


@dataclass(frozen=True)
class NextWordModelConfig:
    """The shape of the next-word model.

    Args:
        vocab_size: Rows of the embedding and of the projection (the vocabulary, '' and '[UNK]' included).
        embedding_dim: Size of a word's embedding.
        units: Size of each LSTM layer's states.
        num_layers: LSTM layers, 1 or 2.
        dropout: Dropout on the embeddings and between layers while training, in [0, 1).
        tie_embeddings: Use the embedding matrix as the projection's weights (Press & Wolf 2017);
            needs `embedding_dim == units`. Fewer weights to learn from a small corpus.
        num_sampled: Candidate words per batch of the sampled-softmax training loss; 0 trains on the
            full softmax.
        seed: Seed of the dropout masks and of the candidate draws.
        carry_batch: 0, or the training batch size: training then starts each batch from the states
            the batch before ended with (row by row, kept in the `carried_states` weight), for batches
            whose rows continue each other (`text.make_language_model_streams`). Inference and
            validation always start from the states they are given, zeros by default.
        precision: "float32", or "mixed_bfloat16": the embedding lookups, dropout and LSTMs compute in
            bfloat16; the projection to the vocabulary and the loss in float32.

    Example:

    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> NextWordModelConfig(vocab_size=50, embedding_dim=8, units=8).state_width
    2
    """

    vocab_size: int
    embedding_dim: int = 256
    units: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    tie_embeddings: bool = True
    num_sampled: int = 1024
    seed: int = 1337
    carry_batch: int = 0
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_dim", "units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be >= 3 ('', '[UNK]' and a word), got {self.vocab_size}")
        if self.num_layers not in (1, 2):
            raise ValueError(f"num_layers must be 1 or 2, got {self.num_layers!r}")
        check_rate("dropout", self.dropout)
        if self.tie_embeddings and self.embedding_dim != self.units:
            raise ValueError(f"tie_embeddings needs embedding_dim == units, got {self.embedding_dim} and {self.units}")
        check_count("num_sampled", self.num_sampled, least=0)
        check_seed("seed", self.seed)
        if isinstance(self.carry_batch, bool) or not isinstance(self.carry_batch, int) or self.carry_batch < 0:
            raise ValueError(f"carry_batch must be an integer >= 0, got {self.carry_batch!r}")
        check_precision(self.precision)

    @property
    def state_width(self) -> int:
        """How many (batch, units) state tensors the model carries: h and c per layer."""
        return 2 * self.num_layers

    @property
    def uses_sampled_softmax(self) -> bool:
        """Whether training uses the sampled loss (fewer candidates than the vocabulary)."""
        return 0 < self.num_sampled < self.vocab_size - 1


@dataclass(frozen=True)
class NextWordConfig:
    """The next-word model, its vocabulary and its training schedule.

    Args:
        max_tokens: Vocabulary size, counting '' (padding), '[UNK]' and '[BOS]' (the review boundary).
        embedding_dim, units, num_layers, dropout, tie_embeddings, num_sampled: The model
            (`NextWordModelConfig`).
        window: Tokens per training sequence (truncated backpropagation through time).
        batch_size: Sequences per batch.
        train_tokens: Tokens to train on in all (the time budget); the corpus is sampled, shuffled.
        epochs: Training is cut into this many epochs of train_tokens / epochs tokens each.
        learning_rate: Adam's peak learning rate; it decays along a cosine to a tenth of it.
        clipnorm: Adam clips each gradient to this norm.
        patience: Epochs without a better validation loss before stopping early; None never stops.
        seed: Seeds the weights, the candidate draws and the order of windows, in [0, 2**32).
        backup_every: Back up the training state every this many steps (resume after a kill).
        carry_states: Train on rows that continue each other from batch to batch, each batch starting
            from the states the batch before ended with (`text.make_language_model_streams`), as
            evaluation and the prompt read a whole review; False: shuffled windows from zero states.
            Each epoch reads the start of a new, reshuffled pass, its first batch from the states the
            epoch before ended with (as at a pass's end: once in thousands of steps). One device only.
            A config.json without it was trained without.
        precision: "float32" or "mixed_bfloat16" (`NextWordModelConfig`).

    Example:

    >>> from nlp_lstm.nextword.config import NextWordConfig
    >>> config = NextWordConfig()
    >>> config.steps_per_epoch, config.model_config(20_000).num_sampled
    (1953, 1024)
    """

    max_tokens: int = 20_000
    embedding_dim: int = 256
    units: int = 256
    num_layers: int = 1
    dropout: float = 0.0
    tie_embeddings: bool = True
    num_sampled: int = 1024
    window: int = 32
    batch_size: int = 64
    train_tokens: int = 20_000_000
    epochs: int = 5
    learning_rate: float = 5e-3
    clipnorm: float = 5.0
    patience: int | None = 2
    seed: int = 1337
    backup_every: int = 500
    carry_states: bool = False
    precision: str = "float32"

    def __post_init__(self) -> None:
        for name in ("max_tokens", "window", "batch_size", "train_tokens", "epochs", "backup_every"):
            check_count(name, getattr(self, name))
        if self.max_tokens < 4:
            raise ValueError(f"max_tokens must leave room for '', '[UNK]', '[BOS]' and a word, got {self.max_tokens}")
        check_positive("learning_rate", self.learning_rate)
        check_positive("clipnorm", self.clipnorm)
        check_count("patience", self.patience, least=0, none_ok=True)
        if self.train_tokens < self.epochs * self.batch_size * self.window:
            raise ValueError(
                f"train_tokens ({self.train_tokens}) must cover at least one batch "
                f"({self.batch_size} x {self.window} tokens) per epoch ({self.epochs})"
            )
        self.model_config(self.max_tokens)  # validates the model's own fields, the seed among them

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch: train_tokens / (epochs * batch_size * window)."""
        return self.train_tokens // (self.epochs * self.batch_size * self.window)

    def model_config(self, vocab_size: int) -> NextWordModelConfig:
        """The model's config for a vocabulary of `vocab_size` tokens (a small corpus may give fewer)."""
        return NextWordModelConfig(
            vocab_size=vocab_size, embedding_dim=self.embedding_dim, units=self.units,
            num_layers=self.num_layers, dropout=self.dropout, tie_embeddings=self.tie_embeddings,
            num_sampled=self.num_sampled, seed=self.seed, carry_batch=self.batch_size if self.carry_states else 0,
            precision=self.precision,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> NextWordConfig:
        """The config from config.json's "nextword" dict (unknown keys are an error)."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown NextWordConfig fields {sorted(unknown)}")
        return cls(**{"carry_states": False, **values})


def dry_run_config(config: NextWordConfig = NextWordConfig()) -> NextWordConfig:
    """A tiny model and a few batches, for --dry-run: the same code path in seconds.

    Example:

    >>> from nlp_lstm.nextword.config import dry_run_config
    >>> config = dry_run_config()
    >>> config.units, config.steps_per_epoch
    (8, 1)
    """
    return replace(
        config, max_tokens=200, embedding_dim=8, units=8, num_sampled=16, window=8, batch_size=4,
        train_tokens=32, epochs=1, backup_every=1,
    )  # fmt: skip


# How standardize (nlp_lstm.text) cuts words, in plain Python: tags and entities go, then anything but
# letters, marks, digits and inner apostrophes. Close enough to count windows before TensorFlow loads.
_MARKUP = re.compile(r"</?[a-z][^<>]*>|&[a-z]+;|&#[0-9]+;")
_WORD = re.compile(r"(?:[^\W_]|[\u0300-\u036f])+(?:'+(?:[^\W_]|[\u0300-\u036f])+)*")
_TEXT_SAMPLE = 1_000_000  # characters of each file that the text check reads
MIN_TEXT_SHARE = 0.5  # of a text file's characters that are letters or white space


def _tokens(paragraph: str) -> int:
    """Tokens the model reads for one paragraph: a boundary token, then its words."""
    lowered = _MARKUP.sub(" ", paragraph.lower()).replace("\u2019", "'").replace("\u02bc", "'")
    return 1 + len(_WORD.findall(lowered))


def _tokens_up_to(paragraphs: list[str], wanted: int) -> int:
    """The tokens of `paragraphs`, counted until `wanted` is reached (a big corpus is not read to the end)."""
    total = 0
    for paragraph in paragraphs:
        total += _tokens(paragraph)
        if total >= wanted:
            break
    return total


def not_text_reason(text: str) -> str | None:
    """Why `text` (a decoded file) is not text the next-word app can learn from, or None if it is.

    Text has no NUL character, and at least half of its characters (of its first million) are letters
    or white space; bytes that are not UTF-8 were replaced by U+FFFD, which is neither.

    Example:

    >>> from nlp_lstm.nextword.config import not_text_reason
    >>> not_text_reason("A film.\\n\\nAnother one."), not_text_reason("ok\\x00")
    (None, 'it holds NUL characters (a binary file?)')
    """
    if "\x00" in text:
        return "it holds NUL characters (a binary file?)"
    sample = text[:_TEXT_SAMPLE]
    wordy = sum(1 for character in sample if character.isalpha() or character.isspace())
    if sample and wordy < MIN_TEXT_SHARE * len(sample):
        return (f"only {wordy / len(sample):.0%} of its characters are letters or spaces (text has at least "
                f"{MIN_TEXT_SHARE:.0%}; bytes that are not UTF-8 count as neither)")  # fmt: skip
    return None


def check_corpus_files(corpus: CorpusConfig, config: NextWordConfig) -> None:
    """Refuses --corpus files that are not text, or too small to fill a validation window and a training batch.

    Reads the files in plain Python, as `nlp_lstm.nextword.corpus.load_corpus` will (same paragraphs, same seeded
    split), and counts tokens as the model will read them. An IMDB corpus (no files) is not checked.

    Raises:
        DataError: The message says what is missing and which flags would help.
    """
    if not corpus.files:
        return
    texts, _ = read_text_files(corpus.files)
    for path, text in zip(corpus.files, texts, strict=True):
        reason = not_text_reason(text)
        if reason:
            raise DataError(f"corpus file {path} is not text: {reason}; --corpus takes UTF-8 text files")
    documents = [p for text in texts for p in split_paragraphs(text)]
    parts = corpus_split(len(documents), corpus)
    window = config.window + 1  # a window's inputs and the word after the last one
    val_tokens = _tokens_up_to([documents[i] for i in parts["val"]], window)
    if val_tokens < window:
        raise DataError(
            f"the corpus is too small for a validation split: its {len(parts['val'])} validation paragraph(s) "
            f"(--val-fraction {corpus.val_fraction:g} of {len(documents)} paragraphs) hold {val_tokens} tokens, and "
            f"validation needs at least {window} (one window: --window {config.window}, plus the next word); pass "
            f"more text, a larger --val-fraction or a smaller --window"
        )
    # Training batches are full: `batch_size` windows of window + 1 tokens, or with --carry-states
    # `batch_size` rows of `window` tokens and the next word (text.make_language_model_streams).
    if config.carry_states:
        batch, how = config.batch_size * config.window + 1, f"{config.batch_size} x {config.window} + 1"
    else:
        batch, how = config.batch_size * window, f"{config.batch_size} x ({config.window} + 1)"
    train_tokens = _tokens_up_to([documents[i] for i in parts["train"]], batch)
    if train_tokens < batch:
        raise DataError(
            f"the corpus is too small to train on: its {len(parts['train'])} training paragraph(s) hold "
            f"{train_tokens} tokens, and one batch needs {batch} (--batch-size x --window: {how}); pass more "
            f"text, or a smaller --batch-size or --window"
        )


def max_train_minutes(requested: float | None, workers: int) -> float | None:
    """The time limit a train command runs under: the one asked for, else the default on one machine.

    Example:

    >>> from nlp_lstm.nextword.config import max_train_minutes
    >>> [max_train_minutes(asked, workers) for asked, workers in [(None, 1), (None, 2), (30.0, 1), (math.inf, 1)]]
    [55.0, None, 30.0, None]
    """
    if requested is None:
        return None if workers > 1 else DEFAULT_MAX_TRAIN_MINUTES
    return None if math.isinf(requested) else requested
