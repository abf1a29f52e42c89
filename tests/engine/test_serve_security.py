"""The local API's guard: key, Host, Origin, body limit, malformed JSON, unknown routes."""

from __future__ import annotations

import httpx
import ollama
import openai
import pytest

from engine.serve import ApiConfig, ApiServer
from tests.engine.serve_support import api_fixture

KEY = "s3cret-key"
ORIGIN = "http://allowed.example"
LIMIT = 4096


api = api_fixture(api_key=KEY, allowed_origins=(ORIGIN,), max_body_bytes=LIMIT)


@pytest.fixture
def http(api):
    root = api.base_url.removesuffix("/v1")
    with httpx.Client(base_url=root, headers={"Authorization": f"Bearer {KEY}"}, timeout=60) as c:
        yield c


def test_the_key_is_required_and_checked(api):
    with openai.OpenAI(base_url=api.base_url, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    with openai.OpenAI(base_url=api.base_url, api_key=KEY, max_retries=0) as good:
        assert [m.id for m in good.models.list()] == [api.model_name]
    root = api.base_url.removesuffix("/v1")
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=root).list()
    assert e.value.status_code == 401
    keyed = ollama.Client(host=root, headers={"Authorization": f"Bearer {KEY}"})
    assert [m.model for m in keyed.list().models] == [api.model_name]


def test_a_foreign_host_header_is_refused(http):
    assert http.get("/v1/models", headers={"Host": "evil.example:11435"}).status_code == 403
    assert http.get("/v1/models", headers={"Host": "localhost:11435"}).status_code == 200


def test_a_foreign_origin_is_refused_and_an_allowed_one_gets_cors(http):
    r = http.get("/api/tags", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and isinstance(r.json()["error"], str)
    r = http.get("/v1/models", headers={"Origin": ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    preflight = http.options(
        "/v1/chat/completions",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200


def test_a_body_over_the_limit_is_413_with_or_without_a_length(http):
    big = b'{"messages": "' + b"x" * (2 * LIMIT) + b'"}'
    r = http.post("/v1/chat/completions", content=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

    def chunks():  # chunked transfer: no Content-Length to check up front
        for _ in range(64):
            yield b" " * 1024

    r = http.post("/api/chat", content=chunks())
    assert r.status_code == 413 and isinstance(r.json()["error"], str)


def test_malformed_json_is_400_in_each_dialects_shape(http):
    r = http.post("/v1/chat/completions", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    r = http.post("/api/chat", content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    r = http.post("/v1/chat/completions", json={"model": "mistral-nemo", "messages": []})
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages"


def test_unknown_routes_are_404(http):
    r = http.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    r = http.get("/api/nothing")
    assert r.status_code == 404 and isinstance(r.json()["error"], str)


def test_a_public_address_needs_a_key(tiny_engine):
    with pytest.raises(ValueError, match="API key"):
        ApiConfig(host="0.0.0.0").check()
    ApiConfig(host="0.0.0.0", api_key="k").check()
    ApiConfig(host="127.0.0.1").check()


def test_a_taken_port_is_an_error_at_start(api):
    with pytest.raises(OSError):
        ApiServer(api.service, ApiConfig(port=api.port)).start()
