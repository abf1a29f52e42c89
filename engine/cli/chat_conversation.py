"""`nemo chat --conversation NAME`: a named terminal conversation whose history and KV cache
survive across runs (history as a small JSON file, the cache in the app's snapshot store)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
from pathlib import Path

import platformdirs

from engine.cache_settings import APP_NAME, CacheSettings

HISTORY_FOLDER = "conversations"


def data_dir(args: argparse.Namespace) -> Path:
    if args.data_dir:
        return Path(args.data_dir).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_settings(args: argparse.Namespace) -> CacheSettings:
    # --data-dir keeps everything in one folder (tests, portable use); else the app's cache folder.
    return CacheSettings(dir=data_dir(args) / "kv-cache" if args.data_dir else None)


def history_path(args: argparse.Namespace, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name).strip(".") or "_"
    return data_dir(args) / HISTORY_FOLDER / f"{safe}.json"


def load_history(path: Path) -> list[dict[str, str]]:
    try:
        messages = json.loads(path.read_text(encoding="utf-8"))["messages"]
        return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a conversation file ({e})") from e


def save_history(path: Path, name: str, messages: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"name": name, "messages": messages}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> None:
    from engine.backend import ChatRequest, GenerationOptions, messages_of
    from engine.cli.terminal import print_events, prompts, sampling_from_args
    from engine.local_backend import LocalBackend

    name = args.conversation
    path = history_path(args, name)
    history = load_history(path)
    if getattr(args, "server", None):  # the server keeps the cache; the history stays here
        from engine.cli.backend_args import backend_from_args

        backend = backend_from_args(args)
    else:
        backend = LocalBackend.load(args.model, caches=cache_settings(args))
    options = GenerationOptions(
        sampling_from_args(args), num_ctx=args.num_ctx, kv_bits=args.kv_bits
    )
    system = [{"role": "system", "content": args.system}] if args.system else []
    print(
        f"Nemo chat {name!r} ({len(history)} messages so far) — an empty line or Ctrl+D quits, "
        "Ctrl+C stops an answer.",
        file=sys.stderr,
    )
    try:
        for line in prompts():
            history.append({"role": "user", "content": line})
            save_history(path, name, history)  # the question is kept even if the answer fails
            request = ChatRequest(messages_of(system + history), options, key=f"cli:{name}")
            cancel = threading.Event()
            events = backend.chat(request, cancel)
            try:
                answer = print_events(events, cancel)
            finally:
                events.close()
            history.append({"role": "assistant", "content": answer})
            save_history(path, name, history)
    finally:
        backend.close()  # writes the conversation's cache snapshot
