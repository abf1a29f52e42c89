"""Budgets for a remote model: exact for Nemo, conservative then calibrated for others (no server)."""

from __future__ import annotations

import re

import pytest

from engine.docs.summarize_plan import plan_summary
from engine.remote.budget import FIRST_GUESS, BudgetCounter, fit_messages
from engine.remote.config import RemoteConfig, is_nemo
from engine.session import ContextOverflow
from engine.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def tekken():
    return load_tokenizer(None)


def chat(n: int) -> list[dict[str, str]]:
    out = [{"role": "system", "content": "Be brief."}]
    for i in range(n):
        out += [
            {"role": "user", "content": f"Question {i} " + "about the lease " * 30},
            {"role": "assistant", "content": f"Answer {i} " + "the rent is due " * 30},
        ]
    return out + [{"role": "user", "content": "And now?"}]


@pytest.mark.parametrize(
    ("url", "root", "server"),
    [
        ("http://mac.local:8080", "http://mac.local:8080/v1", "http://mac.local:8080"),
        ("http://host:8000/v1/", "http://host:8000/v1", "http://host:8000"),
        ("localhost:11434", "http://localhost:11434/v1", "http://localhost:11434"),
        ("https://user:pw@gpu.example/v1", "https://user:pw@gpu.example/v1", "https://gpu.example"),
    ],
)
def test_base_urls(url, root, server):
    config = RemoteConfig(url)
    assert (config.api_root, config.server) == (root, server)  # messages never show credentials


def test_nemo_by_name():
    assert is_nemo("mistralai/Mistral-Nemo-Instruct-2407") and is_nemo("mistral-nemo:12b")
    assert not is_nemo("llama3.1:8b")


def test_exact_counts_are_tekkens(tekken):
    counter = BudgetCounter(tekken, exact=True)
    messages = chat(2)
    assert counter.encode_chat(messages) == tekken.encode_chat(messages)
    assert counter.count_tokens("a lease") == tekken.count_tokens("a lease")


def test_unknown_tokenizer_is_overestimated_then_calibrated(tekken):
    counter = BudgetCounter(tekken, exact=False)
    messages = chat(2)
    ours = len(tekken.encode_chat(messages))
    assert counter.count_chat(messages) >= ours * FIRST_GUESS  # before any usage: conservative
    counter.observe(messages, int(ours * 1.2))  # the server's usage: 20% more than Tekken
    estimate = counter.count_chat(messages)
    assert int(ours * 1.2) <= estimate <= ours * 1.3  # calibrated, still on the safe side
    # pieces cut by token id keep all their bytes: the summary planner's token split still works
    ids = counter.encode("tenant landlord rent")
    assert b"".join(counter.token_bytes(t) for t in ids).decode() == "tenant landlord rent"
    assert counter.decode(ids) == "tenant landlord rent"


def test_a_nemo_server_that_counts_differently_switches_to_estimates(tekken):
    counter = BudgetCounter(tekken, exact=True)
    messages = chat(2)
    ours = len(tekken.encode_chat(messages))
    counter.observe(messages, ours + 1)  # within tolerance: still exact
    assert counter.exact
    counter.observe(messages, ours + 40)  # a default system prompt, say: estimate from now on
    assert not counter.exact and counter.count_chat(messages) >= ours + 40


def test_fit_leaves_out_whole_exchanges_oldest_first(tekken):
    counter = BudgetCounter(tekken, exact=True)
    messages = chat(8)
    kept, dropped, n = fit_messages(messages, counter, num_ctx=1024, max_tokens=64)
    assert dropped > 0 and dropped % 2 == 0
    assert kept[0] == messages[0] and kept[-1] == messages[-1]  # system prompt and newest stay
    assert kept[1:] == messages[1 + dropped :]
    assert n == len(tekken.encode_chat(kept)) and n + 64 <= 1024


def test_fit_refuses_a_message_that_cannot_fit_with_counts(tekken):
    counter = BudgetCounter(tekken, exact=True)
    long = [{"role": "user", "content": "clause " * 600}]
    with pytest.raises(ContextOverflow) as e:
        fit_messages(long, counter, num_ctx=512, max_tokens=64)
    assert (e.value.prompt_tokens, e.value.num_ctx) == (len(tekken.encode_chat(long)), 512)


def test_summary_planning_with_an_estimating_counter_leaves_room(tekken):
    """The planner sizes parts by the counter: with estimates, parts are smaller, never larger."""
    doc = "\n\n".join(f"Clause {n}: the tenant pays rent monthly." for n in range(200))
    exact = plan_summary(doc, BudgetCounter(tekken, exact=True), 1024, 64)
    guess = plan_summary(doc, BudgetCounter(tekken, exact=False), 1024, 64)
    assert len(guess.parts) > len(exact.parts)
    seen = set(re.findall(r"Clause (\d+):", "".join(p.text for p in guess.parts)))
    assert seen == {str(n) for n in range(200)}  # nothing left out (parts may overlap)
