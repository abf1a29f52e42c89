"""`nemo bench api`: the same prompt through the local API (openai client, streaming) and
through the engine directly (a job on the same engine thread), in one run.

Prints decode tok/s of both and their ratio (target >= 0.95) and the TTFT the HTTP path adds
(target < 20 ms). Both are timed where the caller sees the text: the client's stream, the job's
events. Each round uses fresh prompts so neither path reuses the other's KV cache.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from engine.backend import ChatRequest, GenerationOptions, messages_of
from engine.events import Finished, TextChunk
from engine.generate import SamplingSettings


@dataclass(frozen=True)
class Run:
    ttft_s: float
    decode_tps: float
    tokens: int


def _prompt(tag: str, words: int) -> str:
    body = " ".join(f"item{i}" for i in range(words))
    return f"[{tag}] Summarize this list in one paragraph: {body}"


def run_direct(service, prompt: str, n: int) -> Run:
    settings = SamplingSettings(temperature=0.0, max_tokens=n)
    request = ChatRequest(
        messages_of([{"role": "user", "content": prompt}]), GenerationOptions(settings)
    )
    start = time.perf_counter()
    job = service.chat(request, kind="bench")
    first = last = None
    tokens = 0
    for event in job.events(timeout=600):
        if isinstance(event, TextChunk):
            last = time.perf_counter()
            first = first or last
        elif isinstance(event, Finished):
            tokens = event.stats.generated_tokens
    return _run(start, first, last, tokens)


def run_api(client, model: str, prompt: str, n: int) -> Run:
    start = time.perf_counter()
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        max_tokens=n,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    first = last = None
    tokens = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            last = time.perf_counter()
            first = first or last
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
    return _run(start, first, last, tokens)


def _run(start: float, first: float | None, last: float | None, tokens: int) -> Run:
    if first is None or last is None:
        raise RuntimeError("the answer had no text")
    decode_s = last - first
    return Run(first - start, (tokens - 1) / decode_s if decode_s > 0 else 0.0, tokens)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nemo bench api", description=__doc__)
    parser.add_argument("--model", help="model folder (default: a tiny random Nemo-shaped one)")
    parser.add_argument("--tokens", type=int, default=128, help="tokens decoded per answer")
    parser.add_argument("--words", type=int, default=200, help="prompt length in list items")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-ctx", type=int, default=8192)
    args = parser.parse_args(argv)

    import openai

    from engine.serve import ApiConfig, ApiServer
    from engine.service import EngineService

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            from engine.synthetic import write_checkpoint

            model_dir = str(write_checkpoint(Path(tmp) / "tiny", "tiny", seed=0))
        service = EngineService(prepare=False)
        loaded = service.load(model_dir).wait()
        if service.info is None:
            print(f"nemo bench api: cannot load {model_dir}: {loaded}", file=sys.stderr)
            return 1
        server = ApiServer(service, ApiConfig(port=0, num_ctx=args.num_ctx)).start()
        client = openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0)
        try:
            run_direct(service, _prompt("warm-up", 8), 4)  # first-call costs out of the way
            run_api(client, server.model_name, _prompt("warm-up api", 8), 4)
            direct, api = [], []
            for i in range(args.rounds):  # interleaved, alternating who goes first
                runs = [
                    lambda i=i: api.append(
                        run_api(
                            client, server.model_name, _prompt(f"api {i}", args.words), args.tokens
                        )
                    ),
                    lambda i=i: direct.append(
                        run_direct(service, _prompt(f"direct {i}", args.words), args.tokens)
                    ),
                ]
                for run in runs if i % 2 == 0 else runs[::-1]:
                    run()
        finally:
            client.close()
            server.stop()
            service.shutdown()

    def median(runs: list[Run], field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs)

    d_tps, a_tps = median(direct, "decode_tps"), median(api, "decode_tps")
    d_ttft, a_ttft = median(direct, "ttft_s"), median(api, "ttft_s")
    print(
        f"model: {model_dir}  ({args.words}-item prompt, {args.tokens} tokens, {args.rounds} rounds)"
    )
    print(
        f"decode tok/s  engine {d_tps:8.1f}   api {a_tps:8.1f}   ratio {a_tps / d_tps:.3f} (target >= 0.95)"
    )
    print(
        f"TTFT ms       engine {d_ttft * 1e3:8.1f}   api {a_ttft * 1e3:8.1f}   "
        f"added {(a_ttft - d_ttft) * 1e3:+.1f} ms (target < 20)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
