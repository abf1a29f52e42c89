"""The welcome view's download panel: get Mistral Nemo 12B with progress, cancel and resume.

It drives an app.bridge.downloader.Downloader (handed in; this view imports no engine code) and says
what went wrong in a sentence: offline, gated (with a token field), not found, disk full.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bridge.units import format_duration, format_size
from app.views.restyle import set_style_property

MODEL_LABEL = "Mistral Nemo 12B"
BITS_CHOICES = ((4, "4-bit, group 64 — 6.9 GB (recommended)"), (8, "8-bit — 13 GB, higher quality"))
TOKEN_URL = "https://huggingface.co/settings/tokens"


def format_part(done: int, total: int) -> str:
    """'2.1 of 6.9 GB', or '350.0 MB of 6.9 GB' when the units differ."""
    a, b = format_size(done), format_size(total)
    same_unit = a.split()[1] == b.split()[1]
    return f"{a.split()[0]} of {b}" if same_unit else f"{a} of {b}"


def progress_text(p: Any) -> str:
    """'2.1 GB of 6.9 GB · 24.3 MB/s · 3 min 20 s left' (phase-independent)."""
    parts = [format_part(p.done, p.total)]
    if p.speed_bps > 0:
        parts.append(f"{format_size(p.speed_bps)}/s")
    if p.eta_s is not None and p.done < p.total:
        parts.append(f"{format_duration(p.eta_s)} left")
    return " · ".join(parts)


class DownloadPanel(QWidget):
    """Download / Resume, progress (bytes, speed, time left), Cancel, errors, token, convert."""

    openModelRequested = Signal()  # "Use a folder I already have"
    modelReady = Signal(str)  # a finished download or conversion: load it

    def __init__(self, downloader: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("downloadPanel")
        self.downloader = downloader
        self._converting = False  # which flow the last start was (Try Again repeats it)
        self._convert_open = False  # the convert options were asked for

        self.download_button = QPushButton()
        self.download_button.setObjectName("downloadButton")
        self.download_button.setDefault(True)
        self.download_button.clicked.connect(self.start_download)
        self.folder_button = QPushButton("Use a Folder I Already Have…")
        self.folder_button.setObjectName("useFolderButton")
        self.folder_button.clicked.connect(self.openModelRequested)

        self.phase_label = QLabel()
        self.phase_label.setObjectName("downloadPhase")
        self.bar = QProgressBar()
        self.bar.setObjectName("downloadBar")
        self.bar.setRange(0, 1000)  # per mille: byte counts overflow a C int
        self.bar.setTextVisible(False)
        self.progress_label = QLabel()
        self.progress_label.setObjectName("downloadProgress")
        self.detail_label = QLabel()
        self.detail_label.setObjectName("downloadDetail")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelDownloadButton")
        self.cancel_button.clicked.connect(self.cancel)
        stats_row = QHBoxLayout()
        stats_row.addWidget(self.progress_label, 1)
        stats_row.addWidget(self.cancel_button)
        self.progress_box = QWidget()
        box = QVBoxLayout(self.progress_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(4)
        box.addWidget(self.phase_label)
        box.addWidget(self.bar)
        box.addLayout(stats_row)
        box.addWidget(self.detail_label)

        self.message = QLabel()
        self.message.setObjectName("downloadMessage")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.token_edit = QLineEdit()
        self.token_edit.setObjectName("hfTokenEdit")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("Hugging Face access token (hf_…)")
        self.token_edit.returnPressed.connect(self.retry)
        retry = QPushButton("Try Again")
        retry.clicked.connect(self.retry)
        token_hint = QLabel(f'Make a read token at <a href="{TOKEN_URL}">{TOKEN_URL}</a>.')
        token_hint.setObjectName("convertHint")
        token_hint.setOpenExternalLinks(True)
        self.token_box = QWidget()
        token_layout = QVBoxLayout(self.token_box)
        token_layout.setContentsMargins(0, 0, 0, 0)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_edit, 1)
        token_row.addWidget(retry)
        token_layout.addLayout(token_row)
        token_layout.addWidget(token_hint)

        self.convert_toggle = QPushButton("Or convert from the original weights…")
        self.convert_toggle.setObjectName("convertToggle")
        self.convert_toggle.setFlat(True)
        self.convert_toggle.setCursor(Qt.CursorShape.PointingHandCursor)
        self.convert_toggle.clicked.connect(self.show_convert)
        hint = QLabel(
            "Downloads Mistral's original bf16 weights (24.5 GB; needs a Hugging Face account "
            "that accepted the licence) and quantizes them on this computer."
        )
        hint.setObjectName("convertHint")
        hint.setWordWrap(True)
        self.bits_combo = QComboBox()
        for bits, label in BITS_CHOICES:
            self.bits_combo.addItem(label, bits)
        self.convert_button = QPushButton("Download and Convert")
        self.convert_button.setObjectName("convertButton")
        self.convert_button.clicked.connect(self.start_convert)
        convert_row = QHBoxLayout()
        convert_row.addWidget(self.bits_combo, 1)
        convert_row.addWidget(self.convert_button)
        self.convert_box = QWidget()
        convert_layout = QVBoxLayout(self.convert_box)
        convert_layout.setContentsMargins(0, 0, 0, 0)
        convert_layout.addWidget(hint)
        convert_layout.addLayout(convert_row)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(8)
        layout.addWidget(self.download_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.progress_box)
        layout.addWidget(self.message)
        layout.addWidget(self.token_box)
        layout.addWidget(self.folder_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.convert_toggle, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.convert_box)

        d = downloader
        d.progress.connect(self._on_progress)
        d.finished.connect(self._on_finished)
        d.failed.connect(self._on_failed)
        d.cancelled.connect(self._on_cancelled)
        d.runningChanged.connect(self._set_running)
        self.progress_box.setVisible(False)
        self.token_box.setVisible(False)
        self.convert_box.setVisible(False)
        self.message.setVisible(False)
        self.refresh()

    # --- actions

    def start_download(self) -> None:
        ready = self.downloader.complete()
        if ready is not None:  # already whole on disk (settings lost, or a second window)
            self.modelReady.emit(str(ready))
            return
        self._converting = False
        self._begin("Downloading " + MODEL_LABEL)
        self.downloader.download(token=self.token())

    def start_convert(self) -> None:
        self._converting = True
        self._begin("Downloading the original weights")
        self.downloader.download_and_convert(bits=self.bits_combo.currentData(), token=self.token())

    def show_convert(self) -> None:
        self._convert_open = True
        self.convert_box.setVisible(True)
        self.convert_toggle.setVisible(False)

    def retry(self) -> None:
        (self.start_convert if self._converting else self.start_download)()

    def cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Stopping…")
        self.downloader.cancel()

    def token(self) -> str | None:
        return self.token_edit.text().strip() or None

    def set_loading(self, loading: bool) -> None:
        """A model is loading: no second start meanwhile."""
        for b in (self.download_button, self.folder_button, self.convert_button):
            b.setEnabled(not loading and not self.downloader.running)

    def refresh(self) -> None:
        """The button says what a click does: download, resume (with what is done), or open."""
        partial = self.downloader.partial()
        if self.downloader.complete() is not None:
            text = f"Open the Downloaded {MODEL_LABEL}"
        elif partial is not None and partial.total_bytes:
            text = f"Resume Download ({format_part(partial.done_bytes, partial.total_bytes)} done)"
        elif partial is not None:
            text = f"Resume Download ({format_size(partial.done_bytes)} done)"
        else:
            text = f"Download {MODEL_LABEL} ({format_size(self.downloader.default_size())})"
        self.download_button.setText(text)
        original = self.downloader.partial(convert=True)
        self.convert_button.setText(
            "Resume Download and Convert" if original is not None else "Download and Convert"
        )

    def showEvent(self, event) -> None:  # noqa: N802
        """Back on the welcome view (a model deleted in the settings?): say what is on disk now."""
        if not self.downloader.running:
            self.refresh()
        super().showEvent(event)

    # --- downloader signals

    def _begin(self, phase: str) -> None:
        self._show_message("")
        self.token_box.setVisible(False)
        self.phase_label.setText(phase + "…")
        self.progress_label.setText("Connecting…")
        self.detail_label.setText("")
        self.bar.setValue(0)
        self.progress_box.setVisible(True)

    def _set_running(self, running: bool) -> None:
        self.download_button.setVisible(not running)
        self.convert_toggle.setVisible(not running and not self._convert_open)
        self.convert_box.setVisible(not running and self._convert_open)
        self.folder_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Cancel")
        if not running:
            self.progress_box.setVisible(False)
            self.refresh()

    def _on_progress(self, p: Any) -> None:
        if p.phase == "convert":
            self.phase_label.setText(f"Converting to {self.bits_combo.currentData()}-bit…")
        self.bar.setValue(int(1000 * p.done / p.total) if p.total else 0)
        self.progress_label.setText(progress_text(p) if p.total > 1 else "Starting…")
        self.detail_label.setText(p.detail)

    def _on_finished(self, path: str) -> None:
        self._show_message("Download complete. Loading the model…")
        self.modelReady.emit(path)

    def _on_failed(self, failure: Any) -> None:
        text = failure.message
        if failure.kind == "gated":
            text += " Paste an access token below, then Try Again."
            self.token_box.setVisible(True)
            self.token_edit.setFocus()
        elif self.downloader.partial(convert=self._converting) is not None:
            text += " What has arrived is kept: Resume continues from there."
        self._show_message(text, error=True)

    def _on_cancelled(self, message: str) -> None:
        self._show_message(message)

    def _show_message(self, text: str, error: bool = False) -> None:
        self.message.setText(text)
        set_style_property(self.message, "error", error)
        self.message.setVisible(bool(text))
