"""The next-word app: train a word-level LSTM language model on IMDB reviews (or your own text).

    texts --(nextword.corpus.load_corpus: IMDB train + unsup, or --corpus files)--> train / val / test texts
          --(text.build_vectorizer, once; text.make_language_model_dataset)--> (ids, next ids) windows
          --(nextword.model.NextWordModel, sampled-softmax loss)--> training.fit --> model folder
          --(nextword.evaluate)--> perplexity, top-1, top-3 on held-out test texts

A model folder (default saved_models/nextword/) holds model.keras, vocabulary.txt, config.json
("app": "nextword", its NextWordConfig and CorpusConfig: nlp_lstm.nextword.config and
nlp_lstm.data_config, which import no TensorFlow), metrics.json and what `nlp_lstm.training.fit`
writes (history.csv, curves.png, logs/). `nlp-lstm evaluate nextword` adds
evaluation.json; `nlp-lstm prompt` and `nlp-lstm export` read the folder back.

Budget: the default command trains in under an hour on 2 CPU cores (shared). A fixed number of
training tokens (`train_tokens`), not a number of passes over the corpus, sets the time; each
"epoch" is `train_tokens / epochs` tokens drawn from the whole shuffled corpus, so validation, the
best checkpoint, the curves and the resume backups come every few minutes rather than once an hour.
The defaults were chosen by measurement (figures in the report of issue 4):
- loss: the full softmax costs several times the LSTM per token (584 tokens/s measured here with
  10,000 words); a sampled softmax over 1,024 log-uniform candidates of 20,000 words trains at
  ~4,300 tokens/s (batch 64 x 64, real data);
- the sampled loss learns less per token than the full one, so more updates per token pay: in a
  replica of this training, batches of 32 x 32 tokens reached a clearly lower perplexity than
  64 x 64 for the same tokens; likewise the learning rate (5e-3, cosine);
- batch: 64 rows of 32 tokens run ~1.4x the tokens/s of 32 x 32 here (259 against 181 ms a step for
  twice the tokens), so in a few more minutes they take about as many steps over 1.7x the tokens:
  16M tokens in 64 x 32 reached a validation perplexity of 172.3 in 41.6 min, against 186.1 for
  9.6M tokens in 32 x 32 in 34 min (2026-11-23);
- corpus: all of train + unsup (17.5M tokens) is read and sampled; 20M training tokens reached a
  validation perplexity of 167.4 in 52.0 min (6,405 tokens/s, validation included; 52 min 57 s
  wall, 2026-11-23). On a slower day `DEFAULT_MAX_TRAIN_MINUTES` (55) ends it an epoch early.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict  # replace: for the docstring examples too
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from nlp_lstm._version import __version__
from nlp_lstm.data_config import CorpusConfig, DataError
from nlp_lstm.distribute import (
    StrategyError,
    prepare_model,
    refuse_time_limit_in_cluster,
    role_of,
    shardable,
)
from nlp_lstm.files import atomic_write_json
from nlp_lstm.nextword.config import (
    APP,
    DEFAULT_MODEL_DIR,
    NextWordConfig,
)
from nlp_lstm.nextword.corpus import load_corpus
from nlp_lstm.nextword.model import NextWordModel, build_nextword_model
from nlp_lstm.records import training_time_s, write_metrics_json
from nlp_lstm.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    ModelFolderError,
    begin_writing,
    drop_backup,
    finish_run,
    read_model_config,
    run_config,
    start_run,
)
from nlp_lstm.text import (
    BOUNDARY_TOKEN,
    VectorizerConfig,
    build_vectorizer,
    make_language_model_dataset,
    make_language_model_streams,
)
from nlp_lstm.training import FitConfig, cluster_vocabulary, fit, worker_folder


def nextword_fit_config(
    config: NextWordConfig, dry_run: bool = False, verbose: int | None = None, max_minutes: float | None = None
) -> FitConfig:
    """How `nlp_lstm.training.fit` trains the model: best checkpoint and early stop by val loss.

    `max_minutes` stops after the epoch when another would take training past it (None: no limit).
    It is not part of the run's config.json, so a resumed run may be given another limit.
    """
    return FitConfig(
        epochs=config.epochs, seed=config.seed, monitor="val_loss", mode="min", patience=config.patience,
        backup_every=config.backup_every, steps_per_epoch=config.steps_per_epoch, dry_run=dry_run, verbose=verbose,
        max_minutes=max_minutes, units_per_step=config.batch_size * config.window, units="tokens",
    )  # fmt: skip


def compile_nextword_model(model: NextWordModel, config: NextWordConfig) -> NextWordModel:
    """Adam with a cosine decay over the planned steps and clipped gradients; the loss is the model's own."""
    total_steps = max(config.steps_per_epoch * config.epochs, 1)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, total_steps, alpha=0.1)
    model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=config.clipnorm))
    return model


