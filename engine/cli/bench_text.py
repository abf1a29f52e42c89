"""Deterministic contract-like paragraphs: the text the summarize benchmarks read.

Its own module so bench_summarize and bench_map share it without importing each other.
"""

from __future__ import annotations

_WORDS = (
    "tenant landlord rent deposit notice repair insurance clause schedule term party premises "
    "payment interest default termination assignment liability indemnity warranty"
).split()


def paragraph(n: int) -> str:
    words = " ".join(_WORDS[(n * 7 + k * 3) % len(_WORDS)] for k in range(40))
    return f"{n // 10}.{n % 10} The {words} shall apply from day {n % 365 + 1} at {n * 37} euros."
