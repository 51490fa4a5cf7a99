"""Each member of sentiment models alone and together, on the same validation reviews and the test split.

    python scripts/bench_members.py --model saved_models/sentiment --model saved_models/sentiment_finetuned

For each model folder (the first is the reference: the default, random-init BiLSTM), the accuracy of its
LSTM member alone, its n-gram member (NBSVM) alone and the app's verdict (their mean), on the validation
reviews its training held out (rebuilt from its config.json: same source, fraction and seed) and on the
test split; then the training wall times from metrics.json, and for a fine-tuned model the language
model's (the next-word folder it records). One table in Markdown, under a line naming the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", metavar="DIR", action="append", required=True,
                        help="a sentiment model folder (repeat; the first is the reference)")  # fmt: skip
    parser.add_argument("--data", metavar="PATH", default=None,
                        help="the reviews (default: the source each model's config.json names)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    return parser.parse_args(argv)


def _accuracies(model, batches) -> dict[str, float]:
    """Accuracy of each member and of their mean over (ids, labels) batches."""
    import numpy as np
    import tensorflow as tf

    forward = tf.function(lambda ids: model(ids, training=False),
                          input_signature=[tf.TensorSpec([None, None], tf.int64)])  # fmt: skip
    outputs, labels = [], []
    for ids, batch_labels in batches:
        outputs.append(forward(ids).numpy())
        labels.append(batch_labels.numpy())
    members, truth = np.concatenate(outputs), np.concatenate(labels)  # (n, members), (n,)
    names = ["lstm", "ngram"][: members.shape[1]]
    figures = {name: float(np.mean((members[:, i] >= 0.5) == truth)) for i, name in enumerate(names)}
    figures["app"] = float(np.mean((members.mean(axis=1) >= 0.5) == truth))
    figures["n"] = len(truth)
    return figures


def _wall_times(folder: Path) -> dict[str, float | None]:
    def train_time(path: Path) -> float | None:
        try:
            return float(json.loads((path / "metrics.json").read_text())["train_time_s"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    saved = json.loads((folder / "config.json").read_text())
    encoder = (saved.get("encoder") or {}).get("folder")
    return {"classifier_s": train_time(folder), "language_model_s": train_time(Path(encoder)) if encoder else None}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from nlp_lstm.data import load_imdb
    from nlp_lstm.data_config import DataConfig
    from nlp_lstm.machine import cpu_line
    from nlp_lstm.sentiment.predict import load_sentiment_model
    from nlp_lstm.text import make_classification_dataset

    print(f"# {cpu_line()}")
    rows, cache = [], {}
    for model_dir in args.model:
        loaded = load_sentiment_model(model_dir)
        data = json.loads((Path(model_dir) / "config.json").read_text())["data"]
        source = args.data or data["source"]
        key = (source, data["val_fraction"], data["seed"], data["limit"])
        if key not in cache:
            config = DataConfig(source=source, val_fraction=data["val_fraction"], seed=data["seed"],
                                limit=data["limit"], verbose=False)  # fmt: skip
            cache[key] = load_imdb(replace(config, include_unsup=False))
        splits = cache[key]
        row = {"model": str(model_dir), "encoder": loaded.config.encoder, **_wall_times(Path(model_dir))}
        for name in ("val", "test"):
            batches = make_classification_dataset(getattr(splits, name), loaded.vectorizer, 128,
                                                  loaded.config.max_length, shuffle=False, seed=0)  # fmt: skip
            row[name] = _accuracies(loaded.model, batches)
        rows.append(row)

    def cell(figures: dict, name: str) -> str:
        return f"{100 * figures[name]:.2f}" if name in figures else "-"

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value / 60:.1f} min"

    print("| model | LSTM alone val / test | NBSVM alone val / test | app val / test | LM wall | classifier wall |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        label = "fine-tuned next-word LSTM" if row["encoder"] else "random-init BiLSTM"
        figures = [f"{cell(row['val'], n)} / {cell(row['test'], n)}" for n in ("lstm", "ngram", "app")]
        print(f"| {label} ({row['model']}) | {' | '.join(figures)} | {seconds(row['language_model_s'])} "
              f"| {seconds(row['classifier_s'])} |")  # fmt: skip
    print(f"validation reviews: {rows[0]['val']['n']}, test reviews: {rows[0]['test']['n']}")
    if args.json:
        print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
