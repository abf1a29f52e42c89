"""Settings: context length with a live memory estimate, KV cache bits, prompt, sampling, model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.settings import KV_BITS_CHOICES, NUM_CTX_STEPS, ChatSettings
from app.views.quick_prompt_settings import QuickPromptSettings

KV_LABELS = {None: "Off (16-bit)", 8: "8-bit", 4: "4-bit"}
GIB = 1 << 30

PlanFn = Callable[[int, "int | None"], Any]  # controller.plan_memory(num_ctx, kv_bits)


def format_ctx(n: int) -> str:
    return f"{n // 1024}K"


def format_gib(n: int) -> str:
    # Binary units labelled GB, as macOS reports memory ("16 GB" Macs have 16 GiB).
    return f"{n / GIB:.1f} GB"


def format_plan(plan: Any) -> str:
    """The engine's own one-line description, so the dialog and the CLI say the same."""
    if hasattr(plan, "describe"):
        return plan.describe()
    text = (
        f"Model {format_gib(plan.weights_bytes)} + context {format_gib(plan.kv_bytes)}"
        f" + working {format_gib(plan.working_bytes)} = {format_gib(plan.total_bytes)}"
    )
    if plan.available_bytes:
        text += f" of {format_gib(plan.available_bytes)} available"
    return text


class SettingsDialog(QDialog):
    """Edits a ChatSettings; `settings()` is the result. Nothing is applied until OK."""

    def __init__(
        self, settings: ChatSettings, plan_memory: PlanFn | None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("settingsDialog")
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self._plan_memory = plan_memory
        self.plan: Any = None  # the MemoryPlan behind the estimate shown
        self._initial = settings

        self.model_edit = QLineEdit(settings.model_dir or "")
        self.model_edit.setPlaceholderText("No model folder chosen")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model_edit, 1)
        model_row.addWidget(browse)

        self.ctx_slider = QSlider(Qt.Orientation.Horizontal)
        self.ctx_slider.setObjectName("numCtxSlider")
        self.ctx_slider.setRange(0, len(NUM_CTX_STEPS) - 1)
        self.ctx_slider.setPageStep(1)
        self.ctx_slider.setTickPosition(QSlider.TickPosition.TicksBelow)
        self.ctx_slider.setTickInterval(1)
        self.ctx_slider.setValue(NUM_CTX_STEPS.index(settings.validated().num_ctx))
        self.ctx_value = QLabel()
        self.ctx_value.setObjectName("numCtxValue")
        self.ctx_value.setMinimumWidth(44)
        ctx_row = QHBoxLayout()
        ctx_row.addWidget(self.ctx_slider, 1)
        ctx_row.addWidget(self.ctx_value)
        self.estimate_label = QLabel()
        self.estimate_label.setObjectName("memoryEstimate")
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setMinimumWidth(400)  # wrapped labels in a form otherwise wrap early

        self.kv_combo = QComboBox()
        for bits in KV_BITS_CHOICES:
            self.kv_combo.addItem(KV_LABELS[bits], bits)
        self.kv_combo.setCurrentIndex(KV_BITS_CHOICES.index(settings.validated().kv_bits))
        self.kv_combo.setToolTip(
            "Quantizing the context cache saves memory at a small quality cost."
        )

        self.prompt_edit = QPlainTextEdit(settings.system_prompt)
        self.prompt_edit.setPlaceholderText("Optional: instructions for every chat")
        self.prompt_edit.setFixedHeight(84)

        self.temperature = QDoubleSpinBox()
        self.temperature.setRange(0.0, 2.0)
        self.temperature.setSingleStep(0.05)
        self.temperature.setDecimals(2)
        self.temperature.setValue(settings.temperature)
        self.temperature.setToolTip(
            "Mistral recommends 0.3 for Nemo; 0 always picks the likeliest word."
        )
        self.top_p = QDoubleSpinBox()
        self.top_p.setRange(0.01, 1.0)
        self.top_p.setSingleStep(0.05)
        self.top_p.setDecimals(2)
        self.top_p.setValue(settings.top_p)
        self.max_tokens = QSpinBox()
        self.max_tokens.setRange(16, 32768)
        self.max_tokens.setSingleStep(256)
        self.max_tokens.setValue(settings.max_tokens)
        self.max_tokens.setSuffix(" tokens")

        form = QFormLayout()
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.DontWrapRows)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Model folder:", model_row)
        form.addRow("Context length:", ctx_row)
        form.addRow("", self.estimate_label)
        form.addRow("Context cache:", self.kv_combo)
        form.addRow("System prompt:", self.prompt_edit)
        form.addRow("Temperature:", self.temperature)
        form.addRow("Top P:", self.top_p)
        form.addRow("Longest answer:", self.max_tokens)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        self.quick_prompt = QuickPromptSettings(settings)
        layout.addWidget(self.quick_prompt)
        layout.addSpacing(6)
        layout.addWidget(buttons)

        self.ctx_slider.valueChanged.connect(self._update_estimate)
        self.kv_combo.currentIndexChanged.connect(self._update_estimate)
        self._update_estimate()

    def num_ctx(self) -> int:
        return NUM_CTX_STEPS[self.ctx_slider.value()]

    def kv_bits(self) -> int | None:
        return self.kv_combo.currentData()

    def settings(self) -> ChatSettings:
        return ChatSettings(
            num_ctx=self.num_ctx(),
            kv_bits=self.kv_bits(),
            system_prompt=self.prompt_edit.toPlainText().strip(),
            temperature=round(self.temperature.value(), 2),
            top_p=round(self.top_p.value(), 2),
            max_tokens=self.max_tokens.value(),
            model_dir=self.model_edit.text().strip() or None,
            **self.quick_prompt.values(),
        ).validated()

    def _update_estimate(self) -> None:
        self.ctx_value.setText(format_ctx(self.num_ctx()))
        plan, reason, rejected = None, "", False
        if self._plan_memory is not None:
            try:
                plan = self._plan_memory(self.num_ctx(), self.kv_bits())
            except ValueError as e:  # the engine rejects this combination for this model
                reason, rejected = str(e), True
            except Exception as e:  # e.g. no model loaded: an estimate never breaks the dialog
                reason = str(e)
        self.plan = plan
        if plan is None and self._plan_memory is not None and reason:
            self.estimate_label.setText(f"Memory estimate unavailable: {reason}.")
            self.estimate_label.setProperty("fits", True)
        elif plan is None:
            self.estimate_label.setText("Memory estimate unavailable.")
            self.estimate_label.setProperty("fits", True)
        else:
            text = format_plan(plan)
            if not plan.fits:
                text = f"⚠ Too large for the memory available: {text}"
            self.estimate_label.setText(text)
            self.estimate_label.setProperty("fits", bool(plan.fits))
        # The engine refuses a context that does not fit; do not offer to apply one.
        fits = not rejected and (plan is None or bool(plan.fits))
        self.ok_button.setEnabled(fits)
        self.ok_button.setToolTip("" if fits else "Choose a shorter context or a smaller cache.")
        self.estimate_label.style().unpolish(self.estimate_label)
        self.estimate_label.style().polish(self.estimate_label)

    def add_models_page(self, page: QWidget) -> None:
        """app.views.models_page above the buttons; "Use This Model" picks it and applies."""
        layout = self.layout()
        layout.insertWidget(layout.indexOf(self.ok_button.parentWidget()) - 1, page)
        page.useRequested.connect(lambda path: (self.model_edit.setText(path), self.accept()))
        self.models_page = page

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the model folder", self.model_edit.text() or ""
        )
        if folder:
            self.model_edit.setText(folder)