def _folder_config(config: NextWordConfig, corpus: CorpusConfig, vocabulary_size: int | None) -> dict[str, Any]:
    return {
        "app": APP,
        "nlp_lstm_version": __version__,
        "nextword": asdict(config),
        "corpus": asdict(corpus),
        "vocabulary_size": vocabulary_size,
    }


def _same_run(out: Path, wanted: dict[str, Any]) -> bool:
    """Whether out/config.json describes the run `wanted` describes (so its backup may be resumed)."""
    try:
        saved = read_model_config(out, APP)
    except ModelFolderError:
        return False
    nextword = saved.get("nextword")
    nextword = {"carry_states": False, **nextword} if isinstance(nextword, dict) else nextword  # older folders
    # Compared as JSON: config.json holds the corpus files as a list where the config has a tuple.
    wanted = json.loads(json.dumps(wanted))
    return nextword == wanted["nextword"] and saved.get("corpus") == wanted["corpus"]


def _windows(texts: tf.data.Dataset, vectorizer: Any, config: NextWordConfig, train: bool) -> tf.data.Dataset:
    if train and config.carry_states:
        return make_language_model_streams(texts, vectorizer, config.window, config.batch_size, config.seed)
    if train:
        # Shuffle over every window of the corpus (the buffer holds them all): an epoch is a slice of
        # `steps_per_epoch` batches and each one must be drawn from the whole corpus, not its start.
        # repeat() gives the dataset an infinite, known length, so fit takes its slices without counting.
        return make_language_model_dataset(
            texts, vectorizer, config.window, config.batch_size, config.seed, shuffle=True, shuffle_buffer=2_000_000
        ).repeat()
    return make_language_model_dataset(
        texts, vectorizer, config.window, config.batch_size, config.seed, shuffle=False, drop_remainder=False
    )


