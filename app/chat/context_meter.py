"""The context meter and the "left out" divider, always current (issue 17 #6; DESIGN rule 6).

`estimate_context` is pure: the conversation as app.chat.prompt builds it, fitted to num_ctx
the way the engine fits a chat it has not seen this session (engine.session.ChatSession.fit:
whole exchanges go, oldest first, down to a quarter of num_ctx under the budget, the system
prompt and the newest message stay). `ContextMeter` recomputes it whenever the chat, the
settings or the model change, and shows it in the status bar and in the transcript.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from app.chat.prompt import build_prompt, prompt_budget
from app.store.store import Message

if TYPE_CHECKING:
    from app.chat.chat_parts import ChatParts

CountChat = Callable[[Sequence[Mapping[str, str]]], int]
NEXT_QUESTION = {"role": "user", "content": ""}  # a chat is counted as the next send sees it


@dataclass(frozen=True)
class ContextEstimate:
    used: int  # prompt tokens the model reads
    num_ctx: int
    left_out: int  # earlier messages the model does not see
    first_seen_id: int | None  # the stored message the divider goes above (None: all seen)


def seen_messages(history: Sequence[Message], budget: int | None = None) -> list[tuple[Any, dict]]:
    """The stored messages that reach the model, each with its prompt message, in order."""
    out = []
    for m in history:
        built = build_prompt(None, [m], budget)  # the builder's own filter: failed, empty
        if built:
            out.append((m, built[0]))
    return out


def _exchanges(messages: list[dict]) -> list[list[dict]]:
    # As engine.session.split_exchanges: each exchange starts with a user message.
    groups: list[list[dict]] = []
    for m in messages:
        if m["role"] == "user" or not groups:
            groups.append([])
        groups[-1].append(m)
    return groups


def estimate_context(
    system_prompt: str | None,
    history: Sequence[Message],
    num_ctx: int,
    max_tokens: int,
    count_chat: CountChat,
) -> ContextEstimate:
    """What the model would read if the chat went on now: tokens, and what is left out."""
    budget = prompt_budget(num_ctx, max_tokens)
    seen = seen_messages(history, budget)
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    prompt = [p for _m, p in seen]
    if not prompt:
        return ContextEstimate(count_chat(system) if system else 0, num_ctx, 0, None)
    if prompt[-1]["role"] != "user":
        prompt.append(dict(NEXT_QUESTION))
    groups = _exchanges(prompt)

    def count(skip: int) -> int:
        return count_chat(system + [m for g in groups[skip:] for m in g])

    used, skip = count(0), 0
    if used > budget and len(groups) > 1 and count(len(groups) - 1) <= budget:
        # The fewest exchanges left out that bring the prompt to the target (counts fall as
        # exchanges go): a bisection, so a long chat costs a few counts, not one per exchange.
        target = budget - num_ctx // 4
        lo, hi = 1, len(groups) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if count(mid) <= target:
                hi = mid
            else:
                lo = mid + 1
        skip, used = lo, count(lo)
    elif used > budget:  # the newest exchange alone is too long: the send will say so
        skip = len(groups) - 1
        used = count(skip)
    left_out = sum(len(g) for g in groups[:skip])
    first = seen[left_out][0].id if left_out and left_out < len(seen) else None
    return ContextEstimate(used, num_ctx, left_out, first)


def first_seen_id(history: Sequence[Message], left_out: int) -> int | None:
    """The stored message the model reads first when `left_out` prompt messages were dropped
    (the engine's ContextTrimmed count)."""
    seen = seen_messages(history)
    return seen[left_out][0].id if 0 < left_out < len(seen) else None


class ContextMeter(QObject):
    """Keeps the window's meter and the transcript's divider current."""

    def __init__(self, parts: ChatParts, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.parts = parts
        self._engine_left_out: dict[int, int] = {}  # the last answer's trim, per conversation
        # Bound methods, not lambdas: Qt drops them with this object (the controller lives on).
        parts.chat_view.conversationShown.connect(self._on_shown)
        parts.controller.modelLoaded.connect(self._on_model)

    def _on_shown(self, _conversation_id: object) -> None:
        self.refresh()

    def settings_changed(self, _settings: object) -> None:
        """New settings (num_ctx, system prompt): the engine's last trim no longer applies."""
        self.refresh(forget_trim=True)

    def _on_model(self, _info: object) -> None:
        self.refresh()

    def estimate(self, conversation_id: int | None) -> ContextEstimate:
        w, s = self.parts, self.parts.settings()
        if conversation_id is None:
            return ContextEstimate(0, s.num_ctx, 0, None)
        conv = w.store.get_conversation(conversation_id)
        history = w.store.messages(conversation_id)
        system = conv.system_prompt or s.system_prompt
        return estimate_context(system, history, s.num_ctx, s.max_tokens, self._count)

    def refresh(self, forget_trim: bool = False) -> None:
        """Recompute for the open chat: the meter's tokens, the divider's place."""
        w = self.parts
        if forget_trim:
            self._engine_left_out.clear()
        cid = w.current_id()
        try:
            e = self.estimate(cid)
        except Exception:  # noqa: BLE001 - a meter never breaks the window (e.g. a deleted chat)
            e = ContextEstimate(0, w.settings().num_ctx, 0, None)
        first, left_out = e.first_seen_id, e.left_out
        trimmed = self._engine_left_out.get(cid) if cid is not None else None
        if cid is not None and trimmed:  # this session's engine said so for the last answer:
            first, left_out = first_seen_id(w.store.messages(cid), trimmed), trimmed  # read
        w.status.set_context(e.used, e.num_ctx, left_out)
        w.status.set_trimmed(left_out)
        w.chat_view.set_left_out(first, left_out)

    def answer_started(self, conversation_id: int | None) -> None:
        """A new answer: the engine will say again what it leaves out."""
        if conversation_id is not None:
            self._engine_left_out.pop(conversation_id, None)

    def engine_trimmed(self, conversation_id: int | None, dropped: int) -> None:
        """The engine left `dropped` messages out of an answer in `conversation_id`."""
        if conversation_id is None:
            return
        self._engine_left_out[conversation_id] = dropped
        w = self.parts
        if conversation_id == w.current_id():
            w.status.set_trimmed(dropped)
            messages = w.store.messages(conversation_id)
            w.chat_view.set_left_out(first_seen_id(messages, dropped), dropped)

    def _count(self, messages: Sequence[Mapping[str, str]]) -> int:
        c = self.parts.controller
        try:
            return c.count_chat_tokens(messages)
        except RuntimeError:  # no model loaded yet: Nemo's own Tekken counts the same
            return len(c.document_tokenizer().encode_chat([dict(m) for m in messages]))
