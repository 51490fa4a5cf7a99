"""Text to token ids: the standardizer, the vocabulary, and the tf.data pipelines of both apps.

Vocabulary layout (Keras's `TextVectorization`): index 0 = '' (padding, masked by
`Embedding(mask_zero=True)`), 1 = '[UNK]' (out of vocabulary), then any reserved tokens (the
next-word app's boundary token '[BOS]'), then words by falling frequency in the training text.

Vectorising happens inside `tf.data`, not in the trained model (a vectorizer inside the model
disables XLA); the vectorizer joins the model only in the exported string-in wrapper, which is why
`standardize` is registered with Keras: a saved .keras model names it and loads it back.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from nlp_lstm.files import atomic_write_text

PAD_TOKEN = ""
OOV_TOKEN = "[UNK]"
OOV_ID = 1
# Brackets never survive `standardize`, so no word of a review can turn into this token.
BOUNDARY_TOKEN = "[BOS]"


@keras.saving.register_keras_serializable(package="nlp_lstm")
def standardize(text: tf.Tensor) -> tf.Tensor:
    """Lowercases and strips markup and punctuation, for `TextVectorization(standardize=...)`.

    Steps, in order: lowercase (all scripts, not only ASCII; bytes that are not UTF-8 become U+FFFD,
    then vanish as punctuation); HTML tags (`<br />`, `<br/>`, `<br>`, `<i>`...) and entities
    (`&amp;`) -> space; every character that is not a letter, a combining mark, a digit or an
    apostrophe -> space (so "7/10" is "7 10" and emoji go); apostrophes are kept inside words
    ("don't", "it's") and dropped at their edges ('quoted' -> quoted); runs of spaces -> one space,
    none at the ends. Non-ASCII letters are kept as they are ("café", "日本語").

    Args:
        text: A tf.string tensor of any shape.

    Returns:
        A tf.string tensor of the same shape.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.text import standardize
    >>> review = tf.constant("Great<br /><br />FILM, isn't it?! 10/10 😀 'Café'")
    >>> standardize(review).numpy().decode()
    "great film isn't it 10 10 café"
    """
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, r"</?[a-z][^<>]*>|&[a-z]+;|&#[0-9]+;", " ")
    text = tf.strings.regex_replace(text, "[\u2019\u02bc]", "'")  # typographic apostrophes
    # Runs of anything but letters, marks, digits, apostrophes and single spaces -> one space.
    # Leaving single spaces alone and collapsing double ones after is 3x faster than a pass that
    # rewrites every space: most characters of a review are letters and single spaces.
    text = tf.strings.regex_replace(text, r"[^\p{L}\p{M}\p{N}' ]+", " ")
    # Letters, marks, digits, apostrophes and spaces are left: an apostrophe next to a space or an
    # end is a quote mark, not part of a word. Two passes, as one pass cannot match the space
    # between two quoted words ("ark' 'alien") twice.
    text = tf.strings.regex_replace(text, r"'+( |$)", " ")
    text = tf.strings.regex_replace(text, r"(^| )'+", " ")
    text = tf.strings.regex_replace(text, r"  +", " ")
    return tf.strings.strip(text)


@dataclass(frozen=True)
class VectorizerConfig:
    """How text becomes token ids.

    Args:
        max_tokens: Vocabulary size, counting '', '[UNK]' and reserved tokens; None for all words.
        output_sequence_length: Pad or cut every output to this length; None keeps each text's
            length (a batch pads to its longest text), which the tf.data pipelines here want.
        reserved_tokens: Tokens placed right after '[UNK]' whatever their count, e.g.
            (BOUNDARY_TOKEN,) for the next-word app.
        adapt_batch_size: Texts per batch while counting words.

    Example:

    >>> from nlp_lstm.text import BOUNDARY_TOKEN, VectorizerConfig
    >>> VectorizerConfig(max_tokens=20_000, reserved_tokens=(BOUNDARY_TOKEN,)).reserved_tokens
    ('[BOS]',)
    """

    max_tokens: int | None = 20_000
    output_sequence_length: int | None = None
    reserved_tokens: tuple[str, ...] = ()
    adapt_batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < 2 + len(self.reserved_tokens):
            raise ValueError(f"max_tokens must leave room for '', '[UNK]' and reserved tokens, got {self.max_tokens}")
        if any(token in (PAD_TOKEN, OOV_TOKEN) or not token.strip() for token in self.reserved_tokens):
            raise ValueError(f"reserved tokens must be non-blank and not ''/'[UNK]', got {self.reserved_tokens}")


def _new_vectorizer(config: VectorizerConfig, max_tokens: int | None) -> keras.layers.TextVectorization:
    return keras.layers.TextVectorization(
        max_tokens=max_tokens,
        standardize=standardize,
        split="whitespace",
        output_mode="int",
        output_sequence_length=config.output_sequence_length,
    )


def _texts_only(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` itself if its elements are strings, else the first part of its (text, label) tuples."""
    return ds.map(lambda text, *rest: text) if isinstance(ds.element_spec, tuple) else ds


