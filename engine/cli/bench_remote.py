"""`nemo bench remote`: decode tok/s through our remote backend against a bare streaming HTTP
request, same prompt, same server (mlx_lm.server by default). Target: ratio >= 0.95.

    nemo bench remote                       # starts mlx_lm.server with a synthetic model
    nemo bench remote --preset small --max-tokens 512
    nemo bench remote --server http://gpu-box:8000 --model mistralai/Mistral-Nemo-Instruct-2407

Both sides send the same body (temperature 0, a seed: the same tokens, served one at a time) and
time the answer the same way: from the first to the last chunk with text, tokens from the
server's usage. Rounds are interleaved; medians are reported.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."


def bare_decode_tps(api_root: str, body: dict, api_key: str | None) -> tuple[float, int]:
    """One streamed request with http.client, no parsing beyond finding text and usage."""
    url = urlsplit(api_root)
    if not url.hostname:
        raise ValueError(f"no host in the API root {api_root!r}")
    conn_class = (
        http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_class(url.hostname, url.port, timeout=600)
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    conn.request("POST", url.path.rstrip("/") + "/chat/completions", json.dumps(body), headers)
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:200]!r}")
    first = last = None
    tokens = chunks = 0
    for raw in response:
        line = raw.strip()
        if not line.startswith(b"data:") or line.endswith(b"[DONE]"):
            continue
        item = json.loads(line[5:])
        for choice in item.get("choices") or []:
            if (choice.get("delta") or {}).get("content"):
                last = time.perf_counter()
                first = first or last
                chunks += 1
        if item.get("usage"):
            tokens = item["usage"].get("completion_tokens") or tokens
    conn.close()
    tokens = tokens or chunks
    span = (last or 0) - (first or 0)
    return ((tokens - 1) / span if tokens > 1 and span > 0 else 0.0), tokens


def ours_decode_tps(backend, max_tokens: int, seed: int) -> tuple[float, int]:
    from engine.backend import ChatRequest, GenerationOptions, messages_of
    from engine.events import Finished
    from engine.generate import SamplingSettings

    sampling = SamplingSettings(temperature=0.0, max_tokens=max_tokens, seed=seed)
    request = ChatRequest(
        messages_of([{"role": "user", "content": PROMPT}]),
        GenerationOptions(sampling, num_ctx=max(8192, max_tokens + 1024)),
    )
    stats = None
    for event in backend.chat(request, threading.Event()):
        if isinstance(event, Finished):
            stats = event.stats
    return stats.decode_tps, stats.generated_tokens


def run(server_url: str, args: argparse.Namespace) -> dict:
    from engine.generate import SamplingSettings
    from engine.remote import RemoteBackend, RemoteConfig

    config = RemoteConfig(server_url, api_key=args.api_key, model=args.model, read_timeout=600)
    backend = RemoteBackend.connect(config)
    sampling = SamplingSettings(temperature=0.0, max_tokens=args.max_tokens, seed=args.seed)
    # exactly the body our backend sends (model, stream_options, sampling)
    body = backend._body(sampling) | {"messages": [{"role": "user", "content": PROMPT}]}
    ours_decode_tps(backend, 8, args.seed)  # warm-up: load, compile, prompt cache
    ours, bare, counts = [], [], set()
    for _ in range(args.rounds):
        tps, n = ours_decode_tps(backend, args.max_tokens, args.seed)
        ours.append(tps)
        counts.add(("ours", n))
        tps, n = bare_decode_tps(config.api_root, body, args.api_key)
        bare.append(tps)
        counts.add(("bare", n))
    backend.close()
    result = {
        "server": config.server,
        "model": backend.info.name,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "generated": sorted(counts),
        "ours_decode_tps": round(statistics.median(ours), 2),
        "bare_decode_tps": round(statistics.median(bare), 2),
        "ours_all": [round(x, 2) for x in ours],
        "bare_all": [round(x, 2) for x in bare],
    }
    result["ratio"] = round(result["ours_decode_tps"] / max(result["bare_decode_tps"], 1e-9), 3)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nemo bench remote", description=__doc__.split("\n")[0])
    p.add_argument("--server", help="an existing server (default: start mlx_lm.server here)")
    p.add_argument("--api-key", default=None)
    p.add_argument("--model", default=None, help="the server's model name")
    p.add_argument("--preset", default="tiny", help="synthetic model for the local mlx_lm.server")
    p.add_argument("--model-dir", help="a model folder for the local mlx_lm.server instead")
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    if args.server:
        result = run(args.server, args)
    else:
        import mlx.core as mx

        from engine.remote.peer import MlxLmServer, servable_copy
        from engine.synthetic import write_checkpoint

        with tempfile.TemporaryDirectory(prefix="bench-remote-") as tmp:
            if args.model_dir:
                src = Path(args.model_dir)
            else:
                print(f"writing a random {args.preset} model …", file=sys.stderr)
                dtype = mx.float32 if mx.default_device() == mx.cpu else mx.bfloat16
                src = write_checkpoint(Path(tmp) / "src", args.preset, dtype=dtype, num_shards=1)
            folder = servable_copy(src, Path(tmp) / f"{args.preset}-nemo")
            print("starting mlx_lm.server …", file=sys.stderr)
            with MlxLmServer(folder, log=Path(tmp) / "server.log") as server:
                result = run(server.url, args)
    print(
        f"decode tok/s: ours {result['ours_decode_tps']}, bare HTTP {result['bare_decode_tps']}, "
        f"ratio {result['ratio']} (target >= 0.95; {result['rounds']} rounds, median)",
        file=sys.stderr,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
