"""The configs of the shared models, in plain Python (no TensorFlow), so the command line can check them cheaply.

    NextWordModelConfig  the LSTM language model (`nlp_lstm.nextword_model`), the next-word app's model

`nlp_lstm.nextword_model` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nlp_lstm.checks import check_count, check_rate, check_seed


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

    Example:

    >>> from nlp_lstm.model_config import NextWordModelConfig
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

    @property
    def state_width(self) -> int:
        """How many (batch, units) state tensors the model carries: h and c per layer."""
        return 2 * self.num_layers

    @property
    def uses_sampled_softmax(self) -> bool:
        """Whether training uses the sampled loss (fewer candidates than the vocabulary)."""
        return 0 < self.num_sampled < self.vocab_size - 1
