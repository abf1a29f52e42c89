"""Request fields both dialects share: numbers in range, stop strings, message contents."""

from __future__ import annotations

from typing import Any, Literal, overload

from engine.backend import Message
from engine.sampling import SamplingSettings
from engine.serve.errors import ApiError

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


# integer=True returns an int (bools refused), so callers pass it on without casts.
@overload
def number(
    data: dict[str, Any], key: str, lo: float, hi: float, integer: Literal[True]
) -> int | None: ...
@overload
def number(
    data: dict[str, Any], key: str, lo: float, hi: float, integer: bool = False
) -> float | int | None: ...
def number(
    data: dict[str, Any], key: str, lo: float, hi: float, integer: bool = False
) -> float | int | None:
    value = data.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise ApiError(400, f"{key} must be {kind} in {lo}..{hi}", code="invalid_value", param=key)
    return value


def stop_strings(value: Any, key: str = "stop") -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list) and all(isinstance(s, str) for s in value) and len(value) <= 16:
        return tuple(s for s in value if s)
    raise ApiError(400, f"{key} must be a string or a list of up to 16 strings", param=key)


def sampling_of(fields: dict[str, Any], seed_max: int) -> SamplingSettings:
    """The sampling fields both dialects name alike (OpenAI's body, Ollama's options); unset
    ones keep SamplingSettings' defaults, a top_p of 0 too."""
    base = SamplingSettings()
    temperature = number(fields, "temperature", 0, 2)
    top_p = number(fields, "top_p", 0, 1)
    return SamplingSettings(
        temperature=base.temperature if temperature is None else float(temperature),
        top_p=base.top_p if not top_p else float(top_p),
        seed=number(fields, "seed", -(2**63), seed_max, integer=True),
        stop=stop_strings(fields.get("stop")),
        presence_penalty=number(fields, "presence_penalty", -2, 2),
        frequency_penalty=number(fields, "frequency_penalty", -2, 2),
    )


def text_of(content: Any, where: str) -> str:
    """A message's text: a string, or OpenAI's list of {"type": "text"} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ApiError(400, f"{where}: only text content is supported, not {kind!r}")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ApiError(400, f"{where}: content must be a string or a list of text parts")


def chat_messages(value: Any, unsupported: tuple[str, ...] = ()) -> tuple[Message, ...]:
    """The chat as frozen Messages; empty assistant turns (tool calls) are dropped."""
    if not isinstance(value, list) or not value:
        raise ApiError(400, "messages must be a non-empty list", param="messages")
    messages = []
    for i, m in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise ApiError(400, f"{where} must be an object", param="messages")
        role = ROLES.get(m.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise ApiError(
                400, f"{where}: role {m.get('role')!r} is not supported", param="messages"
            )
        for key in unsupported:
            if m.get(key):
                raise ApiError(400, f"{where}: {key} are not supported", param="messages")
        text = text_of(m.get("content"), where)
        if role == "assistant" and not text.strip():
            continue
        messages.append(Message(role, text))
    if not any(m.role == "user" for m in messages):
        raise ApiError(400, "messages must include a user message", param="messages")
    return tuple(messages)
