"""The CLI's one way to get a Backend: a local model folder, or `--server URL` (issue 14, item 6).

    add_backend_args(parser)          # --model, --server, --api-key
    backend = backend_from_args(args) # LocalBackend.load(DIR) or RemoteBackend.connect(...)

With --server, --model names the server's model (default: the one it serves); without it,
--model is the local model folder.
"""

from __future__ import annotations

import argparse
import os

from engine.backend import Backend

API_KEY_ENV = "NEMO_REMOTE_API_KEY"


def add_backend_args(parser: argparse.ArgumentParser, model_help: str | None = None) -> None:
    parser.add_argument(
        "--model",
        metavar="DIR|NAME",
        help=model_help or "model folder (HF or MLX 4-bit); with --server, the server's model name",
    )
    parser.add_argument(
        "--server",
        metavar="URL",
        help="an OpenAI-compatible server to run the model (vLLM, Ollama, LM Studio, "
        "mlx_lm.server, nemo serve), e.g. http://mac-studio.local:8080",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        default=None,
        help=f"the server's API key (default: ${API_KEY_ENV})",
    )
    parser.add_argument(
        "--read-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="with --server: the longest silence allowed while the server answers",
    )


def remote_config(args: argparse.Namespace):  # -> engine.remote.RemoteConfig
    from engine.remote import RemoteConfig

    return RemoteConfig(
        args.server,
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        model=args.model or None,
        read_timeout=getattr(args, "read_timeout", 300.0),
    )


def backend_from_args(args: argparse.Namespace, default_model: str | None = None) -> Backend:
    """The backend the arguments name; raises ValueError when they name none, RemoteError when
    the server cannot be used, the loaders' errors for a bad folder."""
    if getattr(args, "server", None):
        from engine.remote import RemoteBackend

        return RemoteBackend.connect(remote_config(args))
    model = args.model or default_model
    if not model:
        raise ValueError("no model: pass --model DIR (a model folder) or --server URL")
    from engine.local_backend import LocalBackend

    return LocalBackend.load(model)
