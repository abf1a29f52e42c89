"""Honest token budgets for a remote model (issue 14, item 3; DESIGN rule 6).

For Nemo the counts are exact: our own Tekken tokenizer. For another model they are Tekken counts
scaled up conservatively until the server's usage numbers arrive, then calibrated from them. The
counter has the TekkenTokenizer methods the budgets and the summary planner use, so num_ctx,
overflow and summary planning work unchanged on either backend.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from engine.session import fit_chat
from engine.tokenizer import TekkenTokenizer

log = logging.getLogger(__name__)

PAD = -1  # a stand-in token: counts, but has no bytes
FIRST_GUESS = 1.6  # unknown tokenizer: ~ UTF-8 bytes / 2.6 for English, before any usage arrives
_MIN_SAMPLE = 64  # shorter prompts say more about the chat template than about the tokenizer
_MARGIN = 1.05
_WINDOW = 8


class BudgetCounter:
    """Exact (Tekken) or conservative token counts; calibrated by `observe()` (engine thread)."""

    def __init__(self, tekken: TekkenTokenizer, exact: bool):
        self.tekken = tekken
        self.exact = exact
        self.factor = 1.0 if exact else FIRST_GUESS
        self.overhead = 0  # template tokens a chat costs beyond the factor's estimate
        self._seen: deque[tuple[int, int]] = deque(maxlen=_WINDOW)

    def _scaled(self, ids: list[int], extra: int = 0) -> list[int]:
        if self.factor == 1.0 and not extra:
            return ids
        out: list[int] = []
        for i, token in enumerate(ids):
            out.append(token)
            out.extend([PAD] * (math.ceil((i + 1) * self.factor) - len(out)))
        return out + [PAD] * extra

    # --- the TekkenTokenizer surface that budgets and summary planning use ---

    def encode(self, text: str) -> list[int]:
        return self._scaled(self.tekken.encode(text))

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def encode_chat(self, messages: Sequence[Mapping]) -> list[int]:
        return self._scaled(self.tekken.encode_chat(messages), self.overhead)

    def count_chat(self, messages: Sequence[Mapping]) -> int:
        return len(self.encode_chat(messages))

    def token_bytes(self, token_id: int) -> bytes:
        return b"" if token_id == PAD else self.tekken.token_bytes(token_id)

    def decode(self, ids: Iterable[int]) -> str:
        return self.tekken.decode(t for t in ids if t != PAD)

    # --- calibration ---

    def observe(self, messages: Sequence[Mapping], server_prompt_tokens: int) -> None:
        """The server's usage for a prompt we sent: keep exact counts honest, calibrate estimates."""
        ours = len(self.tekken.encode_chat(messages))
        if server_prompt_tokens <= 0 or ours <= 0:
            return
        if self.exact:
            if abs(server_prompt_tokens - ours) <= max(2, ours // 50):
                return
            log.warning(
                "the server counted %d prompt tokens where Tekken counts %d: estimating from now on",
                server_prompt_tokens,
                ours,
            )
            self.exact = False
        self._seen.append((ours, server_prompt_tokens))
        ratios = [theirs / mine for mine, theirs in self._seen if mine >= _MIN_SAMPLE]
        if ratios:
            self.factor = min(max(max(ratios) * _MARGIN, 0.5), 8.0)
        excess = max(theirs - math.ceil(mine * self.factor) for mine, theirs in self._seen)
        self.overhead = min(max(excess, 0), 1024)


def fit_messages(
    messages: list[dict[str, str]], counter: BudgetCounter, num_ctx: int, max_tokens: int
) -> tuple[list[dict[str, str]], int, int]:
    """The messages to send, how many were left out, and the prompt's token count.

    engine.session.fit_chat with these counts, stateless: whole exchanges go, oldest first, down
    to three quarters of the budget, which keeps the prefix stable for the server's prompt cache.
    Raises ContextOverflow when the newest exchange alone cannot fit.
    """
    ids, kept, dropped, _ = fit_chat(messages, counter.encode_chat, num_ctx, max_tokens)
    return kept, dropped, len(ids)
