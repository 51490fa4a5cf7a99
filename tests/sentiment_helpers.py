"""A tiny trained sentiment model, trained once per test session and shared by the test files.

Not a fixture in conftest.py (that file belongs to the data tests): each test file wraps
`tiny_sentiment_model` in its own fixture. Tests must not change the folder it returns; copy it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_tiny_aclimdb

_TRAINED: dict[str, tuple[Path, Path]] = {}


def tiny_sentiment_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(tiny aclImdb folder, model folder of a dry-run-sized sentiment training on it)."""
    if "model" not in _TRAINED:
        from nlp_lstm.data_config import DataConfig
        from nlp_lstm.sentiment.config import dry_run_config
        from nlp_lstm.sentiment.train import train_sentiment
        from nlp_lstm.training import FitConfig

        root = tmp_path_factory.mktemp("tiny_sentiment")
        acl_imdb = write_tiny_aclimdb(root)
        model_dir = root / "model"
        train_sentiment(
            DataConfig(source=str(acl_imdb), verbose=False),
            dry_run_config(),
            model_dir,
            fit_config=FitConfig(dry_run=True, verbose=0, tensorboard=False),
        )
        _TRAINED["model"] = (acl_imdb, model_dir)
    return _TRAINED["model"]
