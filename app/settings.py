"""The user's chat settings: one frozen value, persisted with QSettings."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from PySide6.QtCore import QSettings

NUM_CTX_STEPS = (2048, 4096, 8192, 16384, 32768, 65536, 131072)
KV_BITS_CHOICES = (None, 8, 4)  # None: the cache stays in the model's float type
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


def _parse(name: str, raw: object, default: object) -> object:
    # QSettings returns strings from INI files and typed values from plists: accept both.
    if raw is None:
        return default
    try:
        if name in ("kv_bits",):
            return int(raw) if raw not in ("", "None", "0", 0) else None
        if name == "model_dir":
            return str(raw) or None
        if name in ("system_prompt", "quick_hotkey"):
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
