"""The `nemo` command line: generate, chat, convert, pull, summarize, bench."""

from __future__ import annotations

import argparse
import sys
import threading

from engine import ConfigError, WeightsError
from engine.cli import ask as ask_cli
from engine.cli import pull as pull_cli
from engine.cli import serve as serve_cli
from engine.cli import summarize as summarize_cli
from engine.cli.backend_args import add_backend_args
from engine.cli.terminal import print_events, prompts, sampling_from_args
from engine.remote.errors import RemoteError
from engine.session import ContextOverflow
from engine.tokenizer import TokenizerError


def cmd_generate(args: argparse.Namespace) -> None:
    from engine.backend import ChatRequest, GenerationOptions, messages_of
    from engine.cli.backend_args import backend_from_args

    backend = backend_from_args(args)  # a local model folder, or --server URL
    cancel = threading.Event()
    messages = [{"role": "user", "content": args.prompt}]
    if args.system:
        messages.insert(0, {"role": "system", "content": args.system})
    request = ChatRequest(messages_of(messages), GenerationOptions(sampling_from_args(args)))
    print_events(backend.chat(request, cancel), cancel)


def cmd_chat(args: argparse.Namespace) -> None:
    if args.conversation:  # history and KV cache kept across runs
        from engine.cli import chat_conversation

        return chat_conversation.run(args)

    from engine.backend import ChatRequest, GenerationOptions, messages_of
    from engine.cli.backend_args import backend_from_args

    backend = backend_from_args(args)  # a local model folder, or --server URL
    options = GenerationOptions(
        sampling_from_args(args), num_ctx=args.num_ctx, kv_bits=args.kv_bits
    )
    history = [{"role": "system", "content": args.system}] if args.system else []
    print("Nemo chat — an empty line or Ctrl+D quits, Ctrl+C stops an answer.", file=sys.stderr)
    for line in prompts():
        history.append({"role": "user", "content": line})
        cancel = threading.Event()
        request = ChatRequest(messages_of(history), options, key="cli")
        answer = print_events(backend.chat(request, cancel), cancel)
        history.append({"role": "assistant", "content": answer})


def cmd_convert(args: argparse.Namespace) -> None:
    from engine.weights import convert

    def progress(done: int, total: int) -> None:
        print(f"\rquantizing tensor {done}/{total}", end="", file=sys.stderr)

    out = convert(
        args.src, args.dst, bits=args.bits, group_size=args.group_size, on_progress=progress
    )
    print(f"\nwrote {out}", file=sys.stderr)


# `nemo bench NAME ...`: each benchmark is a module engine.cli.bench_NAME with main(argv).
BENCHMARKS = {
    "throughput": "engine.cli.bench",  # the default: ours against mlx-lm on the same weights
    "documents": "engine.cli.bench_documents",
    "summarize": "engine.cli.bench_summarize",
    "cache": "engine.cli.bench_cache",
    "api": "engine.cli.bench_api",
    "remote": "engine.cli.bench_remote",
}


def cmd_bench(args: argparse.Namespace) -> int | None:
    import importlib

    rest = list(args.rest)
    name = rest.pop(0) if rest and rest[0] in BENCHMARKS else "throughput"
    try:
        module = importlib.import_module(BENCHMARKS[name])
    except ModuleNotFoundError as e:
        if e.name != BENCHMARKS[name]:
            raise
        print(f"nemo bench: the {name!r} benchmark is not part of this build", file=sys.stderr)
        return 2
    return module.main(rest)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nemo", description="Mistral Nemo 12B on MLX")
    sub = parser.add_subparsers(dest="command", required=True)

    def sampling(p: argparse.ArgumentParser) -> None:
        add_backend_args(p)  # --model DIR, or --server URL [--api-key K] [--model NAME]
        p.add_argument("--system", default="", help="system prompt")
        p.add_argument("--max-tokens", type=int, default=1024)
        p.add_argument("--temperature", type=float, default=0.3)
        p.add_argument("--top-p", type=float, default=1.0)
        p.add_argument("--repetition-penalty", type=float, default=None)
        p.add_argument("--seed", type=int, default=None)

    p = sub.add_parser("generate", help="answer one prompt")
    sampling(p)
    p.add_argument("--prompt", required=True)
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("chat", help="a terminal chat that keeps history")
    sampling(p)
    p.add_argument("--num-ctx", type=int, default=8192)
    p.add_argument("--kv-bits", type=int, choices=(4, 8), default=None)
    p.add_argument(
        "--conversation", help="a named conversation: history and cache kept across runs"
    )
    p.add_argument("--data-dir", help="folder for conversations and caches (default: the app's)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("convert", help="quantize an HF folder to MLX 4-bit (or 8-bit)")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--bits", type=int, choices=(4, 8), default=4)
    p.add_argument("--group-size", type=int, default=64)
    p.set_defaults(func=cmd_convert)

    pull_cli.add_parser(sub)
    summarize_cli.add_parser(sub)
    ask_cli.add_parser(sub)
    serve_cli.add_parser(sub)

    p = sub.add_parser("bench", help=f"benchmarks: nemo bench [{'|'.join(BENCHMARKS)}] [options]")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args) or 0  # subcommands may return their exit status
    except (
        ConfigError,
        WeightsError,
        TokenizerError,
        ValueError,
        OSError,
        RemoteError,
        ContextOverflow,
    ) as e:
        print(f"nemo: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
