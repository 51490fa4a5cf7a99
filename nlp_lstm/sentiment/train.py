"""Training the sentiment model: the n-gram member first, then the BiLSTM, into a model folder."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from nlp_lstm._version import __version__
from nlp_lstm.data import LABEL_NAMES, ImdbSplits, load_imdb
from nlp_lstm.data_config import DataConfig, DataError
from nlp_lstm.distribute import prepare_model, refuse_time_limit_in_cluster, role_of, shardable
from nlp_lstm.files import atomic_write_json
from nlp_lstm.nextword.model import load_nextword_folder
from nlp_lstm.records import training_time_s, write_metrics_json
from nlp_lstm.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    ModelFolderError,
    OutputFolderError,
    begin_writing,
    drop_backup,
    finish_run,
    has_backup,
    read_model_config,
    run_config,
    staging_folder,
    start_run,
)
from nlp_lstm.sentiment.config import APP, DEFAULT_MODEL_DIR, SentimentConfig
from nlp_lstm.sentiment.evaluate import classification_metrics, predicted_probabilities
from nlp_lstm.sentiment.finetune import (
    GradualUnfreezing,
    LayerwiseAdam,
    copy_encoder,
    encoder_identity,
    layer_rates,
    unfreezing_groups,
)
from nlp_lstm.sentiment.model import build_finetuned_model, build_sentiment_model, compile_sentiment_model
from nlp_lstm.sentiment.ngrams import fit_ngram_logistic
from nlp_lstm.text import (
    BOUNDARY_TOKEN,
    VectorizerConfig,
    build_vectorizer,
    make_classification_dataset,
    vectorizer_from_vocabulary,
)
from nlp_lstm.training import FitConfig, cluster_vocabulary, fit, worker_folder

# What the data config contributes to a model's identity (a resumed run must match it).
_DATA_KEYS = ("source", "val_fraction", "seed", "limit")


def sentiment_fit_config(config: SentimentConfig, dry_run: bool = False, verbose: int | None = None) -> FitConfig:
    """How `nlp_lstm.training.fit` trains the sentiment model: best and early stop by val accuracy."""
    return FitConfig(
        epochs=config.epochs,
        seed=config.seed,
        monitor="val_accuracy",
        mode="max",
        patience=config.patience,
        backup_every=config.backup_every,
        dry_run=dry_run,
        verbose=verbose,
        max_minutes=config.max_train_minutes,
        units_per_step=config.batch_size,  # the last batch of an epoch may hold fewer: the rate is near, not exact
        units="reviews",
    )


def _folder_config(
    config: SentimentConfig, data_config: DataConfig, vocabulary_size: int | None, encoder: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "app": APP,
        "nlp_lstm_version": __version__,
        "labels": list(LABEL_NAMES),
        "sentiment": asdict(config),
        # An absolute source, so that evaluate can find the data again from any folder.
        "data": {
            **{key: getattr(data_config, key) for key in _DATA_KEYS},
            "source": os.path.abspath(data_config.source) if data_config.source else None,
        },
        "vocabulary_size": vocabulary_size,
        # The next-word model it was fine-tuned from (encoder_identity), or None.
        "encoder": encoder,
    }


def _refuse_other_encoder(out_dir: str | os.PathLike, identity: dict[str, str] | None) -> None:
    """Refuses to resume an interrupted fine-tuning (in out_dir or beside it) from another next-word model.

    Raises:
        OutputFolderError: The interrupted run started from a next-word model whose model.keras or
            vocabulary differs from `identity`'s (another folder, or the same folder trained again).
    """
    out = Path(out_dir).expanduser()
    for folder in (out, staging_folder(out)):
        if not has_backup(folder):
            continue
        try:
            saved = read_model_config(folder, APP).get("encoder")
        except ModelFolderError:
            continue  # not a run of this app: start_run says what it is
        if not saved or not identity:
            continue  # a run with and one without --encoder differ in their options: start_run refuses
        if any(saved.get(key) != identity[key] for key in ("model_sha256", "vocabulary_sha256")):
            raise OutputFolderError(
                f"{out} holds an interrupted run fine-tuned from the next-word model in {saved.get('folder')}, and "
                f"--encoder {identity['folder']} is another one (its model or vocabulary differs); resume with that "
                f"model, or pass --overwrite to start over"
            )


def _same_run(out: Path, config: SentimentConfig, data_config: DataConfig) -> bool:
    """Whether out/config.json describes a run of `config` on `data_config` (so its backup may be resumed).

    Compared as configs, not as JSON: a relative data path matches its absolute form.
    """
    try:
        saved = read_model_config(out, APP)
        saved_config = SentimentConfig.from_dict(saved["sentiment"])
        saved_data = dict(saved["data"])
    except (ModelFolderError, KeyError, TypeError, ValueError):
        return False
    if saved_data.get("source") is not None:
        saved_data["source"] = os.path.abspath(saved_data["source"])
    return saved_config == config and saved_data == _folder_config(config, data_config, None)["data"]


def _build_model(
    config: SentimentConfig, vectorizer: layers.TextVectorization, encoder: Any, resuming: bool, log: Any
) -> tuple[keras.Model, list[keras.callbacks.Callback], dict[str, Any]]:
    """The uncompiled model, the callbacks its training needs, and Adam's class and options.

    From random weights, or with `encoder` (a next-word folder) its word vectors and LSTMs copied in
    (not when resuming: the backup has the weights), trained by gradual unfreezing at layerwise rates.
    """
    vocabulary_size = vectorizer.vocabulary_size()
    if encoder is None:
        return build_sentiment_model(config, vocabulary_size), [], {}
    boundary_id = vectorizer.get_vocabulary().index(BOUNDARY_TOKEN)
    model = build_finetuned_model(config, vocabulary_size, encoder.config.num_layers, boundary_id)
    if not resuming:
        copy_encoder(model, encoder)
    groups = unfreezing_groups(model)
    return model, [GradualUnfreezing(groups, log)], {"adam": LayerwiseAdam, "layer_factors": layer_rates(groups)}


def _fit_ngram_member(
    model: keras.Model,
    config: SentimentConfig,
    splits: ImdbSplits,
    vectorizer: layers.TextVectorization,
    log: Any,
) -> None:
    """Fits the n-gram member on the training split's ids, as the model reads them, and sets its weights."""
    hashed, member = model.get_layer("ngram_ids"), model.get_layer("ngram_probability")
    batches = make_classification_dataset(
        splits.train, vectorizer, config.batch_size, config.max_length, shuffle=False, seed=config.seed
    )
    fitted = fit_ngram_logistic(
        ((hashed(ids).numpy(), labels.numpy()) for ids, labels in batches), member.rows, c=config.ngram_c, log=log
    )
    member.set_weights([fitted.weights, np.array([fitted.bias], "float32")])


