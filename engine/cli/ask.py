"""`nemo ask FILE... "question"`: a question over every part of long documents, from a terminal.

The question goes to every part (batched where the model allows), the answers that found
something are combined with their page citations; progress on stderr, the answer on stdout.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli.summarize import _options, add_common, guarded


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "ask", help="ask a question over whole documents, however long (every part is read)"
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="one or more documents")
    p.add_argument("question", metavar="QUESTION", help="the question (last argument)")
    add_common(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """0 answered, 1 failed (one line on stderr), 130 stopped with Ctrl+C."""
    from engine.docs.summary_jobs import AskRequest

    if not args.question.strip():
        print("nemo ask: the question is empty", file=sys.stderr)
        return 1

    def request(docs: tuple) -> AskRequest:
        return AskRequest(docs, args.question, _options(args), args.max_tokens, args.part_cap)

    return guarded("ask", args, request)
