"""This machine's prefill and decode speed, a running average over finished chat answers.

Kept in the settings file (QSettings group "measured") so that a summary's plan estimates its
time from what this Mac really does, also after a restart.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSettings

GROUP = "measured"
MIN_PREFILL_TOKENS = 64  # a shorter prompt's time is mostly overhead, not prefill speed
MIN_GENERATED_TOKENS = 8


def running_average(old: float, new: float, weight: float = 0.3) -> float:
    """An exponential running average; the first measurement is taken as it is."""
    if new <= 0:
        return old
    return new if old <= 0 else old + weight * (new - old)


class MeasuredRates:
    def __init__(self, qsettings: QSettings) -> None:
        self._qs = qsettings

    def get(self) -> tuple[float, float]:
        """(prefill tok/s, decode tok/s); 0.0 where nothing was measured yet."""
        return self._read("prefill_tps"), self._read("decode_tps")

    def set(self, prefill_tps: float, decode_tps: float) -> None:
        self._qs.setValue(f"{GROUP}/prefill_tps", float(prefill_tps))
        self._qs.setValue(f"{GROUP}/decode_tps", float(decode_tps))

    def add(self, stats: Any) -> tuple[float, float]:
        """Fold one answer's GenerationStats in (too-short answers say little: skipped)."""
        prefill, decode = self.get()
        if getattr(stats, "prefilled_tokens", 0) >= MIN_PREFILL_TOKENS:
            prefill = running_average(prefill, float(getattr(stats, "prefill_tps", 0.0)))
        if getattr(stats, "generated_tokens", 0) >= MIN_GENERATED_TOKENS:
            decode = running_average(decode, float(getattr(stats, "decode_tps", 0.0)))
        self.set(prefill, decode)
        return prefill, decode

    def _read(self, key: str) -> float:
        try:
            return max(0.0, float(self._qs.value(f"{GROUP}/{key}", 0.0) or 0.0))
        except (TypeError, ValueError):
            return 0.0
