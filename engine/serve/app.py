"""The ASGI app: both dialects' routes behind the guard (Host, Origin, key, body size).

DESIGN rule 9: a web page the user visits must not reach the model. A foreign Host header means
DNS rebinding, a foreign Origin a browser page calling; both are refused before any route runs.
"""

from __future__ import annotations

import hmac

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from engine.serve import ollama, openai
from engine.serve.config import LOOPBACK_NAMES, ApiConfig, is_wildcard
from engine.serve.errors import ApiError, dialect_of
from engine.serve.exchange import send_error
from engine.serve.state import ApiState
from engine.service import EngineService


def host_name(host: str) -> str:
    """ "127.0.0.1:11435" -> "127.0.0.1", "[::1]:80" -> "::1"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Guard:
    """Refuses, before any route: a foreign Host (403), a foreign Origin (403), a missing or
    wrong key (401), a declared body over the limit (413). Bodies sent without a length are
    counted as they are read (engine.serve.exchange.read_json)."""

    def __init__(self, app: ASGIApp, state: ApiState):
        self.app, self.state = app, state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = self.refusal(scope, Headers(scope=scope))
            if error is not None:
                return await send_error(send, error, dialect_of(scope["path"]))
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope, headers: Headers) -> ApiError | None:
        config: ApiConfig = self.state.config
        host = host_name(headers.get("host", ""))
        bound = config.host.strip("[]").lower()
        if not is_wildcard(bound) and host not in LOOPBACK_NAMES | {bound}:
            return ApiError(403, f"Host {host!r} is not this server.", code="forbidden_host")
        origin = headers.get("origin")
        allowed = config.allowed_origins
        if origin is not None and "*" not in allowed and origin not in allowed:
            return ApiError(
                403,
                f"Origin {origin!r} may not call this server; allow it in the settings.",
                code="forbidden_origin",
            )
        if config.api_key and scope["method"] != "OPTIONS" and not _key_ok(headers, config.api_key):
            return ApiError(401, "Missing or wrong API key.", code="invalid_api_key")
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            return ApiError(
                413,
                f"The request body is over {config.max_body_bytes:,} bytes.",
                code="body_too_large",
            )
        return None


def _key_ok(headers: Headers, key: str) -> bool:
    auth = headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
    return hmac.compare_digest(given.encode(), key.encode())


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body(dialect_of(request.url.path)), status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    message = "Not found." if exc.status_code == 404 else str(exc.detail)
    error = ApiError(exc.status_code, f"{message} ({request.method} {request.url.path})")
    return JSONResponse(error.body(dialect_of(request.url.path)), status_code=exc.status_code)


async def _root(request: Request) -> JSONResponse:
    return JSONResponse(
        {"status": "Nemo Chat local API", "model": request.app.state.api.model_name}
    )


def build_app(service: EngineService, config: ApiConfig) -> Starlette:
    """The app for `service`; `app.state.api` is its ApiState (settings, jobs)."""
    from starlette.routing import Route

    state = ApiState(service, config)
    middleware = [Middleware(Guard, state=state)]
    if config.allowed_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.allowed_origins),
                allow_methods=["GET", "POST", "OPTIONS"],
                allow_headers=["*"],
            )
        )
    app = Starlette(
        routes=[Route("/", _root, methods=["GET"]), *openai.routes(), *ollama.routes()],
        middleware=middleware,
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},
    )
    app.state.api = state
    return app
