"""Bottom status: model state, prefill progress, context meter, and the "left out" notice."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QStatusBar, QWidget

from app.views.restyle import set_style_property

STATE_TEXT = {
    "none": "No model loaded",
    "loading": "Loading model…",
    "ready": "Ready",
    "generating": "Writing…",
    "error": "Model failed to load",
}


class ChatStatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("chatStatus")
        self.setSizeGripEnabled(False)
        self.dot = QLabel("●")
        self.dot.setObjectName("stateDot")
        self.state_label = QLabel(STATE_TEXT["none"])
        self.state_label.setObjectName("stateLabel")
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setObjectName("loadProgress")
        self.progress.setFixedWidth(120)
        self.progress.setFixedHeight(6)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.trimmed_label = QLabel()
        self.trimmed_label.setObjectName("trimmedNotice")
        self.trimmed_label.setVisible(False)
        self.context_label = QLabel()
        self.context_label.setObjectName("contextLabel")
        self.context_meter = QProgressBar()
        self.context_meter.setObjectName("contextMeter")
        self.context_meter.setFixedWidth(90)
        self.context_meter.setFixedHeight(6)
        self.context_meter.setTextVisible(False)
        self.addWidget(self.dot)
        self.addWidget(self.state_label, 1)
        self.addWidget(self.progress)
        # Which machine runs the model (privacy, issue 14) and whether the local API serves it.
        self.api_label = QLabel()
        self.api_label.setObjectName("apiStatus")
        self.api_label.setVisible(False)
        self.location_label = QLabel()
        self.location_label.setObjectName("modelLocation")
        self.addPermanentWidget(self.api_label)
        self.addPermanentWidget(self.location_label)
        self.addPermanentWidget(self.trimmed_label)
        self.addPermanentWidget(self.context_meter)
        self.addPermanentWidget(self.context_label)
        self.model_name = ""
        self.state = "none"
        self.set_state("none")
        self.set_context(0, 0)

    def _set_state_property(self, value: str) -> None:
        for w in (self.dot, self.state_label):
            set_style_property(w, "state", value)

    def set_state(self, state: str, detail: str = "") -> None:
        """state: none | loading | ready | generating | error (the controller's states)."""
        self.state = state
        text = STATE_TEXT.get(state, state)
        if state == "ready" and self.model_name:
            text = f"Ready · {self.model_name}"
        if detail:
            text = f"{text} {detail}" if state != "error" else detail
        self.state_label.setText(text)
        self.state_label.setToolTip(detail or text)
        self.progress.setVisible(state == "loading")
        if state != "loading":
            self.progress.setRange(0, 0)
        self._set_state_property(state)

    def set_load_progress(self, done: int, total: int) -> None:
        self.progress.setVisible(True)
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
            self.state_label.setText(f"Loading model… {100 * done // total}%")
        else:
            self.progress.setRange(0, 0)  # busy indicator

    def set_prefill(self, done: int, total: int) -> None:
        self.state_label.setText(f"Reading {done:,} / {total:,} tokens…")

    def set_message(self, text: str, error: bool = False) -> None:
        """A one-off line in the state area (errors stay until the next state change)."""
        self.state_label.setText(text)
        self.state_label.setToolTip(text)
        self._set_state_property("error" if error else self.state)

    def set_context(self, used: int, num_ctx: int, left_out: int = 0) -> None:
        """Prompt tokens the model reads of num_ctx (app.chat.context_meter keeps it current)."""
        if num_ctx <= 0:
            self.context_label.setText("")
            self.context_meter.setVisible(False)
            return
        self.context_meter.setVisible(True)
        self.context_meter.setRange(0, num_ctx)
        self.context_meter.setValue(min(used, num_ctx))
        self.context_label.setText(f"{used:,} / {num_ctx:,} tokens")
        share = used / num_ctx
        set_style_property(self.context_meter, "level", "high" if share > 0.9 else "normal")
        tip = f"Context used: {share:.0%} of {num_ctx:,} tokens"
        if left_out:
            noun = "message is" if left_out == 1 else "messages are"
            tip += f"; {left_out} earlier {noun} left out (marked in the chat)"
        self.context_meter.setToolTip(tip)
        self.context_label.setToolTip(tip)

    def set_trimmed(self, dropped: int) -> None:
        if dropped <= 0:
            self.trimmed_label.setVisible(False)
            return
        noun = "message" if dropped == 1 else "messages"
        self.trimmed_label.setText(f"{dropped} earlier {noun} left out")
        self.trimmed_label.setToolTip(
            "The chat is longer than the context length; the oldest messages were not sent "
            "to the model. Raise the context length in Settings to keep more."
        )
        self.trimmed_label.setVisible(True)

    def set_location(self, sentence: str, detail: str = "") -> None:
        """ "Model runs on this Mac" / "Model runs on the server at http://host:port"."""
        self.location_label.setText(sentence)
        self.location_label.setToolTip(detail or sentence)

    def set_api(self, status: object) -> None:
        """app.bridge.api_control.ApiStatus: the local API's address and its requests."""
        url = getattr(status, "url", None)
        if not url:
            self.api_label.setVisible(False)
            return
        running, waiting = getattr(status, "running", 0), getattr(status, "waiting", 0)
        address = url.split("://", 1)[-1].removesuffix("/v1")
        text = f"API on · {address}"
        if running or waiting:
            text += f" · {running} running, {waiting} waiting"
        self.api_label.setText(text)
        self.api_label.setToolTip(
            f"The local API serves the model at {url} (OpenAI) and {url.removesuffix('/v1')} "
            "(Ollama); its requests take turns with this window."
        )
        self.api_label.setVisible(True)
