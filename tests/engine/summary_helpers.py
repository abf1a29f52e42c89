"""Stand-ins for the long-document tests: deterministic model calls (single and batched)."""

from __future__ import annotations

import re

from engine.docs.ask import NOTHING
from engine.events import Finished, GenerationStats, TextChunk
from tests.engine.test_summarize import MARKER

FACT = re.compile(r"FACT-\d+ [^.]*\.")


def stats(generated: int, reason: str = "stop") -> GenerationStats:
    return GenerationStats(0, 0, 0, generated, 0.0, 0.0, 0.0, 0, reason)


def answer(tok, content: str, max_tokens: int, fill: float = 0.0) -> str:
    """Echo the marker sentences in the prompt (plus filler); for a question, the facts with the
    page they sit on, else NOTHING RELEVANT."""
    if "Question:" in content and "<part>" in content:
        found = []
        for m in FACT.finditer(content):
            pages = re.findall(r"^\[page (\d+)\]$", content[: m.start()], re.M)
            found.append(f"{m.group(0)} [page {pages[-1]}]" if pages else m.group(0))
        return " ".join(found) or NOTHING
    if "findings on the question" in content:
        return " ".join(dict.fromkeys(re.findall(r"FACT-\d+ [^.]*\. \[page \d+\]", content)))
    text = " ".join(dict.fromkeys(MARKER.findall(content)))
    room = int(fill * max_tokens) - tok.count_tokens(text) - 2
    return (text + " filler" * max(room, 0)).strip() or "nothing"


class Model:
    """generate_fn: records each call's messages; ends each answer with Finished."""

    def __init__(self, tok, fill: float = 0.0, on_call=None):
        self.tok, self.fill, self.on_call = tok, fill, on_call
        self.calls: list[str] = []

    def __call__(self, messages, max_tokens, cancel):
        content = messages[-1]["content"]
        self.calls.append(content)
        if self.on_call:
            self.on_call(len(self.calls))
        text = answer(self.tok, content, max_tokens, self.fill)
        yield TextChunk(text)
        yield Finished(stats(self.tok.count_tokens(text)))


class Batched:
    """A BatchFn over the same answers, interleaved like a batch: every sequence one chunk a
    step, so parts finish out of order (shorter answers first)."""

    def __init__(self, tok, size: int = 4, fill: float = 0.0, on_done=None):
        self.tok, self.size, self.fill, self.on_done = tok, size, fill, on_done
        self.calls: list[str] = []
        self.sizes: list[int] = []

    def batch_size(self, ctx_tokens: int) -> int:
        return self.size

    def __call__(self, prompts, max_tokens, cancel, batch_size):
        self.sizes.append(batch_size)
        pending = list(enumerate(prompts))
        active: list[tuple[int, list[str]]] = []
        done = 0
        while pending or active:
            if cancel is not None and cancel.is_set():
                for i, _ in active:
                    yield i, Finished(stats(1, "cancelled"))
                return
            while pending and len(active) < batch_size:
                i, messages = pending.pop(0)
                content = messages[-1]["content"]
                self.calls.append(content)
                words = answer(self.tok, content, max_tokens, self.fill).split(" ")
                active.append((i, [w + " " for w in words[:-1]] + words[-1:]))
            for i, words in list(active):
                yield i, TextChunk(words.pop(0))
                if not words:
                    active.remove((i, words))
                    done += 1
                    yield i, Finished(stats(3))
                    if self.on_done:
                        self.on_done(done)
