"""This machine's prefill and decode speed, a running average over finished chat answers.

Kept in the settings file (QSettings group "measured") so that a summary's plan estimates its
time from what this Mac really does, also after a restart.
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QSettings

GROUP = "measured"
MIN_PREFILL_TOKENS = 64  # a shorter prompt's time is mostly overhead, not prefill speed
MIN_GENERATED_TOKENS = 8


def running_average(old: float, new: float, weight: float = 0.3) -> float:
    """An exponential running average; the first measurement is taken as it is."""
    if new <= 0:
        return old
    return new if old <= 0 else old + weight * (new - old)


class Measured(Protocol):
    """What an answer's stats say about speed (engine.events.GenerationStats has it)."""

    @property
    def prefilled_tokens(self) -> int: ...
    @property
    def prefill_tps(self) -> float: ...
    @property
    def generated_tokens(self) -> int: ...
    @property
    def decode_tps(self) -> float: ...


class MeasuredRates:
    def __init__(self, qsettings: QSettings) -> None:
        self._qs = qsettings

    def get(self) -> tuple[float, float]:
        """(prefill tok/s, decode tok/s); 0.0 where nothing was measured yet."""
        return self._read("prefill_tps"), self._read("decode_tps")

    def set(self, prefill_tps: float, decode_tps: float) -> None:
        self._qs.setValue(f"{GROUP}/prefill_tps", float(prefill_tps))
        self._qs.setValue(f"{GROUP}/decode_tps", float(decode_tps))

    def add(self, stats: Measured) -> tuple[float, float]:
        """Fold one answer's GenerationStats in (too-short answers say little: skipped)."""
        prefill, decode = self.get()
        if stats.prefilled_tokens >= MIN_PREFILL_TOKENS:
            prefill = running_average(prefill, float(stats.prefill_tps))
        if stats.generated_tokens >= MIN_GENERATED_TOKENS:
            decode = running_average(decode, float(stats.decode_tps))
        self.set(prefill, decode)
        return prefill, decode

    def _read(self, key: str) -> float:
        try:
            value = self._qs.value(f"{GROUP}/{key}", 0.0)  # a str from an INI file
            return max(0.0, float(str(value or 0.0)))
        except (TypeError, ValueError):
            return 0.0
