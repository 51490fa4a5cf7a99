"""The sentiment figure: the default training from scratch, then test accuracy and wall time.

    python scripts/bench_sentiment.py --data ../shared/data/aclImdb.tar.gz
    python scripts/bench_sentiment.py --data tests-made-tiny-aclImdb --dry-run   # seconds, for CI

Trains with the default SentimentConfig (as `nlp-lstm train sentiment` does) into --out, which then
holds metrics.json with the same figures; prints test accuracy, validation accuracy, epochs,
training and wall time, and the training speed in tokens per second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="an aclImdb folder or .tar.gz (default: tensorflow-datasets' imdb_reviews)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="model folder to write (default: saved_models/sentiment; --dry-run: a temporary one)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a finished model in --out")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs at most (default: SentimentConfig's); fewer only for a quick speed check",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=None,
        help="at most this many reviews per split (default: all); only for a quick speed check",
    )
    parser.add_argument("--dry-run", action="store_true", help="a tiny model, one step, a handful of reviews")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON too")
    return parser.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Imported after parsing, so that --help does not wait for TensorFlow.
    from nlp_lstm.data import load_imdb
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.sentiment.config import DEFAULT_MODEL_DIR, SentimentConfig, dry_run_config  # fmt: skip
    from nlp_lstm.sentiment.predict import load_sentiment_model  # fmt: skip
    from nlp_lstm.sentiment.train import sentiment_fit_config, train_sentiment  # fmt: skip
    from nlp_lstm.text import make_classification_dataset

    config = dry_run_config() if args.dry_run else SentimentConfig()
    if args.epochs is not None:
        config = replace(config, epochs=args.epochs)
    data_config = DataConfig(source=args.data, limit=16 if args.dry_run else args.limit)
    out = args.out or (tempfile.mkdtemp(prefix="bench-sentiment-") if args.dry_run else DEFAULT_MODEL_DIR)
    start = time.perf_counter()
    metrics = train_sentiment(data_config, config, out, sentiment_fit_config(config, args.dry_run), args.overwrite)
    wall_s = time.perf_counter() - start

    # Tokens per epoch: the training split as the model saw it (cut to max_length), with the saved vocabulary.
    loaded = load_sentiment_model(out)
    train = load_imdb(DataConfig(source=args.data, limit=data_config.limit, include_unsup=False, verbose=False)).train
    batches = make_classification_dataset(train, loaded.vectorizer, 256, config.max_length, shuffle=False,
                                          seed=0, bucket=False)  # fmt: skip
    tokens = sum(int((ids != 0).numpy().sum()) for ids, _ in batches)
    epoch_s = metrics["train_time_s"] / max(metrics["epochs"], 1)
    print(f"test accuracy   {metrics['test_accuracy']:.4f}  ({metrics['test']['n']} reviews)")
    print(f"val accuracy    {metrics['val_accuracy']:.4f}  (best epoch {metrics['best_epoch']} of {metrics['epochs']})")
    print(f"training time   {metrics['train_time_s']:.0f} s  ({epoch_s:.0f} s per epoch, validation included)")
    print(f"wall time       {wall_s:.0f} s  (data, vocabulary, training, test evaluation)")
    print(f"speed           {tokens / epoch_s:.0f} training tokens/s  ({tokens} tokens per epoch)")
    print(f"machine         {metrics['machine']['cpus_usable']} CPUs, TF {metrics['machine']['tensorflow']}")
    if args.json:
        print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
