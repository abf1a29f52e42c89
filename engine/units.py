"""Human-readable sizes and durations, for messages and progress lines."""

from __future__ import annotations


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def duration(seconds: float) -> str:
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def long_duration(seconds: float) -> str:
    """'45 s', '3 min 20 s', '1 h 05 min': for progress lines people read."""
    s = max(0, round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def eta(seconds: float) -> str:
    """'~40 s', '~3 min', '~1 h 5 min': a rough time left; '' when unknown (negative)."""
    if seconds < 0:
        return ""
    if seconds < 60:
        return f"~{max(1, round(seconds))} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"~{minutes} min"
    return f"~{minutes // 60} h {minutes % 60} min"