def build_vectorizer(texts_ds: tf.data.Dataset, config: VectorizerConfig) -> keras.layers.TextVectorization:
    """Builds the vocabulary, once, from training text only, and returns the vectorizer.

    Args:
        texts_ds: Unbatched texts (tf.string scalars) or (text, label) pairs: the training split.
        config: Vocabulary size, output length, reserved tokens.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.text import VectorizerConfig, build_vectorizer
    >>> texts = tf.data.Dataset.from_tensor_slices(["a good film", "a bad film", "film!"])
    >>> config = VectorizerConfig(max_tokens=5, reserved_tokens=("[BOS]",))
    >>> vectorizer = build_vectorizer(texts, config)
    >>> [str(token) for token in vectorizer.get_vocabulary()]  # numpy strings otherwise
    ['', '[UNK]', '[BOS]', 'film', 'a']
    >>> vectorizer(["a great film"]).numpy().tolist()
    [[4, 1, 3]]
    """
    vectorizer = _new_vectorizer(config, config.max_tokens)
    vectorizer.adapt(_texts_only(texts_ds).batch(config.adapt_batch_size))
    if config.reserved_tokens:
        counted = [t for t in vectorizer.get_vocabulary()[2:] if t not in config.reserved_tokens]
        vocabulary = [PAD_TOKEN, OOV_TOKEN, *config.reserved_tokens, *counted]
        vectorizer.set_vocabulary(vocabulary[: config.max_tokens])
    return vectorizer


def save_vocabulary(vocabulary: keras.layers.TextVectorization | Sequence[str], path: str | os.PathLike) -> None:
    """Writes the vocabulary, one token per line in UTF-8, line 1 being '' and line 2 '[UNK]'.

    Written to a temporary file in the same folder, then renamed over `path`, so a reader never sees
    half a vocabulary.

    Example:

    >>> import pathlib, tempfile
    >>> from nlp_lstm.text import load_vocabulary, save_vocabulary
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "vocabulary.txt"
    >>> save_vocabulary(["", "[UNK]", "film", "café"], path)
    >>> load_vocabulary(path)
    ['', '[UNK]', 'film', 'café']
    """
    if isinstance(vocabulary, keras.layers.TextVectorization):
        vocabulary = vocabulary.get_vocabulary()
    vocabulary = [str(token) for token in vocabulary]
    _check_vocabulary(vocabulary, "vocabulary to save")
    atomic_write_text(path, "\n".join(vocabulary) + "\n")


def _check_vocabulary(vocabulary: Sequence[str], what: str) -> None:
    if list(vocabulary[:2]) != [PAD_TOKEN, OOV_TOKEN]:
        raise ValueError(f"{what} must start with '' and '[UNK]', got {list(vocabulary[:2])}")
    if any("\n" in token or "\r" in token for token in vocabulary):
        raise ValueError(f"{what} has a token with a line break; one token per line cannot hold it")
    if len(set(vocabulary)) != len(vocabulary):
        raise ValueError(f"{what} has duplicate tokens")


def load_vocabulary(path: str | os.PathLike) -> list[str]:
    """Reads a vocabulary written by `save_vocabulary` (example there)."""
    text = Path(path).read_text(encoding="utf-8")
    # split('\n'), not splitlines(): the latter also breaks on U+2028 and friends.
    vocabulary = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    _check_vocabulary(vocabulary, f"vocabulary file {path}")
    return vocabulary