def train_sentiment(
    data_config: DataConfig,
    config: SentimentConfig,
    out_dir: str | os.PathLike = DEFAULT_MODEL_DIR,
    fit_config: FitConfig | None = None,
    overwrite: bool = False,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    strategy: tf.distribute.Strategy | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Trains the classifier on train, picks the epoch by val accuracy, scores it once on test.

    Rerunning the same call after an interruption resumes it. A folder that holds a finished
    model (a metrics.json) is refused unless `overwrite`; so is one holding an interrupted run of
    another configuration.

    Args:
        data_config: Where the reviews come from and the validation split.
        config: The model and its training schedule.
        out_dir: The model folder to write.
        fit_config: How `fit` trains; default `sentiment_fit_config(config)`.
        overwrite: Replace a finished model, or drop an interrupted run of another configuration.
        callbacks: More Keras callbacks for `fit`.
        strategy: The `tf.distribute` strategy to train under (`nlp_lstm.distribute.make_strategy`);
            default the current one. In a multi-worker run only the chief writes `out_dir` and
            scores the model on test; the other workers train beside it and keep only a backup.
        command: The command line to name in hints (saved in config.json).

    Returns:
        The metrics written to out_dir/metrics.json (on a worker other than the chief, what it did).

    Raises:
        DataError: The data cannot be read, or leaves no validation reviews.
        OutputFolderError: `out_dir` is not writable, or holds a model that would be lost.

    Example (``acl_imdb``: a tiny aclImdb folder the test makes):

    >>> import pathlib, tempfile
    >>> from nlp_lstm.data_config import DataConfig
    >>> from nlp_lstm.sentiment.config import dry_run_config
    >>> from nlp_lstm.sentiment.train import train_sentiment
    >>> from nlp_lstm.training import FitConfig
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "sentiment"
    >>> metrics = train_sentiment(DataConfig(source=acl_imdb, verbose=False), dry_run_config(), out,
    ...                           fit_config=FitConfig(dry_run=True, verbose=0, tensorboard=False))
    >>> metrics["epochs"], metrics["test"]["n"], (out / "model.keras").exists()
    (1, 4, True)
    """
    start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    role = role_of(strategy)
    refuse_time_limit_in_cluster(role, config.max_train_minutes, "--epochs")
    encoder = identity = None
    if config.encoder:  # first: a bad folder fails fast, and a resume from another next-word model is refused
        encoder = load_nextword_folder(config.encoder)
        identity = encoder_identity(config.encoder)
        if role.chief and not overwrite:
            _refuse_other_encoder(out_dir, identity)
    plan = None
    if role.chief:
        plan = start_run(out_dir, overwrite, lambda folder: _same_run(folder, config, data_config))
        out, resuming = plan.work, plan.resuming
    else:
        out, resuming = worker_folder(out_dir, role), False
    fit_config = fit_config or sentiment_fit_config(config)

    splits = load_imdb(replace(data_config, include_unsup=False))
    if splits.sizes["val"] == 0:
        raise DataError(
            f"no validation reviews (val_fraction={data_config.val_fraction}, {splits.sizes['train']} training "
            f"reviews): the best epoch is picked on validation, so pass a larger --val-fraction or --limit"
        )
    if plan is not None:
        begin_writing(plan)
    vectorizer = cluster_vocabulary(
        strategy,
        out_dir,
        out,
        resuming,
        lambda: (
            vectorizer_from_vocabulary(encoder.vocabulary, VectorizerConfig(None))
            if encoder is not None  # the next-word model's vocabulary: its word vectors are by these ids
            else build_vectorizer(splits.train, VectorizerConfig(max_tokens=config.max_tokens))
        ),
    )
    vocabulary_size = vectorizer.vocabulary_size()
    if role.chief:
        atomic_write_json(
            out / CONFIG_FILE, run_config(_folder_config(config, data_config, vocabulary_size, identity), out, command)
        )

    def batches(ds: tf.data.Dataset, shuffle: bool) -> tf.data.Dataset:
        return shardable(make_classification_dataset(
            ds, vectorizer, config.batch_size, config.max_length, shuffle, config.seed, fixed_widths=role.replicas > 1
        ))  # fmt: skip

    keras.utils.set_random_seed(config.seed)  # before the datasets: their shuffles draw on the global seed
    train_batches = batches(splits.train, True)
    steps_per_epoch = 1
    if config.learning_rate_decay != "none" and not fit_config.dry_run:
        # One pass, which also fills the pipeline's token cache. Every worker of a cluster takes as many
        # steps as one process would (each step's global batch is split between them).
        steps_per_epoch = max(1, int(train_batches.reduce(0, lambda count, _: count + 1).numpy()))
    keras.utils.set_random_seed(config.seed)  # again: the weights must not depend on what the datasets drew
    log = print if data_config.verbose else None
    with strategy.scope():
        model, own_callbacks, adam = _build_model(config, vectorizer, encoder, resuming, log)
        model = compile_sentiment_model(model, config, steps_per_epoch, **adam)
    ngram_s = 0.0
    if config.ngram_buckets and not resuming:  # a resumed run restores its weights from the backup instead
        ngram_start = time.perf_counter()
        _fit_ngram_member(model, config, splits, vectorizer, log)
        ngram_s = time.perf_counter() - ngram_start
    model = prepare_model(model, strategy)
    result = fit(
        model, train_batches, batches(splits.val, False), out, fit_config, [*own_callbacks, *callbacks], role.chief
    )
    if not role.chief:
        drop_backup(out)
        return {"app": APP, "task": role.task, "epochs": result.epochs_done, "dry_run": fit_config.dry_run}

    # Test, once.
    probabilities, labels = predicted_probabilities(model, batches(splits.test, False))
    test = classification_metrics(labels, probabilities)
    metrics = {
        "app": APP,
        "val_accuracy": result.best,
        "test_accuracy": test["accuracy"],
        "test": test,
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "epochs": result.epochs_done,
        "resumed_at_epoch": result.initial_epoch if result.resumed else None,
        "train_time_s": round(training_time_s(out), 3),
        "ngram_fit_time_s": round(ngram_s, 3),
        "sizes": splits.sizes,
        "replicas": role.replicas,
        "workers": role.workers,
        "dry_run": fit_config.dry_run,
    }
    written = write_metrics_json(out / METRICS_FILE, metrics, time.perf_counter() - start)
    finish_run(plan)
    return written
