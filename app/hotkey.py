"""A system-wide hotkey for the quick prompt, where the platform allows one without permissions.

What works where:
- macOS: registered for real with Carbon's RegisterEventHotKey (through ctypes). Unlike a
  keyboard event tap it needs no Accessibility permission; Qt's Cocoa event loop dispatches the
  hot-key event to the application event target, where our handler emits `activated`.
  Default: Option+Space ("Alt+Space" in Qt's portable key text; Qt's "Ctrl" is Command there).
- Linux (X11 and Wayland), Windows: not registered. X11 would need XGrabKey (python-xlib, not a
  dependency); Wayland has no global grabs at all. `register()` returns False and `error` says
  so; the menu-bar icon and the in-app shortcut (Ctrl+Shift+Space) still open the panel.

The module imports on every platform; only `_CarbonHotkey` touches Carbon, and only on darwin.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

from PySide6.QtCore import QKeyCombination, QObject, Qt, Signal
from PySide6.QtGui import QKeySequence

log = logging.getLogger(__name__)

DEFAULT_HOTKEY = "Alt+Space"
IN_APP_SHORTCUT = "Ctrl+Shift+Space"  # Qt's Ctrl is Cmd on a Mac: Cmd+Shift+Space there
UNAVAILABLE_NOTE = (
    "System-wide shortcut isn't available on this platform; use the menu bar icon or "
    "Ctrl+Shift+Space inside the app"
)

# Carbon modifier bits (Events.h) and the signature/event constants of a hot-key press.
CMD_KEY, SHIFT_KEY, OPTION_KEY, CONTROL_KEY = 1 << 8, 1 << 9, 1 << 11, 1 << 12
K_EVENT_CLASS_KEYBOARD = int.from_bytes(b"keyb", "big")
K_EVENT_HOTKEY_PRESSED = 5
K_EVENT_PARAM_DIRECT_OBJECT = int.from_bytes(b"----", "big")
TYPE_EVENT_HOTKEY_ID = int.from_bytes(b"hkid", "big")
HOTKEY_SIGNATURE = int.from_bytes(b"nemo", "big")

# Carbon virtual key codes (kVK_*, HIToolbox/Events.h): ANSI layout positions.
_LETTERS = dict(zip("ASDFHGZXCV", range(0x00, 0x0A), strict=True))
_LETTERS.update({"B": 0x0B, "Q": 0x0C, "W": 0x0D, "E": 0x0E, "R": 0x0F, "Y": 0x10, "T": 0x11})
_LETTERS.update({"O": 0x1F, "U": 0x20, "I": 0x22, "P": 0x23, "L": 0x25, "J": 0x26, "K": 0x28})
_LETTERS.update({"N": 0x2D, "M": 0x2E})
_DIGITS = {"1": 0x12, "2": 0x13, "3": 0x14, "4": 0x15, "6": 0x16, "5": 0x17, "9": 0x19}
_DIGITS.update({"7": 0x1A, "8": 0x1C, "0": 0x1D})
_FKEYS = [0x7A, 0x78, 0x63, 0x76, 0x60, 0x61, 0x62, 0x64, 0x65, 0x6D, 0x67, 0x6F]
K = Qt.Key
CARBON_KEYS: dict[Qt.Key, int] = {
    **{getattr(K, f"Key_{c}"): code for c, code in _LETTERS.items()},
    **{getattr(K, f"Key_{c}"): code for c, code in _DIGITS.items()},
    **{getattr(K, f"Key_F{i + 1}"): code for i, code in enumerate(_FKEYS)},
    K.Key_Space: 0x31, K.Key_Return: 0x24, K.Key_Tab: 0x30, K.Key_Escape: 0x35,
    K.Key_Minus: 0x1B, K.Key_Equal: 0x18, K.Key_BracketLeft: 0x21, K.Key_BracketRight: 0x1E,
    K.Key_Semicolon: 0x29, K.Key_Apostrophe: 0x27, K.Key_Comma: 0x2B, K.Key_Period: 0x2F,
    K.Key_Slash: 0x2C, K.Key_Backslash: 0x2A, K.Key_QuoteLeft: 0x32,
}  # fmt: skip
M = Qt.KeyboardModifier
# Qt on macOS: ControlModifier is Command, MetaModifier is Control, AltModifier is Option.
CARBON_MODIFIERS = {
    M.ControlModifier: CMD_KEY,
    M.ShiftModifier: SHIFT_KEY,
    M.AltModifier: OPTION_KEY,
    M.MetaModifier: CONTROL_KEY,
}


def system_hotkey_supported(platform: str = sys.platform) -> bool:
    """True where `GlobalHotkey.register` can work (macOS only; see the module docstring)."""
    return platform == "darwin"


def parse_sequence(text: str) -> QKeyCombination:
    """The single key combination in Qt portable text ("Alt+Space"); ValueError otherwise."""
    seq = QKeySequence.fromString(text.strip(), QKeySequence.SequenceFormat.PortableText)
    # PySide6's stubs lack QKeySequence.__getitem__ (Qt's operator[]); it exists at run time.
    key_at = seq.__getitem__  # pyright: ignore[reportAttributeAccessIssue]
    first: QKeyCombination | None = key_at(0) if seq.count() == 1 else None
    if first is None or first.key() in (K.Key_unknown, 0):
        raise ValueError(f"{text!r} is not a single shortcut such as Alt+Space")
    return first


def carbon_hotkey(text: str) -> tuple[int, int]:
    """(virtual key code, Carbon modifier mask) for a shortcut; ValueError if it has no mapping."""
    combo = parse_sequence(text)
    key = combo.key()
    if key not in CARBON_KEYS:
        raise ValueError(f"{text!r}: this key cannot be a system-wide shortcut")
    mods = combo.keyboardModifiers()
    mask = 0
    for qt_mod, carbon_mod in CARBON_MODIFIERS.items():
        if mods & qt_mod:
            mask |= carbon_mod
    if not mask:
        raise ValueError(f"{text!r}: a system-wide shortcut needs a modifier key")
    return CARBON_KEYS[key], mask


class EventTypeSpec(ctypes.Structure):
    _fields_ = [("eventClass", ctypes.c_uint32), ("eventKind", ctypes.c_uint32)]


class EventHotKeyID(ctypes.Structure):
    _fields_ = [("signature", ctypes.c_uint32), ("id", ctypes.c_uint32)]


# OSStatus handler(EventHandlerCallRef, EventRef, void *userData)
EVENT_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


class _CarbonHotkey:
    """RegisterEventHotKey + one application event handler; macOS only."""

    def __init__(self, on_pressed) -> None:
        path = ctypes.util.find_library("Carbon")
        if not path:
            raise OSError("the Carbon framework was not found")
        carbon = ctypes.cdll.LoadLibrary(path)
        carbon.GetApplicationEventTarget.restype = ctypes.c_void_p
        carbon.InstallEventHandler.argtypes = [
            ctypes.c_void_p, EVENT_HANDLER, ctypes.c_size_t, ctypes.POINTER(EventTypeSpec),
            ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
        ]  # fmt: skip
        carbon.RegisterEventHotKey.argtypes = [
            ctypes.c_uint32, ctypes.c_uint32, EventHotKeyID, ctypes.c_void_p, ctypes.c_uint32,
            ctypes.POINTER(ctypes.c_void_p),
        ]  # fmt: skip
        carbon.UnregisterEventHotKey.argtypes = [ctypes.c_void_p]
        carbon.GetEventParameter.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self._carbon = carbon
        self._on_pressed = on_pressed
        self._ref = ctypes.c_void_p()
        # Kept on self: Carbon holds only the raw pointer, the thunk must outlive it.
        self._handler = EVENT_HANDLER(self._handle)
        spec = EventTypeSpec(K_EVENT_CLASS_KEYBOARD, K_EVENT_HOTKEY_PRESSED)
        handler_ref = ctypes.c_void_p()
        status = carbon.InstallEventHandler(
            carbon.GetApplicationEventTarget(), self._handler, 1, ctypes.byref(spec), None,
            ctypes.byref(handler_ref),
        )  # fmt: skip
        if status != 0:
            raise OSError(f"InstallEventHandler failed (OSStatus {status})")

    def register(self, key_code: int, modifiers: int) -> None:
        self.unregister()
        ref = ctypes.c_void_p()
        status = self._carbon.RegisterEventHotKey(
            key_code, modifiers, EventHotKeyID(HOTKEY_SIGNATURE, 1),
            self._carbon.GetApplicationEventTarget(), 0, ctypes.byref(ref),
        )  # fmt: skip
        if status != 0:  # e.g. -9878 eventHotKeyExistsErr: another app holds this combination
            raise OSError(f"the shortcut is taken or refused (OSStatus {status})")
        self._ref = ref

    def unregister(self) -> None:
        if self._ref:
            self._carbon.UnregisterEventHotKey(self._ref)
            self._ref = ctypes.c_void_p()

    def _handle(self, _call_ref, event, _user_data) -> int:
        hotkey = EventHotKeyID()
        self._carbon.GetEventParameter(
            event, K_EVENT_PARAM_DIRECT_OBJECT, TYPE_EVENT_HOTKEY_ID, None,
            ctypes.sizeof(hotkey), None, ctypes.byref(hotkey),
        )  # fmt: skip
        if hotkey.signature == HOTKEY_SIGNATURE:
            try:
                self._on_pressed()
            except Exception:  # noqa: BLE001 - an exception must not cross into Carbon
                log.exception("the hotkey handler failed")
        return 0


class GlobalHotkey(QObject):
    """One system-wide shortcut; `activated` fires on the GUI thread when it is pressed."""

    activated = Signal()

    def __init__(self, parent: QObject | None = None, platform: str = sys.platform) -> None:
        super().__init__(parent)
        self._platform = platform
        self._carbon: _CarbonHotkey | None = None
        self.sequence = ""  # what is registered now; "" when none
        self.error = ""  # why the last register() failed

    @property
    def supported(self) -> bool:
        return system_hotkey_supported(self._platform)

    def register(self, text: str) -> bool:
        """Registers `text` (e.g. "Alt+Space") in place of the previous one; False if it can't."""
        self.unregister()
        if not self.supported:
            self.error = UNAVAILABLE_NOTE
            return False
        if not text.strip():
            self.error = ""
            return False  # the user turned it off
        try:
            key_code, modifiers = carbon_hotkey(text)
            if self._carbon is None:
                self._carbon = _CarbonHotkey(self.activated.emit)
            self._carbon.register(key_code, modifiers)
        except (ValueError, OSError, AttributeError) as e:
            self.error = f"{text}: {e}"
            log.warning("system-wide shortcut not registered: %s", self.error)
            return False
        self.sequence, self.error = text, ""
        return True

    def unregister(self) -> None:
        if self._carbon is not None:
            self._carbon.unregister()
        self.sequence = ""
