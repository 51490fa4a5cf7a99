"""Latency of the prompt: from a typed word (its closing space) to its suggestions on screen.

For each context length, the context is pasted into a `TypedContext`, then `--words` words are
typed one keystroke at a time; the clock runs from the space that completes a word to the moment
its top-k suggestions are known (tokenising the word, one LSTM step, the top-k). Beside it, the
same thing done the slow way: tokenise the whole text and re-read the whole prefix from zero states.
Keystrokes inside a word (suggestions filtered by the letters typed so far, no LSTM step) are timed too.

Latency does not depend on training, so without --model an untrained model of the default size
(NextWordConfig: 20,000 words, 256 units) is timed. Target: p99 <= 20 ms with a 50-word context.

    python scripts/bench_prompt.py                                   # untrained default-size model
    python scripts/bench_prompt.py --model saved_models/nextword --contexts 50 500 5000
    python scripts/bench_prompt.py --dry-run                         # tiny model, a few words (CI)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from nlp_lstm.nextword.generate import NEVER_SUGGESTED, Decoder, WordTokenizer  # noqa: E402
from nlp_lstm.nextword.prompt import TypedContext, load_prompt_model, tiny_untrained_model  # noqa: E402


@dataclass(frozen=True)
class BenchConfig:
    """What to time: context lengths (words), words typed per context, re-reads per context, k."""

    contexts: tuple[int, ...] = (50, 200, 1000, 5000)
    words: int = 200
    rereads: int = 20
    k: int = 3
    seed: int = 0


def untrained_default_model() -> tuple[Decoder, WordTokenizer]:
    """An untrained model of the default size, over a made-up vocabulary of the default size."""
    from nlp_lstm.nextword.config import NextWordConfig
    from nlp_lstm.nextword.model import build_nextword_model

    config = NextWordConfig()
    vocabulary = ["", "[UNK]", "[BOS]"] + [f"w{i}" for i in range(config.max_tokens - 3)]
    return Decoder(build_nextword_model(config.model_config(len(vocabulary))), vocabulary), WordTokenizer(vocabulary)


def percentiles(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max in milliseconds."""
    ms = np.array(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}


def bench_context(decoder: Decoder, tokenizer: WordTokenizer, length: int, config: BenchConfig) -> dict:
    """Times typing `config.words` words after a `length`-word context, and re-reading instead."""
    rng = np.random.default_rng(config.seed + length)
    words = [w for w in decoder.vocabulary if w not in NEVER_SUGGESTED]
    chosen = [words[i] for i in rng.integers(0, len(words), length + config.words)]
    context = TypedContext(decoder, tokenizer)
    text = " ".join(chosen[:length]) + " "
    context.update(text)  # pasted: one run of the layer's loop
    context.suggestions(config.k)
    per_word, per_key = [], []
    for word in chosen[length:]:
        for end in range(1, len(word) + 1):  # keystrokes inside the word: no LSTM step
            start = time.perf_counter()
            context.update(text + word[:end])
            context.suggestions(config.k)
            per_key.append(time.perf_counter() - start)
        text += word + " "
        start = time.perf_counter()
        context.update(text)  # the space that completes the word
        context.suggestions(config.k)
        per_word.append(time.perf_counter() - start)
    rereads = []
    for _ in range(config.rereads):
        start = time.perf_counter()
        ids = [decoder.boundary_id] + tokenizer.ids(text)
        decoder.suggestions(decoder.read_prefix(ids), config.k)
        rereads.append(time.perf_counter() - start)
    return {"context_words": length, "word": percentiles(per_word), "keystroke": percentiles(per_key),
            "reread": percentiles(rereads), "words_timed": len(per_word)}  # fmt: skip


def run(decoder: Decoder, tokenizer: WordTokenizer, config: BenchConfig) -> list[dict]:
    """Warms up (traces the step), then times each context length; prints a table as it goes."""
    bench_context(decoder, tokenizer, 5, BenchConfig(words=5, rereads=2))  # traces every function once
    header = f"{'context':>8} {'word p50':>9} {'word p99':>9} {'key p99':>8} {'re-read p50':>12} {'re-read p99':>12}"
    print(header + "  (ms)")
    rows = []
    for length in config.contexts:
        row = bench_context(decoder, tokenizer, length, config)
        rows.append(row)
        w, k, r = row["word"], row["keystroke"], row["reread"]
        print(f"{length:>8} {w['p50_ms']:>9.2f} {w['p99_ms']:>9.2f} {k['p99_ms']:>8.2f} "
              f"{r['p50_ms']:>12.2f} {r['p99_ms']:>12.2f}", flush=True)  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        metavar="DIR",
        default=None,
        help="a next-word model folder (default: an untrained model of the default size)",
    )
    parser.add_argument(
        "--contexts",
        type=int,
        nargs="+",
        default=list(BenchConfig.contexts),
        help="context lengths in words (default: %(default)s)",
    )
    parser.add_argument(
        "--words", type=int, default=BenchConfig.words, help="words typed per context (default: %(default)s)"
    )
    parser.add_argument(
        "--rereads",
        type=int,
        default=BenchConfig.rereads,
        help="timed re-reads of the whole prefix per context (default: %(default)s)",
    )
    parser.add_argument("--json", metavar="FILE", default=None, help="also write the figures to FILE")
    parser.add_argument("--dry-run", action="store_true", help="a tiny untrained model, a few words (for CI)")
    args = parser.parse_args(argv)
    if args.dry_run:
        config, (decoder, tokenizer) = BenchConfig(contexts=(5,), words=3, rereads=2), tiny_untrained_model()
    else:
        config = BenchConfig(contexts=tuple(args.contexts), words=args.words, rereads=args.rereads)
        decoder, tokenizer = load_prompt_model(args.model) if args.model else untrained_default_model()
    model = decoder.model.config
    print(f"model: {model.vocab_size} words, {model.num_layers} x {model.units} units; "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")  # fmt: skip
    rows = run(decoder, tokenizer, config)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as file:
            json.dump({"model": {"vocab_size": model.vocab_size, "units": model.units, "layers": model.num_layers},
                       "rows": rows}, file, indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
