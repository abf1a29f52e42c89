"""The user's chat settings: one frozen value, persisted with QSettings."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from PySide6.QtCore import QSettings

NUM_CTX_STEPS = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
KV_BITS_CHOICES = (None, 8, 4)  # None: the cache stays in the model's float type
CACHE_DISK_GB_MAX = 1000
_GROUP = "chat"


@dataclass(frozen=True)
class ChatSettings:
    num_ctx: int = 8192
    kv_bits: int | None = None
    system_prompt: str = ""
    temperature: float = 0.3  # Mistral's advice for Nemo
    top_p: float = 1.0
    max_tokens: int = 1024
    model_dir: str | None = None
    # The menu-bar quick prompt (app/quick_prompt.py, app/tray.py).
    quick_max_tokens: int = 512
    quick_history: bool = False  # store every quick prompt as a "Quick: …" conversation
    start_in_menu_bar: bool = False
    quick_hotkey: str = "Alt+Space"  # system-wide, QKeySequence text (Option+Space on a Mac)
    # The local API (issue 13; app/bridge/api_control.py): off until the user turns it on.
    api_enabled: bool = False
    api_port: int = 11435
    api_host: str = "127.0.0.1"  # "0.0.0.0" serves the network, and then needs api_key
    api_key: str = ""
    api_origins: str = ""  # browser Origins allowed to call, separated by spaces or commas
    # Where the model runs (issue 14; app/bridge/backend_control.py): "local" or "server".
    backend: str = "local"
    server_url: str = ""
    server_key: str = ""
    server_model: str = ""  # "" lets the server's first Nemo (or first model) answer
    # Long documents: a part's prompt at most this many tokens (Nemo reads ~16K faithfully).
    summary_part_cap: int = 16384
    # Conversations' KV caches on disk (issue 12; app/bridge/cache_control.py): off writes nothing.
    cache_enabled: bool = True
    cache_disk_gb: int = 10  # decimal GB, as disks are sold

    def validated(self) -> ChatSettings:
        """The same settings pulled back into the ranges the engine accepts."""
        num_ctx = min(NUM_CTX_STEPS, key=lambda n: abs(n - int(self.num_ctx)))
        kv_bits = self.kv_bits if self.kv_bits in KV_BITS_CHOICES else None
        return replace(
            self,
            num_ctx=num_ctx,
            kv_bits=kv_bits,
            temperature=min(max(float(self.temperature), 0.0), 2.0),
            top_p=min(max(float(self.top_p), 0.01), 1.0),
            max_tokens=min(max(int(self.max_tokens), 16), 32768),
            model_dir=self.model_dir or None,
            quick_max_tokens=min(max(int(self.quick_max_tokens), 16), 32768),
            api_port=min(max(int(self.api_port), 1), 65535),
            backend=self.backend if self.backend in ("local", "server") else "local",
            summary_part_cap=min(max(int(self.summary_part_cap), 1024), 131072),
            cache_disk_gb=min(max(int(self.cache_disk_gb), 1), CACHE_DISK_GB_MAX),
        )


def load_settings(store: QSettings | None = None) -> ChatSettings:
    """Settings saved earlier, with defaults for anything missing or unreadable."""
    qs = store if store is not None else QSettings()
    defaults = ChatSettings()
    values = {}
    qs.beginGroup(_GROUP)
    try:
        for f in fields(ChatSettings):
            default = getattr(defaults, f.name)
            raw = qs.value(f.name, None)
            values[f.name] = _parse(f.name, raw, default)
    finally:
        qs.endGroup()
    return ChatSettings(**values).validated()


def save_settings(settings: ChatSettings, store: QSettings | None = None) -> None:
    qs = store if store is not None else QSettings()
    qs.beginGroup(_GROUP)
    try:
        for f in fields(ChatSettings):
            value = getattr(settings, f.name)
            # QSettings' INI/plist backends lose None; store "" and read it back as None.
            qs.setValue(f.name, "" if value is None else value)
    finally:
        qs.endGroup()
    qs.sync()


def _parse(name: str, raw: Any, default: object) -> object:
    # QSettings returns strings from INI files and typed values from plists: accept both.
    if raw is None:
        return default
    try:
        if name in ("kv_bits",):
            return int(raw) if raw not in ("", "None", "0", 0) else None
        if name == "model_dir":
            return str(raw) or None
        if isinstance(default, str):  # the prompt, the hotkey, the API and server fields
            return str(raw)
        if isinstance(default, bool):  # before int: bool is an int; INI gives "true"/"false"
            return raw if isinstance(raw, bool) else str(raw).lower() in ("true", "1")
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, int):
            return int(raw)
    except (TypeError, ValueError):
        return default
    return default
