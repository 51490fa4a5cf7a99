"""`nlp-lstm prompt`: next-word suggestions as you type, like a phone keyboard, and continuations.

    typed text --(TypedContext.update: only the words new since the last keystroke)--> token ids
               --(generate.Decoder: one LSTM step per new token; states kept per position)--> logits
               --(Decoder.suggestions: '', [UNK], [BOS] never; filtered by the word being typed)--> strip

In a terminal (prompt_toolkit): the strip under the line shows the top-k next words and updates on
every keystroke; Tab accepts the first suggestion, Alt-1 ... Alt-9 the others; ending the line with
`/more N [greedy | topk K | topp P | temp T | beam B]` and Enter continues the text by N words;
`/help` lists the commands; Ctrl-C or Ctrl-D leaves.

Without a terminal (stdin a pipe or a file) each line is one prompt: its suggestions are printed,
and with `--more N` its continuation (`--json` prints one JSON object per line instead).

The typed text is cut into whitespace-separated chunks, each tokenised once and cached, so a new
word costs one tokenisation and one LSTM step whatever the length of the text; editing an earlier
word rewinds to the state saved before it. (A chunk is standardised on its own: HTML markup that
spans a space, like `<br />`, is not recognised as markup here, unlike in training data.)
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TextIO

import numpy as np

from nlp_lstm.checks import MAX_MORE_WORDS, MAX_SUGGESTIONS, check_seed
from nlp_lstm.nextword.generate import (
    BeamSearch,
    Continuation,
    Decoder,
    Greedy,
    NextTokenRule,
    Temperature,
    TopK,
    TopP,
    WordTokenizer,
    generate,
)
from nlp_lstm.text import OOV_ID

HELP = """commands (at the end of a line, then Enter):
  /more N [greedy | topk K | topp P | temp T | beam B]   continue the text by N words
  /k N        show N suggestions          /seed S    seed the sampling (repeatable)
  /clear      start a new text            /help      this list
  /quit       leave (or Ctrl-D, Ctrl-C)