def train_nextword(
    corpus_config: CorpusConfig,
    config: NextWordConfig,
    out_dir: str = DEFAULT_MODEL_DIR,
    fit_config: FitConfig | None = None,
    overwrite: bool = False,
    verbose: bool = True,
    strategy: tf.distribute.Strategy | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Trains the next-word model; writes the model folder; returns the metrics of metrics.json.

    Under a multi-worker `strategy` (`nlp_lstm.distribute.make_strategy`) only the chief writes
    `out_dir`; the other workers train beside it and keep only a backup (and return what they did).

    Rerunning the same call after an interruption resumes it (with the saved vocabulary). A folder
    with a finished model is refused unless `overwrite`; so is an interrupted run of other options.
    The folder's contract (one writer, atomic overwrite) is `nlp_lstm.run_folder`'s. `command` is
    the command line to name in hints (saved in config.json).

    Raises:
        DataError: The corpus cannot be read.
        OutputFolderError: `out_dir` is not writable, or holds a model that would be lost.

    Example (``acl_imdb``: a tiny aclImdb folder the test makes):

    >>> import pathlib, tempfile
    >>> from nlp_lstm.data_config import CorpusConfig
    >>> from nlp_lstm.nextword.config import dry_run_config
    >>> from nlp_lstm.nextword.train import nextword_fit_config, train_nextword
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "nextword"
    >>> fit_config = replace(nextword_fit_config(dry_run_config(), dry_run=True), verbose=0, tensorboard=False)
    >>> corpus = CorpusConfig(data=acl_imdb, val_fraction=0.25)
    >>> metrics = train_nextword(corpus, dry_run_config(), out, fit_config, verbose=False)
    >>> sorted(p.name for p in out.iterdir() if not p.name.startswith("."))[:4], metrics["val_perplexity"] > 1
    (['checkpoint.json', 'config.json', 'curves.png', 'history.csv'], True)
    """
    start = time.perf_counter()
    strategy = strategy or tf.distribute.get_strategy()
    role = role_of(strategy)
    fit_config = fit_config or nextword_fit_config(config)
    refuse_time_limit_in_cluster(role, fit_config.max_minutes, "--train-tokens")
    if config.carry_states and strategy.num_replicas_in_sync > 1:
        raise StrategyError(
            f"--carry-states trains on one device; this strategy has {strategy.num_replicas_in_sync} replicas"
        )
    wanted = _folder_config(config, corpus_config, None)
    plan = None
    if role.chief:
        plan = start_run(out_dir, overwrite, lambda folder: _same_run(folder, wanted))
        out, resuming = plan.work, plan.resuming
    else:
        out, resuming = worker_folder(out_dir, role), False
    corpus = load_corpus(corpus_config, verbose=verbose)
    if corpus.sizes["val"] == 0:
        raise DataError(f"no text is left for validation out of {corpus.sizes['train']}: raise --val-fraction")
    if plan is not None:
        begin_writing(plan)

    def build() -> Any:
        if verbose:
            print(f"building the vocabulary ({config.max_tokens} tokens) from {corpus.sizes['train']} texts",
                  file=sys.stderr)  # fmt: skip
        return build_vectorizer(
            corpus.train, VectorizerConfig(max_tokens=config.max_tokens, reserved_tokens=(BOUNDARY_TOKEN,))
        )

    vectorizer = cluster_vocabulary(strategy, out_dir, out, resuming, build)
    vocabulary_size = vectorizer.vocabulary_size()
    if role.chief:
        atomic_write_json(
            out / CONFIG_FILE, run_config(_folder_config(config, corpus_config, vocabulary_size), out, command)
        )

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = compile_nextword_model(build_nextword_model(config.model_config(vocabulary_size)), config)
    model = prepare_model(model, strategy)
    train_ds = shardable(_windows(corpus.train, vectorizer, config, train=True))
    val_ds = shardable(_windows(corpus.val, vectorizer, config, train=False))
    result = fit(model, train_ds, val_ds, out, fit_config, chief=role.chief)
    if not role.chief:
        drop_backup(out)
        return {"app": APP, "task": role.task, "epochs": result.epochs_done, "dry_run": fit_config.dry_run}
    train_time = training_time_s(out)
    steps = fit_config.steps_per_epoch if not fit_config.dry_run else 1
    tokens = result.epochs_done * (steps or 0) * config.batch_size * config.window
    metrics = {
        "app": APP,
        "val_loss": result.best,
        "val_perplexity": None if result.best is None else math.exp(result.best),
        "best_epoch": None if result.best_epoch is None else result.best_epoch + 1,
        "epochs": result.epochs_done,
        "resumed_at_epoch": result.initial_epoch if result.resumed else None,
        "train_tokens": tokens,
        "train_time_s": round(train_time, 3),
        "tokens_per_s": round(tokens / train_time, 1) if train_time else None,
        "vocabulary_size": vocabulary_size,
        "parameters": sum(int(math.prod(w.shape)) for w in model.trainable_weights),  # not the carried states
        "sizes": corpus.sizes,
        "n_replaced": corpus.n_replaced,
        "replicas": role.replicas,
        "workers": role.workers,
        "dry_run": fit_config.dry_run,
    }
    written = write_metrics_json(out / METRICS_FILE, metrics, time.perf_counter() - start)
    finish_run(plan)
    return written
