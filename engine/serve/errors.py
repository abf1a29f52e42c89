"""API errors and their two shapes: OpenAI's {"error": {...}} and Ollama's {"error": "..."}."""

from __future__ import annotations

from typing import Any, Literal

from engine.jobs import JobFailed

Dialect = Literal["openai", "ollama"]

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    503: "service_unavailable",
}


class ApiError(Exception):
    """A request that gets an error status instead of an answer."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        **extra: Any,
    ):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param
        self.extra = extra

    def body(self, dialect: Dialect) -> dict[str, Any]:
        if dialect == "ollama":
            return {"error": self.message, **self.extra}
        error = {
            "message": self.message,
            "type": _TYPES.get(self.status, "server_error"),
            "param": self.param,
            "code": self.code,
            **self.extra,
        }
        return {"error": error}


def dialect_of(path: str) -> Dialect:
    """Ollama's routes live under /api/; everything else answers in OpenAI's shape."""
    return "ollama" if path == "/api" or path.startswith("/api/") else "openai"


def error_of_failure(failure: JobFailed, max_tokens: int | None = None) -> ApiError:
    """The HTTP error for a job that failed on the engine thread."""
    if failure.kind == "overflow":
        room = f" plus {max_tokens:,} for the answer" if max_tokens else ""
        return ApiError(
            400,
            f"This model's context (num_ctx) is {failure.num_ctx:,} tokens, but the request "
            f"needs {failure.prompt_tokens:,} tokens{room}. Shorten the messages or raise num_ctx.",
            code="context_length_exceeded",
            param="messages",
            prompt_tokens=failure.prompt_tokens,
            num_ctx=failure.num_ctx,
        )
    if failure.kind == "invalid":
        return ApiError(400, failure.message, code="invalid_request")
    if failure.kind == "no_model":
        return ApiError(503, failure.message, code="model_not_loaded")
    return ApiError(500, failure.message, code="internal_error")
