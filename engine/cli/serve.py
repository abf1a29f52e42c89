"""`nemo serve`: the local API without the window, until Ctrl+C.

OpenAI clients use http://127.0.0.1:11435/v1, Ollama clients http://127.0.0.1:11435. Ctrl+C
stops the API jobs, then the engine thread writes its cache snapshots and frees the model.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from engine.serve.config import DEFAULT_PORT, ApiConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the model over OpenAI- and Ollama-compatible HTTP")
    p.add_argument("--model", required=True, help="model folder (HF or MLX 4-bit)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    p.add_argument(
        "--api-key",
        default=os.environ.get("NEMO_API_KEY"),
        help="require this key as 'Authorization: Bearer KEY' (env NEMO_API_KEY)",
    )
    p.add_argument("--num-ctx", type=int, default=8192)
    p.add_argument("--kv-bits", type=int, choices=(4, 8), default=None)
    p.add_argument(
        "--allow-origin", action="append", default=[], help="a browser Origin allowed to call"
    )
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.jobs import JobFailed
    from engine.serve import ApiServer
    from engine.service import EngineService

    config = ApiConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        allowed_origins=tuple(args.allow_origin),
        num_ctx=args.num_ctx,
        kv_bits=args.kv_bits,
    )
    config.check()  # before loading 7 GB of weights
    service = EngineService()
    try:
        print(f"loading {args.model} …", file=sys.stderr)
        outcome = service.load(args.model).wait()
        if isinstance(outcome, JobFailed):
            print(f"nemo serve: {outcome.message}", file=sys.stderr)
            return 1
        server = ApiServer(service, config).start()
        print(f"serving {server.model_name} at {server.base_url}", flush=True)
        print("OpenAI clients: base_url above; Ollama clients: without /v1. Ctrl+C stops.")
        _wait_for_interrupt()
        print("\nstopping …", file=sys.stderr)
        server.stop()
    finally:
        clean = service.shutdown()  # the engine thread writes cache snapshots, frees the model
    return 0 if clean else 1


def _wait_for_interrupt() -> None:
    """Block until Ctrl+C or SIGTERM."""
    done = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
