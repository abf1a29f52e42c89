"""The name API clients see for the served model: stable across folders and machines.

Tools store the model name in their settings, so it must not change when the folder moves:
"mistral-nemo:12b-instruct-4bit" (Ollama's tag style), and plain "mistral-nemo" also works.
"""

from __future__ import annotations

from engine.backend import ModelInfo

FAMILY = "mistral-nemo"


def quant_tag(info: ModelInfo | None) -> str:
    """ "4-bit g64" -> "4bit", "bf16" -> "bf16"; "" when unknown."""
    label = (info.quantization if info is not None else "") or ""
    if "-bit" in label:
        return label.split("-bit")[0].strip() + "bit"
    return label.strip().replace(" ", "-")


def served_name(info: ModelInfo | None) -> str:
    """ "mistral-nemo:12b-instruct-4bit" for the MLX 4-bit folder."""
    tag = quant_tag(info)
    return f"{FAMILY}:12b-instruct-{tag}" if tag else f"{FAMILY}:12b-instruct"


def accepted_names(served: str, info: ModelInfo | None) -> frozenset[str]:
    """What a request may name: the served name, the family, ":latest", the folder name."""
    names = {served, FAMILY, f"{FAMILY}:latest"}
    if info is not None and info.name:
        names.add(info.name)
    return frozenset(n.lower() for n in names)


def parameter_size(info: ModelInfo | None) -> str:
    """ "12.2B", as Ollama's model details show it."""
    n = info.num_parameters if info is not None else 0
    if n >= 1e9:
        return f"{n / 1e9:.1f}B"
    return f"{n / 1e6:.1f}M" if n else ""
