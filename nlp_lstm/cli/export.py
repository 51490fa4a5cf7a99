"""`nlp-lstm export`: a model folder of either app as a TensorFlow SavedModel (TF Serving's layout)."""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from nlp_lstm.checks import usage_error
from nlp_lstm.cli.sentiment import add_model_arguments, model_dir_of
from nlp_lstm.run_folder import ModelFolderError, read_model_config


def add_command(commands: Any) -> None:
    parser = commands.add_parser(
        "export", help="export a model as a TensorFlow SavedModel for serving",
        description="Writes EXPORT_DIR/<version>/ (TF Serving's layout; version = the largest there + 1). "
        "A sentiment export's serving_default takes `text` (tf.string [None]) and returns `probability` "
        "(float32 [None], P(pos)) and `label` (int64 [None], 0 neg / 1 pos).",
    )  # fmt: skip
    add_model_arguments(parser, "export a tiny model")
    parser.add_argument("--out", metavar="EXPORT_DIR", default=None,
                        help="the folder holding the versions (required, except with --dry-run: then a "
                        "temporary folder)")  # fmt: skip
    parser.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    if args.out is None and not args.dry_run:
        raise usage_error("nlp-lstm export", "--out EXPORT_DIR is required")
    model_dir = model_dir_of(args)
    export_dir = args.out or tempfile.mkdtemp(prefix="nlp-lstm-dry-run-export-")
    app = read_model_config(model_dir)["app"]
    if app == "sentiment":
        from nlp_lstm.sentiment.export import export_sentiment

        path = export_sentiment(model_dir, export_dir)
    elif app == "nextword":
        from nlp_lstm.nextword.export import export_nextword

        path = export_nextword(model_dir, export_dir)
    else:
        raise ModelFolderError(f"{model_dir} holds a model of an unknown app {app!r}; cannot export it")
    print(f"exported {model_dir} to {path}")
    return 0
