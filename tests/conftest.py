"""Shared fixtures: a tiny aclImdb-shaped data set, as a folder and a .tar.gz, made in tmp_path."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def loop_choice_cache(tmp_path_factory):
    """The layer's measured loop choices go to a file of this session (commands the tests start inherit
    it), not to the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        path = tmp_path_factory.mktemp("cache") / "loops.json"
        patch.setenv("NLP_LSTM_CACHE", str(path))
        yield path


def tiny_aclimdb_files() -> dict[str, bytes]:
    """Relative path under aclImdb/ -> bytes: 4 + 4 train, 2 + 2 test, 3 unsup reviews, clutter.

    The reviews hold what real ones do: `<br />` breaks, punctuation, emoji, non-ASCII letters, one
    file that is not UTF-8 (Latin-1, in train/neg) and one empty review (train/pos). Every review's
    text is unique, so a test can look its label up by text.
    """
    return {
        "train/neg/0_1.txt": b"Dreadful.<br /><br />I walked out after 20 minutes!!",
        "train/neg/1_2.txt": "Awful acting \U0001f62c and a worse plot; don't bother.".encode(),
        "train/neg/2_3.txt": b"Caf\xe9 scenes were dull and cr\xe8me-coloured: boring.",  # Latin-1
        "train/neg/10_4.txt": b"Too long, too loud, too <i>stupid</i>. 2/10",
        "train/pos/3_10.txt": b"A masterpiece.<br />Loved every minute of it!",
        "train/pos/4_9.txt": "Wonderful film \U0001f600\U0001f600 with a great cast.".encode(),
        "train/pos/5_8.txt": b"",
        "train/pos/11_7.txt": "Très bien: l'acteur était génial. 8/10".encode(),
        "test/neg/0_2.txt": b"Boring and predictable.<br/>Skip it.",
        "test/neg/1_1.txt": b"The worst film I've seen this year...",
        "test/pos/0_10.txt": b"Brilliant, moving, funny<br>and smart.",
        "test/pos/1_9.txt": b"I'd watch it again tomorrow: superb!",
        "train/unsup/0_0.txt": b"Saw it on TV last night.<br />Not sure what to think.",
        "train/unsup/1_0.txt": b"The director's cut is 20 minutes longer.",
        "train/unsup/2_0.txt": "Musique: ★★★ — «superbe».".encode(),
        # Clutter of the official archive, which a reader must skip.
        "imdb.vocab": b"the\nand\n",
        "train/urls_pos.txt": b"http://www.imdb.com/title/tt0453418/usercomments\n",
        "train/labeledBow.feat": b"0 0:9 1:1\n",
    }


def tiny_aclimdb_labels() -> dict[str, int]:
    """Decoded review text -> label (neg 0, pos 1, unsup -1), as a loader must return them."""
    labels = {"neg": 0, "pos": 1, "unsup": -1}
    return {
        raw.decode("utf-8", errors="replace"): labels[path.split("/")[1]]
        for path, raw in tiny_aclimdb_files().items()
        if path.endswith(".txt") and path.count("/") == 2
    }


def write_tiny_aclimdb(parent: Path, files: dict[str, bytes] | None = None) -> Path:
    """Writes `files` (default: the tiny data set) under parent/aclImdb and returns that folder."""
    root = parent / "aclImdb"
    for relative, raw in (tiny_aclimdb_files() if files is None else files).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    return root


def write_tar_gz(folder: Path, archive: Path) -> Path:
    """Archives `folder` as <folder name>/..., in reverse path order (no reader may need order)."""
    files = sorted((p for p in folder.rglob("*") if p.is_file()), reverse=True)
    with tarfile.open(archive, "w:gz") as tar:
        for path in files:
            tar.add(path, arcname=f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return archive


@pytest.fixture
def tiny_aclimdb(tmp_path: Path) -> Path:
    """The tiny aclImdb folder."""
    return write_tiny_aclimdb(tmp_path / "extracted")


@pytest.fixture
def tiny_aclimdb_tar(tmp_path: Path) -> Path:
    """The tiny aclImdb folder as a .tar.gz."""
    return write_tar_gz(write_tiny_aclimdb(tmp_path / "to_archive"), tmp_path / "aclImdb.tar.gz")


@pytest.fixture
def tiny_labels() -> dict[str, int]:
    """Decoded text -> label of every tiny review."""
    return tiny_aclimdb_labels()


@pytest.fixture
def aclimdb_writer():
    """`write_tiny_aclimdb`, for tests that need a variant of the layout (e.g. a missing folder)."""
    return write_tiny_aclimdb


@pytest.fixture
def tar_gz_writer():
    """`write_tar_gz`, for tests that archive a variant of the layout."""
    return write_tar_gz


@pytest.fixture
def tiny_files() -> dict[str, bytes]:
    """Relative path under aclImdb/ -> bytes of the tiny data set, to build variants from."""
    return tiny_aclimdb_files()


# The real archive, for the tests marked slow: beside the project (../shared/data), as on the project's
# machines and in CI, or where NLP_LSTM_ACLIMDB says. Elsewhere they skip, unless NLP_LSTM_REQUIRE_DATA=1
# (set by .ci/run, where the archive must be): then a missing archive fails them.
REAL_ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aclImdb.tar.gz"


@pytest.fixture
def aclimdb_archive() -> Path:
    import os

    path = Path(os.environ.get("NLP_LSTM_ACLIMDB", REAL_ARCHIVE))
    if not path.is_file():
        message = f"no aclImdb archive at {path} (set NLP_LSTM_ACLIMDB to its path)"
        if os.environ.get("NLP_LSTM_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path