def vectorizer_from_vocabulary(vocabulary: Sequence[str], config: VectorizerConfig) -> keras.layers.TextVectorization:
    """Rebuilds the vectorizer from a saved vocabulary, without reading any corpus.

    Args:
        vocabulary: Tokens by id, starting with '' and '[UNK]' (as `load_vocabulary` returns them).
        config: Its `output_sequence_length` is used; the vocabulary itself fixes the size.

    Example:

    >>> from nlp_lstm.text import VectorizerConfig, vectorizer_from_vocabulary
    >>> vectorizer = vectorizer_from_vocabulary(["", "[UNK]", "film", "a"], VectorizerConfig())
    >>> vectorizer(["A film, a FILM."]).numpy().tolist()
    [[3, 2, 3, 2]]
    """
    vocabulary = list(vocabulary)
    _check_vocabulary(vocabulary, "vocabulary")
    vectorizer = _new_vectorizer(config, None)
    vectorizer.set_vocabulary(vocabulary)
    return vectorizer


def _token_rows(vectorizer: keras.layers.TextVectorization, texts: tf.Tensor) -> tf.RaggedTensor:
    """(batch,) strings -> (batch, None) ragged ids, without the vectorizer's padding if any."""
    ids = vectorizer(texts)
    # Padding (id 0) only ever trails the real tokens: stripping trailing zeros recovers the rows.
    return ids if isinstance(ids, tf.RaggedTensor) else tf.RaggedTensor.from_tensor(ids, padding=0)


def default_bucket_boundaries(max_length: int) -> list[int]:
    """Bucket edges 8, 16, 32, ... and `max_length` (the last bucket holds the reviews cut short).

    Example:

    >>> from nlp_lstm.text import default_bucket_boundaries
    >>> default_bucket_boundaries(200)
    [8, 16, 32, 64, 128, 200]
    """
    boundaries = []
    edge = 8
    while edge < max_length:
        boundaries.append(edge)
        edge *= 2
    return boundaries + [max_length]


