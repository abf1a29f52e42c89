"""Stop sequences over streamed text: hold back what could still become a stop string.

The decoder emits text piece by piece; a stop string may arrive split across pieces, so the
tail that is a prefix of some stop string is held until the next piece settles it.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopStrings:
    """Feed text with add(); it returns what is safe to show. `hit` turns True at a stop string,
    after which the text from the stop string on is dropped."""

    def __init__(self, stops: Iterable[str] = ()):
        self.stops = tuple(s for s in stops if s)
        self.hit = False
        self._held = ""

    def add(self, text: str) -> str:
        if not self.stops or self.hit:
            return "" if self.hit else text
        held = self._held + text
        # Everything before _held was shown and cannot start a match, so a match starts in held.
        found = [i for i in (held.find(s) for s in self.stops) if i >= 0]
        if found:
            self.hit, self._held = True, ""
            return held[: min(found)]
        keep = self._partial_tail(held)
        self._held = held[len(held) - keep :] if keep else ""
        return held[: len(held) - keep]

    def flush(self) -> str:
        """The held text at the end of the answer (it never became a stop string)."""
        rest, self._held = self._held, ""
        return "" if self.hit else rest

    def _partial_tail(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of a stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:n]):
                    best = n
                    break
        return best
