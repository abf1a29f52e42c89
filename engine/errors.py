"""Exceptions turned into messages for the user: one mapping for the app, the CLI and the API."""

from __future__ import annotations

import logging

from engine.jobs import JobFailed

log = logging.getLogger(__name__)


class NoModel(RuntimeError):
    """A request arrived while no model (or server) is set up."""

    def __init__(self) -> None:
        super().__init__("No model is loaded: choose a model folder first.")


def failure_of(error: Exception) -> JobFailed:
    """The JobFailed for `error`: the engine's own errors already say what went wrong; anything
    else is a bug report and is logged with its traceback."""
    from engine.config import ConfigError
    from engine.session import ContextOverflow
    from engine.tokenizer import TokenizerError
    from engine.weights import WeightsError

    if isinstance(error, ContextOverflow):
        return JobFailed(str(error), "overflow", error.prompt_tokens, error.num_ctx)
    if isinstance(error, NoModel):
        return JobFailed(str(error), "no_model")
    if isinstance(error, (ConfigError, WeightsError, TokenizerError)):
        return JobFailed(str(error), "load")
    kind = getattr(error, "kind", None)  # RemoteError and DocumentError carry their own kind
    if isinstance(kind, str):
        return JobFailed(str(error), kind)
    if isinstance(error, ValueError):  # a malformed chat, a num_ctx that does not fit memory
        return JobFailed(str(error), "invalid")
    log.warning("engine job failed", exc_info=error)
    return JobFailed(f"Generation failed: {type(error).__name__}: {error}", "error")
