"""Settings: context length with a live memory estimate, KV cache bits, prompt, sampling, model."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication, QShowEvent
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

from app.bridge.units import format_size
from app.settings import KV_BITS_CHOICES, NUM_CTX_STEPS, ChatSettings
from app.views.quick_prompt_settings import QuickPromptSettings
from app.views.restyle import set_style_property
from app.views.scroll import frameless_scroll_area
from app.views.settings_section import SettingsSection

if TYPE_CHECKING:
    from app.views.models_page import ModelsPage

KV_LABELS = {None: "Off", 8: "8-bit", 4: "4-bit"}  # "Off (fp32)" once the plan names the dtype
MIN_WIDTH, MIN_HEIGHT = 560, 360  # fits an 800×600 screen; below the content's height it scrolls
SCREEN_MARGIN = 60  # room left for the title bar and the Dock/panel at the default size
GIB = 1 << 30

PlanFn = Callable[[int, "int | None"], Any]  # controller.plan_memory(num_ctx, kv_bits)


def format_ctx(n: int) -> str:
    return f"{n // 1024}K"


def format_gib(n: int) -> str:
    # Binary units labelled GB, as macOS reports memory ("16 GB" Macs have 16 GiB).
    return f"{n / GIB:.1f} GB"


def idle_caches_note(plan: Any) -> str:
    """The rest of the memory the other chats' KV caches may keep (MemoryPlan's budget)."""
    budget = getattr(plan, "cache_budget_bytes", None)
    if not isinstance(budget, int) or not plan.fits:
        return ""
    return f"; other chats' caches may use up to {format_size(budget)} of the rest"


def format_plan(plan: Any) -> str:
    """The engine's own one-line description, so the dialog and the CLI say the same."""
    if hasattr(plan, "describe"):
        return plan.describe() + idle_caches_note(plan)
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
        self.setMinimumSize(MIN_WIDTH, MIN_HEIGHT)
        self._plan_memory = plan_memory
        self.plan: Any = None  # the MemoryPlan behind the estimate shown
        self._initial = settings
        self.sections: list[SettingsSection] = []  # server, local API, caches (add_section)
        self.remote_location: str | None = None  # set when the model runs on a server

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
        self.part_cap = QSpinBox()  # long documents are read in parts of at most this size
        self.part_cap.setObjectName("summaryPartCap")
        self.part_cap.setRange(1024, 131072)
        self.part_cap.setSingleStep(1024)
        self.part_cap.setValue(settings.validated().summary_part_cap)
        self.part_cap.setSuffix(" tokens")
        self.part_cap.setToolTip(
            "Long documents are read in parts of at most this size (never more than the context "
            "allows). Nemo reads about 16K tokens faithfully; longer parts lose detail."
        )

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
        form.addRow("Longest part:", self.part_cap)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        # Everything but the buttons scrolls: a form squeezed below its height overlaps its rows.
        self.content = QWidget()
        self.content.setObjectName("settingsContent")
        content = self._content_layout = QVBoxLayout(self.content)
        content.setContentsMargins(0, 0, 0, 0)
        content.addLayout(form)
        self.quick_prompt = QuickPromptSettings(settings)
        content.addWidget(self.quick_prompt)
        content.addStretch(1)
        self.scroll_area = frameless_scroll_area(self.content, "settingsScroll")
        self.buttons = buttons
        layout = self._layout = QVBoxLayout(self)
        layout.addWidget(self.scroll_area, 1)
        layout.addSpacing(6)
        layout.addWidget(buttons)

        self.ctx_slider.valueChanged.connect(self._update_estimate)
        self.kv_combo.currentIndexChanged.connect(self._update_estimate)
        self._name_unquantized_cache()
        self._update_estimate()
        self.resize(self.default_size())
        self._sized_on_show = False

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        # Once polished for the screen it shows on, the rows know their true heights.
        if not self._sized_on_show:
            self._sized_on_show = True
            self.resize(self.default_size())
        super().showEvent(event)

    def default_size(self) -> QSize:
        """All settings visible without scrolling, as far as the screen allows."""
        margins = self._layout.contentsMargins()
        bar = self.scroll_area.verticalScrollBar().sizeHint().width()
        self.content.ensurePolished()
        hint = self.content.sizeHint()
        width = max(MIN_WIDTH, hint.width() + bar + margins.left() + margins.right())
        # Wrapped notes are taller at the width they really get than in the plain size hint.
        inner = width - bar - margins.left() - margins.right()
        height = (
            max(hint.height(), self.content.heightForWidth(inner))
            + 6
            + self._layout.spacing() * 2
            + self.buttons.sizeHint().height()
        )
        height += margins.top() + margins.bottom()
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            available = screen.availableGeometry()
            width = min(width, max(MIN_WIDTH, available.width() - SCREEN_MARGIN))
            height = min(height, max(MIN_HEIGHT, available.height() - SCREEN_MARGIN))
        return QSize(width, max(MIN_HEIGHT, height))

    def _name_unquantized_cache(self) -> None:
        """ "Off (fp32)" on the CPU backend, "Off (fp16)" on a GPU: the dtype the estimate counts."""
        if self._plan_memory is None:
            return
        try:
            plan = self._plan_memory(self.num_ctx(), None)
        except Exception:  # no estimate, no dtype: the plain "Off" stays
            return
        if hasattr(plan, "kv_label"):
            index = KV_BITS_CHOICES.index(None)
            self.kv_combo.setItemText(index, f"{KV_LABELS[None]} ({plan.kv_label()})")

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
            summary_part_cap=self.part_cap.value(),
            model_dir=self.model_edit.text().strip() or None,
            **self.quick_prompt.values(),
            **{k: v for s in self.sections for k, v in s.values().items()},
        ).validated()

    def _update_estimate(self) -> None:
        self.ctx_value.setText(format_ctx(self.num_ctx()))
        plan, reason, rejected = None, "", False
        if self.remote_location:  # this computer holds no weights nor cache for it
            self.plan = None
            self.estimate_label.setText(
                f"The model runs on {self.remote_location}: it uses no memory here."
            )
            set_style_property(self.estimate_label, "fits", True)
            self.ok_button.setEnabled(True)
            self.ok_button.setToolTip("")
            return
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
            set_style_property(self.estimate_label, "fits", True)
        elif plan is None:
            self.estimate_label.setText("Memory estimate unavailable.")
            set_style_property(self.estimate_label, "fits", True)
        else:
            text = format_plan(plan)
            if not plan.fits:
                text = f"⚠ Too large for the memory available: {text}"
            self.estimate_label.setText(text)
            set_style_property(self.estimate_label, "fits", bool(plan.fits))
        # The engine refuses a context that does not fit; do not offer to apply one.
        fits = not rejected and (plan is None or bool(plan.fits))
        self.ok_button.setEnabled(fits)
        self.ok_button.setToolTip("" if fits else "Choose a shorter context or a smaller cache.")

    def add_models_page(self, page: ModelsPage) -> None:
        """app.views.models_page above the buttons; "Use This Model" picks it and applies."""
        content = self._content_layout
        content.insertWidget(content.count() - 1, page)  # above the closing stretch
        page.useRequested.connect(lambda path: (self.model_edit.setText(path), self.accept()))
        self.models_page = page
        self.resize(self.default_size())

    def add_section(self, section: SettingsSection, first: bool = False) -> None:
        """A settings group with values() (app.views.settings_backend, settings_api): at the
        top or above the closing stretch; its attach(dialog), if any, wires it to the rest."""
        content = self._content_layout
        content.insertWidget(0 if first else content.count() - 1, section)
        self.sections.append(section)
        section.attach(self)
        self.resize(self.default_size())

    def set_remote(self, location: str | None) -> None:
        """The model runs on `location` (a server), or here (None): no folder, no estimate."""
        self.remote_location = location
        self.model_edit.setEnabled(location is None)
        self._update_estimate()

    def set_context_limit(self, max_context: int | None) -> None:
        """The slider stops at the largest step the model's context holds (a server's)."""
        steps = [i for i, n in enumerate(NUM_CTX_STEPS) if not max_context or n <= max_context]
        self.ctx_slider.setMaximum(steps[-1] if steps else 0)
        self._update_estimate()

    def accept(self) -> None:
        """Sections that act at once (the local API) commit first; a failure keeps it open."""
        for section in self.sections:
            if not section.commit():
                return
        super().accept()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Choose the model folder", self.model_edit.text() or ""
        )
        if folder:
            self.model_edit.setText(folder)
