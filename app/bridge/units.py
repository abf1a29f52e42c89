"""The engine's formatters for sizes, durations and times left (engine.units), for the views:
one implementation, reached through the bridge because only app/bridge imports engine."""

from __future__ import annotations

from engine.units import eta as eta_text
from engine.units import long_duration as format_duration
from engine.units import size as format_size

__all__ = ["eta_text", "format_duration", "format_size"]