def make_classification_dataset(
    ds: tf.data.Dataset,
    vectorizer: keras.layers.TextVectorization,
    batch_size: int,
    max_length: int,
    shuffle: bool,
    seed: int,
    bucket: bool = True,
    bucket_boundaries: Sequence[int] | None = None,
    shuffle_buffer: int = 25_000,
    fixed_widths: bool = False,
) -> tf.data.Dataset:
    """(text, label) pairs -> batches of (token ids (batch, time) int64, labels (batch,) int64).

    Each review keeps its first `max_length` tokens. Batches are padded with 0 at the end, so
    `Embedding(mask_zero=True)` masks exactly the padding; with `bucket`, reviews of similar length
    share a batch (`bucket_by_sequence_length`), so little of a batch is padding. A review with no
    tokens left after `standardize` becomes the single token '[UNK]' (id 1), never an empty row: a
    row with every step masked would divide by zero in a masked mean and give NaN.

    The token ids are cached after the first pass; shuffling (seeded) then happens every epoch.

    With `fixed_widths` (and `bucket`), a batch is padded to its bucket's edge rather than to its
    longest review: a handful of batch shapes instead of hundreds. Keras's training function under a
    tf.distribute strategy is traced again for every new shape, so replicated training needs this.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.text import VectorizerConfig, make_classification_dataset
    >>> from nlp_lstm.text import vectorizer_from_vocabulary
    >>> vectorizer = vectorizer_from_vocabulary(["", "[UNK]", "good", "film"], VectorizerConfig())
    >>> texts = ["good film", "!!!", "good good good film"]
    >>> ds = tf.data.Dataset.from_tensor_slices((texts, [1, 0, 1]))
    >>> batches = make_classification_dataset(
    ...     ds, vectorizer, batch_size=3, max_length=3, shuffle=False, seed=0, bucket=False
    ... )
    >>> for ids, labels in batches:
    ...     print(ids.numpy().tolist(), labels.numpy().tolist())
    [[2, 3, 0], [1, 0, 0], [2, 2, 2]] [1, 0, 1]
    """
    if max_length < 1 or batch_size < 1:
        raise ValueError(f"max_length and batch_size must be >= 1, got {max_length} and {batch_size}")

    def to_ids(texts: tf.Tensor, labels: tf.Tensor) -> tuple[tf.RaggedTensor, tf.Tensor]:
        return _token_rows(vectorizer, texts), labels  # (b, None), (b,)

    def cut_and_fill(ids: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        ids = ids[:max_length]  # (<= max_length,)
        # An empty review becomes [OOV_ID]: at least one unmasked step (see the docstring).
        ids = tf.pad(ids, [[0, tf.maximum(1 - tf.size(ids), 0)]], constant_values=OOV_ID)
        return ids, label

    tokens = (
        ds.batch(256)  # vectorising 256 texts at a time is far faster than one by one
        .map(to_ids, num_parallel_calls=tf.data.AUTOTUNE)
        .unbatch()
        .map(cut_and_fill, num_parallel_calls=tf.data.AUTOTUNE)
        .cache()
    )
    if shuffle:
        tokens = tokens.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if bucket:
        boundaries = list(bucket_boundaries or default_bucket_boundaries(max_length))
        if fixed_widths:  # a bucket [a, b) pads to b - 1, so the last edge must pass max_length
            boundaries = [edge for edge in boundaries if edge <= max_length] + [max_length + 1]
        batches = tokens.bucket_by_sequence_length(
            element_length_func=lambda ids, label: tf.shape(ids)[0],
            bucket_boundaries=boundaries,
            bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
            padded_shapes=([None], []),  # pads at the end, with 0
            pad_to_bucket_boundary=fixed_widths,
        )
    else:
        batches = tokens.padded_batch(batch_size, padded_shapes=([None], []))
    return batches.prefetch(tf.data.AUTOTUNE)


def _rows_after_boundaries(
    vectorizer: keras.layers.TextVectorization, boundary_token: str, window: int, batch_size: int
) -> Callable[[tf.Tensor], tf.RaggedTensor]:
    """Checks a language-model dataset's arguments; returns (b,) texts -> (b, None) ragged ids, each
    row `boundary_token` and then the text's tokens."""
    if window < 1 or batch_size < 1:
        raise ValueError(f"window and batch_size must be >= 1, got {window} and {batch_size}")
    vocabulary = vectorizer.get_vocabulary()
    if boundary_token not in vocabulary:
        raise ValueError(
            f"the vocabulary has no boundary token {boundary_token!r}: build it with "
            f"VectorizerConfig(reserved_tokens=({boundary_token!r},))"
        )
    boundary_id = vocabulary.index(boundary_token)

    def to_rows(texts: tf.Tensor) -> tf.RaggedTensor:
        rows = _token_rows(vectorizer, texts)  # (b, None)
        starts = tf.fill([rows.nrows(), 1], tf.constant(boundary_id, rows.dtype))  # (b, 1)
        return tf.concat([starts, rows], axis=1)

    return to_rows


def make_language_model_dataset(
    texts_ds: tf.data.Dataset,
    vectorizer: keras.layers.TextVectorization,
    window: int,
    batch_size: int,
    seed: int,
    shuffle: bool = True,
    boundary_token: str = BOUNDARY_TOKEN,
    shuffle_buffer: int = 10_000,
    drop_remainder: bool = True,
) -> tf.data.Dataset:
    """Texts -> batches of (inputs, targets), each (batch, window) int64; targets = next tokens.

    Every review becomes `boundary_token` followed by its tokens, and the reviews are joined into
    one stream, cut into non-overlapping chunks of `window + 1` tokens (a last partial chunk is
    dropped): inputs = chunk[:-1], targets = chunk[1:]. A window may span two reviews; the boundary
    token between them tells the model that a new review starts, and predicting it means "this
    review ends". So the vocabulary must hold the token: build it with
    `VectorizerConfig(reserved_tokens=(BOUNDARY_TOKEN,))`. No padding, so no masking is needed.

    Chunks are cached, then shuffled (seeded) every epoch; `drop_remainder` keeps shapes static.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.text import VectorizerConfig, make_language_model_dataset
    >>> from nlp_lstm.text import vectorizer_from_vocabulary
    >>> vocabulary = ["", "[UNK]", "[BOS]", "a", "b"]
    >>> vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig())
    >>> texts = tf.data.Dataset.from_tensor_slices(["a b a", "b b"])  # [BOS] a b a [BOS] b b
    >>> batches = make_language_model_dataset(
    ...     texts, vectorizer, window=2, batch_size=2, seed=0, shuffle=False
    ... )
    >>> for inputs, targets in batches:
    ...     print(inputs.numpy().tolist(), targets.numpy().tolist())
    [[2, 3], [3, 2]] [[3, 4], [2, 4]]
    """
    to_rows = _rows_after_boundaries(vectorizer, boundary_token, window, batch_size)
    chunks = (
        _texts_only(texts_ds)
        .batch(256)
        .map(lambda texts: to_rows(texts).flat_values, num_parallel_calls=tf.data.AUTOTUNE)  # the b reviews' tokens
        .rebatch(window + 1, drop_remainder=True)  # = unbatch().batch(window + 1), one copy
        .map(lambda chunk: (chunk[:-1], chunk[1:]), num_parallel_calls=tf.data.AUTOTUNE)  # (window,) x 2
        .cache()
    )
    if shuffle:
        chunks = chunks.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return chunks.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def make_language_model_streams(
    texts_ds: tf.data.Dataset,
    vectorizer: keras.layers.TextVectorization,
    window: int,
    batch_size: int,
    seed: int,
    boundary_token: str = BOUNDARY_TOKEN,
) -> tf.data.Dataset:
    """Texts -> an endless dataset of (inputs, targets) batches, (batch, window) int64, in which row j
    of each batch continues row j of the batch before: for a model that carries its states from one
    batch to the next (truncated backpropagation through time), each row reads as one long text.

    Each pass over the texts shuffles their order (seeded, a new order every pass), joins them into
    one stream (`boundary_token` before each text) and cuts it into `batch_size` stripes of equal
    length, a multiple of `window`; row j of batch k is stripe j's k-th window and its targets are
    the same tokens shifted by one, so every token but a stripe's last is an input once. The last
    (stream length - 1) % (batch_size * window) tokens of a pass are left out. An input too short for
    one batch gives an empty dataset, not an endless wait. Each new iterator (Keras's `fit` makes one
    per epoch from a `take`) starts a new pass in a new order; a new dataset with the same seed
    repeats the first one's orders.

    Example:

    >>> import tensorflow as tf
    >>> from nlp_lstm.text import VectorizerConfig, make_language_model_streams, vectorizer_from_vocabulary
    >>> vocabulary = ["", "[UNK]", "[BOS]", "a", "b", "c"]
    >>> vectorizer = vectorizer_from_vocabulary(vocabulary, VectorizerConfig())
    >>> texts = tf.data.Dataset.from_tensor_slices(["a b c a b c", "c b a c b a", "a a b b c c"])
    >>> batches = iter(make_language_model_streams(texts, vectorizer, window=2, batch_size=2, seed=0))
    >>> (inputs, targets), (next_inputs, _) = next(batches), next(batches)
    >>> tuple(inputs.shape), (next_inputs[:, 0] == targets[:, -1]).numpy().tolist()  # rows go on
    ((2, 2), [True, True])
    """
    to_rows = _rows_after_boundaries(vectorizer, boundary_token, window, batch_size)

    def to_windows(stream: tf.Tensor) -> tf.data.Dataset:
        per_row = (tf.size(stream, tf.int64) - 1) // (batch_size * window) * window  # inputs per stripe
        inputs = tf.reshape(stream[: batch_size * per_row], (batch_size, -1))  # (batch, per_row)
        targets = tf.reshape(stream[1 : batch_size * per_row + 1], (batch_size, -1))
        return tf.data.Dataset.range(per_row // window).map(
            lambda k: (inputs[:, k * window : (k + 1) * window], targets[:, k * window : (k + 1) * window])
        )

    texts = _texts_only(texts_ds).batch(256).map(to_rows, num_parallel_calls=tf.data.AUTOTUNE).unbatch().cache()
    # One pass to count the texts (and fill the cache): a batch reserves room for its size up front.
    count = max(int(texts.reduce(0, lambda n, _: n + 1)), 1)
    one_pass = (
        texts.shuffle(count, seed=seed, reshuffle_each_iteration=True)  # every text, every pass
        .ragged_batch(count)  # the whole pass as one ragged tensor
        .map(lambda rows: rows.flat_values)  # (tokens in the pass,)
        .flat_map(to_windows)
    )
    # repeat() after the windows: a pass with none ends the dataset instead of repeating forever.
    return one_pass.repeat().prefetch(tf.data.AUTOTUNE)


def text_bytes(text: str | bytes) -> bytes:
    """A text as the bytes the model reads: str as UTF-8 (the bytes of a command-line argument that was not
    UTF-8 given back), bytes as they are (`standardize` turns what is not UTF-8 into U+FFFD)."""
    if isinstance(text, bytes):
        return text  # standardize turns bytes that are not UTF-8 into U+FFFD
    try:
        # surrogateescape gives back the bytes of a command-line argument that was not UTF-8.
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", errors="replace")