keys: Tab accepts the first suggestion, Alt-1 ... Alt-9 the others"""
_COMMAND = re.compile(r"(?:^|\s)/(more|k|seed|clear|help|quit)\b(.*)$", re.S)


class PromptError(ValueError):
    """A command the user typed wrongly; the message says how to type it."""


def parse_rule(words: Sequence[str]) -> NextTokenRule:
    """A next-token rule from words such as ["topk", "40"]; no words is greedy.

    Example:

    >>> from nlp_lstm.nextword.prompt import parse_rule
    >>> parse_rule(["topp", "0.9"]), parse_rule([]), parse_rule(["beam", "4"])
    (TopP(p=0.9, temperature=1.0), Greedy(), BeamSearch(width=4))
    """
    if not words or words[0] == "greedy":
        if len(words) > 1:
            raise PromptError("greedy takes no number")
        return Greedy()
    makers = {"topk": (TopK, int), "topp": (TopP, float), "temp": (Temperature, float), "beam": (BeamSearch, int)}
    if words[0] not in makers or len(words) != 2:
        raise PromptError(f"unknown rule {' '.join(words)!r}: use greedy, topk K, topp P, temp T or beam B")
    maker, kind = makers[words[0]]
    try:
        return maker(kind(words[1]))
    except ValueError as error:
        raise PromptError(f"bad {words[0]} value {words[1]!r}: {error}") from None


def parse_more(arguments: str) -> tuple[int, NextTokenRule]:
    """`/more`'s arguments "N [rule]" -> (N, rule).

    Example:

    >>> from nlp_lstm.nextword.prompt import parse_more
    >>> parse_more("12 topk 40")
    (12, TopK(k=40, temperature=1.0))
    """
    words = arguments.split()
    try:
        count = int(words[0]) if words else 10
    except ValueError:
        raise PromptError(f"/more needs a number of words first, got {words[0]!r}") from None
    if not 0 < count <= MAX_MORE_WORDS:
        raise PromptError(f"/more takes 1 to {MAX_MORE_WORDS} words, got {count}")
    return count, parse_rule(words[1:])


# Control and format characters (escape codes, NUL, zero-width joiners...) and lone surrogates -> space.
_INVISIBLE = {
    code: " " for code in range(0x10000)
    if unicodedata.category(chr(code)) in ("Cc", "Cf", "Cs") and chr(code) not in "\t\n\r"
}  # fmt: skip


def clean_text(text: str) -> str:
    """Control and format characters (escape codes, NUL, zero-width...) become spaces (str.translate: C speed).

    Example:

    >>> from nlp_lstm.nextword.prompt import clean_text
    >>> clean_text("bad\\x1b[31mly\\x00 made\\u200b")
    'bad [31mly  made '
    """
    return text.translate(_INVISIBLE)


def _partial_word_start(text: str) -> int:
    """Where the trailing run of non-space characters (the word being typed) starts."""
    start = len(text)
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    return start


class TypedContext:
    """Follows a text as it is typed and keeps the model's state after its last complete word.

    Args:
        decoder: The state-carrying decoder.
        tokenizer: The model's tokenizer.

    Example:

    >>> import numpy as np
    >>> from nlp_lstm.nextword.generate import Decoder, WordTokenizer
    >>> from nlp_lstm.nextword.config import NextWordModelConfig
    >>> from nlp_lstm.nextword.model import build_nextword_model
    >>> from nlp_lstm.nextword.prompt import TypedContext
    >>> vocabulary = ["", "[UNK]", "[BOS]", "the", "movie", "was", "great", "good"]
    >>> decoder = Decoder(build_nextword_model(NextWordModelConfig(8, 4, 4)), vocabulary)
    >>> context = TypedContext(decoder, WordTokenizer(vocabulary))
    >>> context.update("The movie was gr")
    'gr'
    >>> context.token_ids, [word for word, _ in context.suggestions(3)]
    ([3, 4, 5], ['great'])
    >>> bool(np.allclose(context.logits, decoder.read_prefix([2, 3, 4, 5]), atol=1e-5))
    True
    """

    def __init__(self, decoder: Decoder, tokenizer: WordTokenizer):
        self.decoder, self.tokenizer = decoder, tokenizer
        self.clear()

    def clear(self) -> None:
        """Back to an empty text (the state after [BOS])."""
        self._completed = ""  # the text up to the word being typed; ends with a space unless empty
        self._chunks: list[str] = []  # its whitespace-separated chunks
        self._chunk_ends: list[int] = []  # tokens up to and including chunk i
        self._ids: list[int] = []
        self._chunk_ids: dict[str, list[int]] = {}
        self.logits, self.states = self.decoder.start()
        self._saved: list[tuple[int, np.ndarray]] = [(0, self.states)]  # (tokens fed, states), ascending
        self.partial = ""
        self._log_probs_of = None

    @property
    def token_ids(self) -> list[int]:
        """The ids of the complete words so far (no [BOS])."""
        return list(self._ids)

    def update(self, text: str) -> str:
        """Catches up with `text`: feeds new complete words, rewinds over edited ones; returns the partial word."""
        text = clean_text(text)
        start = _partial_word_start(text)
        completed, self.partial = text[:start], text[start:]
        if completed != self._completed:
            if completed.startswith(self._completed):  # typing at the end: look at the new part only
                self._append(completed[len(self._completed) :].split())
            else:
                self._rewrite(completed.split())
            self._completed = completed
        return self.partial

    def _rewrite(self, chunks: list[str]) -> None:
        """An earlier word changed: keep the chunks before the first change, then append the rest."""
        shorter = min(len(chunks), len(self._chunks))
        same = next((i for i, (a, b) in enumerate(zip(self._chunks, chunks)) if a != b), shorter)
        keep = self._chunk_ends[same - 1] if same else 0
        del self._chunks[same:], self._chunk_ends[same:], self._ids[keep:]
        self._append(chunks[same:])

    def _append(self, chunks: list[str]) -> None:
        new = [c for c in dict.fromkeys(chunks) if c not in self._chunk_ids]
        for chunk, ids in zip(new, self.tokenizer.rows(new)):  # one tokenizer call for all new chunks
            self._chunk_ids[chunk] = ids
        keep = len(self._ids)
        for chunk in chunks:
            self._chunks.append(chunk)
            self._ids.extend(self._chunk_ids[chunk])
            self._chunk_ends.append(len(self._ids))
        self._move_to(keep, len(self._ids))

    def _move_to(self, keep: int, end: int) -> None:
        """Sets the state to that after `end` tokens, the first `keep` of which are unchanged."""
        while self._saved[-1][0] > keep:
            self._saved.pop()
        base, states = self._saved[-1]
        if end == base:  # a rewind onto a saved state
            self.states, self.logits = states, self.decoder.logits(states)
            return
        if end - base == 1:  # one new word: one step
            self.logits, self.states = self.decoder.step(np.array(self._ids[base:end]), states)
        else:  # a paste or a rewind: one run of the layer's loop
            self.logits, self.states = self.decoder.feed(self._ids[base:end], states)
        self._saved.append((end, self.states))  # for a later rewind

    def suggestions(self, k: int = 3) -> list[tuple[str, float]]:
        """The k likeliest next words, those starting with the word being typed if there is one."""
        if self._log_probs_of is not self.logits:  # once per new word, not once per keystroke
            self._log_probs = self.decoder.suggestion_log_probs(self.logits)[0]
            self._log_probs_of = self.logits
        prefix = re.sub(r"[^\w']+", "", self.partial.lower())
        return self.decoder.best_words(self._log_probs, k, prefix)

    def continue_text(self, num_words: int, rule: NextTokenRule, seed: int | None = None) -> Continuation:
        """A continuation of the complete words so far (the partial word is ignored)."""
        return generate(self.decoder, self.logits, self.states, num_words, rule, seed)


def format_suggestions(suggestions: Sequence[tuple[str, float]]) -> str:
    """Suggestions on one line: 'really 12.1% | a 8.0%'.

    Example:

    >>> from nlp_lstm.nextword.prompt import format_suggestions
    >>> format_suggestions([("really", 0.121), ("a", 0.08)])
    'really 12.1% | a 8.0%'
    """
    return " | ".join(f"{word} {p:.1%}" for word, p in suggestions) or "(no suggestion)"


@dataclass(frozen=True)
class PromptConfig:
    """How the prompt answers.

    Args:
        k: Suggestions shown.
        more_words: Pipe mode: continue every prompt by this many words (0: no continuation).
        rule: The continuation rule, e.g. "greedy", "topk 40", "topp 0.9", "temp 0.8", "beam 4".
        seed: Seed of the sampling rules, in [0, 2**32) (None: different every time).
        json: Pipe mode: one JSON object per line instead of text.

    Example:

    >>> from nlp_lstm.nextword.prompt import PromptConfig
    >>> PromptConfig(rule="topk 40").next_token_rule
    TopK(k=40, temperature=1.0)
    """

    k: int = 3
    more_words: int = 0
    rule: str = "greedy"
    seed: int | None = None
    json: bool = False
    next_token_rule: NextTokenRule = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.k <= MAX_SUGGESTIONS:
            raise ValueError(f"k must be in 1..{MAX_SUGGESTIONS}, got {self.k}")
        if not 0 <= self.more_words <= MAX_MORE_WORDS:
            raise ValueError(f"more_words must be in 0..{MAX_MORE_WORDS}, got {self.more_words}")
        if self.seed is not None:
            check_seed("seed", self.seed)
        object.__setattr__(self, "next_token_rule", parse_rule(self.rule.split()))


def answer(context: TypedContext, line: str, config: PromptConfig) -> dict:
    """One prompt of pipe mode: its suggestions, a note when it needs one, and a continuation if asked.

    Example (``context``: a TypedContext of a tiny model):

    >>> from nlp_lstm.nextword.prompt import PromptConfig, answer
    >>> sorted(answer(context, "the movie", PromptConfig(k=2, more_words=3)))
    ['continuation', 'note', 'prompt_words', 'suggestions']
    """
    context.clear()
    context.update(line + " ")  # the whole line is typed: suggest the word after it
    ids = context.token_ids
    note = None
    if not ids:
        note = "empty prompt: these words start a text"
    elif all(i == OOV_ID for i in ids):
        note = "no word of the prompt is in the vocabulary; suggestions follow unknown words"
    result = {"prompt_words": len(ids), "suggestions": [[w, round(p, 6)] for w, p in context.suggestions(config.k)],
              "note": note, "continuation": None}  # fmt: skip
    if config.more_words:
        result["continuation"] = " ".join(
            context.continue_text(config.more_words, config.next_token_rule, config.seed).words
        )
    return result


def run_pipe(context: TypedContext, lines: Iterable[str], out: TextIO, config: PromptConfig) -> int:
    """Pipe mode: one prompt per line of `lines`, answers on `out`."""
    for line in lines:
        result = answer(context, line.rstrip("\r\n"), config)
        if config.json:
            out.write(json.dumps(result, ensure_ascii=False) + "\n")
        else:
            echo = " ".join(clean_text(line).split())
            echo = echo if len(echo) <= 60 else f"...{echo[-57:]}"
            out.write(f"> {echo}\n  next: {format_suggestions([tuple(s) for s in result['suggestions']])}\n")
            if result["note"]:
                out.write(f"  note: {result['note']}\n")
            if result["continuation"] is not None:
                out.write(f"  more: {result['continuation']}\n")
        out.flush()
    return 0


def run_interactive(context: TypedContext, config: PromptConfig) -> int:
    """The live prompt in a terminal (prompt_toolkit); returns 0 when the user leaves."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings

    state = {"k": config.k, "seed": config.seed}
    session: PromptSession = PromptSession()
    bindings = KeyBindings()

    def accept(event, index: int) -> None:
        buffer = event.current_buffer
        # From the text as it is now: keys typed ahead of a redraw would find the strip out of date.
        context.update(buffer.text)
        suggestions = context.suggestions(state["k"])
        if index < len(suggestions):
            buffer.cursor_position = len(buffer.text)
            buffer.delete_before_cursor(len(buffer.text) - _partial_word_start(buffer.text))
            buffer.insert_text(suggestions[index][0] + " ")

    bindings.add("tab")(lambda event: accept(event, 0))
    # Ctrl-D leaves even when the line holds text (prompt_toolkit's own Ctrl-D deletes a character then).
    bindings.add("c-d")(lambda event: event.app.exit(exception=EOFError()))
    for digit in range(1, 10):
        bindings.add("escape", str(digit))(lambda event, i=digit - 1: accept(event, i))

    def strip() -> str:
        text = session.default_buffer.text
        command = _COMMAND.search(text)
        context.update(text[: command.start()] if command else text)
        labels = [f"{i}:{w} {p:.0%}" for i, (w, p) in enumerate(context.suggestions(state["k"]), 1)]
        return " next: " + ("  ".join(labels) or "(no suggestion)") + "   [Tab accepts 1, Alt-N accepts N, /help]"

    print("Type; suggestions update as you go. /help for commands, Ctrl-D to leave.")
    document = ""
    while True:
        try:
            text = clean_text(session.prompt("> ", default=document, bottom_toolbar=strip, key_bindings=bindings))
        except (KeyboardInterrupt, EOFError):
            print()
            return 0
        command = _COMMAND.search(text)
        document = text[: command.start()].rstrip() + " " if command else text
        if command is None:
            continue
        name, arguments = command.group(1), command.group(2)
        try:
            if name == "quit":
                return 0
            if name == "help":
                print(HELP)
            elif name == "clear":
                document = ""
            elif name == "k":
                state["k"] = replace(config, k=int(arguments.strip() or "3")).k
            elif name == "seed":
                state["seed"] = int(arguments.strip()) if arguments.strip() else None
            elif name == "more":
                count, rule = parse_more(arguments)
                context.update(document)
                words = context.continue_text(count, rule, state["seed"]).words
                print("... " + " ".join(words))
                document = document + " ".join(words) + " "
        except (PromptError, ValueError) as error:
            print(f"? {error}")


def tiny_untrained_model(seed: int = 0) -> tuple[Decoder, WordTokenizer]:
    """An untrained tiny model over a 40-word vocabulary: for --dry-run and tests (no data, no training)."""
    import keras

    from nlp_lstm.nextword.config import NextWordModelConfig
    from nlp_lstm.nextword.model import build_nextword_model

    words = ("the a movie film was is and of to it this great good bad really not very story acting plot "
             "i me you he she they we but so just one two time way best worst ever seen love hate").split()  # fmt: skip
    vocabulary = ["", "[UNK]", "[BOS]", *words]
    keras.utils.set_random_seed(seed)  # the same untrained weights every time
    model = build_nextword_model(NextWordModelConfig(len(vocabulary), 8, 8, seed=seed))
    return Decoder(model, vocabulary), WordTokenizer(vocabulary)


def load_prompt_model(model_dir: str) -> tuple[Decoder, WordTokenizer]:
    """The decoder and tokenizer of a model folder (ModelFolderError if it is not a usable one)."""
    from nlp_lstm.nextword.model import load_nextword_folder

    loaded = load_nextword_folder(model_dir)
    return Decoder(loaded.model, loaded.vocabulary), WordTokenizer(loaded.vocabulary)
