"""The sentiment app's config, in plain Python (no TensorFlow), so the command line can check it cheaply.

    SentimentConfig   the model, its regularisation and its training schedule; every value checked
    FINETUNE_DEFAULTS what changes when the classifier starts from a next-word model (--encoder)
    with_encoder      a config fine-tuned from a next-word folder: its sizes, read from its config.json
    dry_run_config    a tiny model of one short epoch, for --dry-run

`nlp_lstm.sentiment` re-exports both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

from nlp_lstm.checks import check_count, check_positive, check_rate, check_seed
from nlp_lstm.run_folder import ModelFolderError, read_model_config

APP = "sentiment"  # config.json's "app"
DEFAULT_MODEL_DIR = "saved_models/sentiment"

LEARNING_RATE_DECAYS = ("cosine", "none")


@dataclass(frozen=True)
class SentimentConfig:
    """Size, regularisation and schedule of the sentiment model.

    Args:
        max_tokens: Vocabulary size, counting '' (padding) and '[UNK]'.
        max_length: Tokens kept from the start of each review (the rest is cut).
        embedding_dim: Size of the word vectors.
        units: LSTM units per direction.
        ngram_buckets: Hash buckets for the word pairs of the n-gram member, NBSVM's logistic regression
            on the words and word pairs of a review, averaged with the BiLSTMs (`nlp_lstm.sentiment.ngrams`); 0: no
            n-gram member. Measured alone on IMDB validation: 91.4% with 2**20 buckets, 91.7% with 2**22,
            91.8% with every pair its own feature.
        ngram_c: Inverse strength of the n-gram member's L2 penalty (liblinear's C).
        embedding_dropout: Dropout on the word vectors while training.
        head_dropout: Dropout on the pooled features, before the output layer.
        batch_size: Reviews per batch (batches group reviews of similar length).
        learning_rate: Adam's learning rate.
        learning_rate_decay: "cosine": the rate falls from `learning_rate` to 0 along a half cosine over
            `epochs` epochs, step by step (so the last epoch takes small steps); "none": it stays.
        clipnorm: Adam clips each gradient to this norm.
        epochs: Epochs at most.
        patience: Epochs without a better validation accuracy before stopping early.
        seed: Seeds weights, dropout and the order of batches, in [0, 2**32).
        backup_every: Back up the training state every this many steps (for resuming after a kill).
        max_train_minutes: Stop after the epoch when another would take training past this many
            minutes (None: no limit). Makes the result depend on the machine's speed.
        encoder: None: the BiLSTM from random weights. A next-word model folder: the classifier reads
            with that model's vocabulary, word vectors and LSTM (`nlp_lstm.sentiment.finetune`), and
            `max_tokens`, `embedding_dim` and `units` are that model's.

    Example:

    >>> from nlp_lstm.sentiment.config import SentimentConfig
    >>> SentimentConfig(units=32).units, SentimentConfig.from_dict({"units": 8}).units
    (32, 8)
    """

    max_tokens: int = 20_000
    max_length: int = 800
    embedding_dim: int = 128
    units: int = 64
    ngram_buckets: int = 1 << 22
    ngram_c: float = 1.0
    embedding_dropout: float = 0.5
    head_dropout: float = 0.5
    batch_size: int = 64
    learning_rate: float = 1e-3
    learning_rate_decay: str = "cosine"
    clipnorm: float = 1.0
    epochs: int = 3
    patience: int = 2
    seed: int = 1337
    backup_every: int = 50
    max_train_minutes: float | None = None
    encoder: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_length", "embedding_dim", "units", "batch_size", "epochs", "backup_every"):
            check_count(name, getattr(self, name))
        check_count("ngram_buckets", self.ngram_buckets, least=0)  # 0: no n-gram member
        check_count("patience", self.patience, least=0)
        check_seed("seed", self.seed)
        if self.learning_rate_decay not in LEARNING_RATE_DECAYS:
            raise ValueError(
                f"learning_rate_decay must be one of {LEARNING_RATE_DECAYS}, got {self.learning_rate_decay!r}"
            )
        if self.max_tokens < 3:
            raise ValueError(f"max_tokens must leave room for '', '[UNK]' and a word, got {self.max_tokens}")
        for name in ("embedding_dropout", "head_dropout"):
            check_rate(name, getattr(self, name))
        for name in ("learning_rate", "clipnorm", "ngram_c"):
            check_positive(name, getattr(self, name))
        if self.max_train_minutes is not None:
            check_positive("max_train_minutes", self.max_train_minutes)
        if self.encoder is not None and (not isinstance(self.encoder, str) or not self.encoder.strip()):
            raise ValueError(f"encoder must be a next-word model folder or None, got {self.encoder!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SentimentConfig:
        """The config from a dict such as config.json's "sentiment" (unknown keys are an error)."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown SentimentConfig fields {sorted(unknown)}")
        return cls(**values)


# With --encoder, the values that differ from the BiLSTM's defaults: the word vectors and the LSTM are
# trained already, so they take less dropout, and gradual unfreezing takes an epoch per stage
# (head; head and LSTM; everything) before a last epoch of everything (`nlp_lstm.sentiment.finetune`).
# The rate: 6e-3 for the head (the LSTM 6e-3 / 2.6) beat 2e-3 on validation, 91.80% to 90.96% (docs/experiments.md).
FINETUNE_DEFAULTS: dict[str, Any] = {"embedding_dropout": 0.25, "head_dropout": 0.3, "learning_rate": 6e-3, "epochs": 4}


def with_encoder(config: SentimentConfig, folder: str) -> SentimentConfig:
    """`config` fine-tuned from the next-word model in `folder`: that model's vocabulary size, word vector
    size and units, and the folder's absolute path. Reads config.json only (no TensorFlow); training
    loads and checks the model itself.

    Raises:
        ModelFolderError: `folder` is not a next-word model folder.
    """
    try:
        saved = read_model_config(folder, "nextword")
        sizes = saved["nextword"]
        return replace(
            config, encoder=os.path.abspath(os.path.expanduser(folder)), max_tokens=int(saved["vocabulary_size"]),
            embedding_dim=int(sizes["embedding_dim"]), units=int(sizes["units"]),
        )  # fmt: skip
    except ModelFolderError as error:
        raise ModelFolderError(f"--encoder: {error}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise ModelFolderError(f"--encoder: {folder}'s config.json has no valid next-word config ({error})") from None


def dry_run_config(config: SentimentConfig = SentimentConfig()) -> SentimentConfig:
    """A tiny model of one short epoch, for --dry-run: same code path, seconds of work.

    Example:

    >>> from nlp_lstm.sentiment.config import SentimentConfig, dry_run_config
    >>> dry_run_config(SentimentConfig(seed=7)).units, dry_run_config(SentimentConfig(seed=7)).seed
    (4, 7)
    """
    ngrams = {"ngram_buckets": 64} if config.ngram_buckets else {}
    if config.encoder:  # the sizes are the next-word model's
        return replace(config, max_length=32, batch_size=8, epochs=1, **ngrams)
    return replace(config, max_tokens=200, max_length=32, embedding_dim=8, units=4, batch_size=8, epochs=1, **ngrams)
