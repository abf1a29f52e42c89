"""Issue 17's view-level fixes: long code lines wrap inside their block, the settings dialog never
overlaps its rows, Copy says "Copied", length-cut answers say so, safe export names, an elided
sidebar, an SVG document icon, and a quick-prompt Stop button that stays put."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from PySide6.QtCore import QPoint, QRect, QUrl
from PySide6.QtGui import QGuiApplication, QImage, QPainter, QTextCursor
from PySide6.QtSvg import QSvgRenderer
from PySide6.QtWidgets import QLabel, QWidget

from app.identity import resources_dir
from app.markdown import COPY_SCHEME
from app.settings import ChatSettings
from app.store.export import export_file_name
from app.store.records import Attachment
from app.views.chat_view import ChatView
from app.views.copy_feedback import COPIED_TEXT, flash_copied
from app.views.message import (
    DOCUMENT_ICON,
    LENGTH_CUT_NOTE,
    MessageWidget,
    attachment_html,
    document_icon_url,
    format_stats,
)
from app.views.quick_prompt_view import QuickPromptView
from app.views.settings_dialog import MIN_HEIGHT, MIN_WIDTH, SettingsDialog
from app.views.sidebar import Sidebar

LONG_WITH_SPACES = "total = " + " + ".join(f"value_{i}" for i in range(60))  # ~600 chars
LONG_NO_BREAKS = "QUJD" * 125  # 500 chars of base64: no break opportunity at all


def message(mid: int, role: str, content: str, **kw) -> NS:
    fields = {"status": "complete", "stats": None, "error": None, "attachments": ()}
    return NS(id=mid, role=role, content=content, **(fields | kw))


def copy_link_rects(browser) -> list[QRect]:
    """Viewport rectangles of every code block's Copy link."""
    rects = []
    block = browser.document().begin()
    while block.isValid():
        it = block.begin()
        while not it.atEnd():
            frag = it.fragment()
            if frag.charFormat().anchorHref().startswith(COPY_SCHEME + ":"):
                start, end = QTextCursor(browser.document()), QTextCursor(browser.document())
                start.setPosition(frag.position())
                end.setPosition(frag.position() + frag.length())
                rects.append(browser.cursorRect(start).united(browser.cursorRect(end)))
            it += 1
        block = block.next()
    return rects


def settle(qtbot, widget: QWidget) -> None:
    qtbot.waitUntil(widget.isVisible, timeout=30_000)
    for _ in range(5):
        QGuiApplication.processEvents()


# -- 1. a long code line never makes the answer scroll sideways


@pytest.mark.parametrize("line", [LONG_WITH_SPACES, LONG_NO_BREAKS], ids=["spaces", "no-breaks"])
@pytest.mark.parametrize("width", [800, 1440])
def test_a_long_code_line_wraps_inside_its_block_and_copy_stays_visible(qtbot, line, width):
    view = ChatView()
    qtbot.addWidget(view)
    view.resize(width, 600)
    answer = f"Here it is:\n\n```python\n{line}\nprint('done')\n```\n\nThat's all."
    view.show_conversation(1, [message(1, "user", "code?"), message(2, "assistant", answer)])
    view.show()
    settle(qtbot, view)
    widget = view.message_widget(2)
    (browser,) = widget.segments
    qtbot.waitUntil(lambda: browser.viewport().width() > 100, timeout=30_000)

    assert browser.horizontalScrollBar().maximum() == 0
    assert browser.document().size().width() <= browser.viewport().width()
    (copy,) = copy_link_rects(browser)
    assert browser.viewport().rect().contains(copy), (copy, browser.viewport().rect())
    # …and inside the window: the column, not just the browser, fits the chat view.
    left = browser.viewport().mapTo(view.viewport(), copy.topLeft())
    right = browser.viewport().mapTo(view.viewport(), copy.bottomRight())
    assert view.viewport().rect().contains(left) and view.viewport().rect().contains(right)
    assert view.horizontalScrollBar().maximum() == 0
    # Wrapping is only drawn: the copied code is the line as written.
    assert browser.rendered.code_blocks == (f"{line}\nprint('done')\n",)


# -- 2. the settings dialog: no overlapping rows at any size it allows; the true cache dtype


def dtype_plan_memory():
    """The controller's plan_memory: the engine's arithmetic for Nemo 12B on this machine."""
    from engine.config import nemo_12b_config
    from engine.memory import NEMO_4BIT_WEIGHTS_BYTES, activation_dtype_bytes, plan

    def plan_memory(num_ctx: int, kv_bits: int | None):
        return plan(
            nemo_12b_config(), NEMO_4BIT_WEIGHTS_BYTES, num_ctx, kv_bits,
            dtype_bytes=activation_dtype_bytes(),
        )  # fmt: skip

    return plan_memory, {4: "fp32", 2: "fp16"}[activation_dtype_bytes()]


def form_widgets(dialog: SettingsDialog) -> list[QWidget]:
    """Every visible label and field of the form, and the groups below it."""
    form = dialog.content.layout().itemAt(0).layout()
    found = []
    for row, role in itertools.product(range(form.rowCount()), (0, 1)):
        item = form.itemAt(row, form.ItemRole.LabelRole if role == 0 else form.ItemRole.FieldRole)
        if item is None:
            continue
        if item.widget() is not None:
            found.append(item.widget())
        elif item.layout() is not None:
            layout = item.layout()
            found += [layout.itemAt(i).widget() for i in range(layout.count())]
    found += [dialog.quick_prompt, getattr(dialog, "models_page", None)]
    return [w for w in found if w is not None and w.isVisible() and not (
        isinstance(w, QLabel) and not w.text()
    )]  # fmt: skip


@pytest.mark.parametrize("with_models_page", [False, True])
def test_settings_rows_never_overlap_at_any_size_the_dialog_allows(
    qtbot, tmp_path, with_models_page
):
    plan_memory, _ = dtype_plan_memory()
    dialog = SettingsDialog(ChatSettings(system_prompt="Answer briefly."), plan_memory)
    qtbot.addWidget(dialog)
    if with_models_page:
        from app.views.models_page import ModelsPage

        library = NS(root=tmp_path, models=lambda: [], delete=lambda path: None)
        dialog.add_models_page(ModelsPage(library))
    default = dialog.size()
    assert default.width() >= MIN_WIDTH and default.height() >= MIN_HEIGHT
    dialog.show()
    settle(qtbot, dialog)
    sizes = [dialog.minimumSize(), default, default.grownBy(dialog.contentsMargins()) * 1.3]
    sizes.append(dialog.minimumSize().expandedTo(default * 0.8))
    for size in sizes:
        dialog.resize(size)
        qtbot.waitUntil(lambda s=size: dialog.size() == s.expandedTo(dialog.minimumSize()))
        for _ in range(5):
            QGuiApplication.processEvents()
        # The content is never squeezed below what its rows need: it scrolls instead.
        content = dialog.content
        assert content.height() >= content.minimumSizeHint().height()
        assert content.height() >= content.heightForWidth(content.width())
        widgets = form_widgets(dialog)
        assert dialog.prompt_edit in widgets and dialog.top_p in widgets
        rects = {w: QRect(w.mapTo(content, QPoint(0, 0)), w.size()) for w in widgets}
        for a, b in itertools.combinations(widgets, 2):
            assert not rects[a].intersects(rects[b]), (size, a, rects[a], b, rects[b])
        assert rects[dialog.prompt_edit].bottom() < rects[dialog.temperature].top()
        assert dialog.buttons.geometry().top() >= dialog.scroll_area.geometry().bottom()


def test_settings_default_size_shows_everything_when_the_screen_allows(qtbot):
    dialog = SettingsDialog(ChatSettings(), None)
    qtbot.addWidget(dialog)
    dialog.show()
    settle(qtbot, dialog)
    screen = dialog.screen().availableGeometry()
    if dialog.size().height() < screen.height() - 60:  # not clamped to a small screen
        assert dialog.scroll_area.verticalScrollBar().maximum() == 0


def test_the_cache_label_names_the_dtype_the_estimate_counts(qtbot):
    plan_memory, dtype = dtype_plan_memory()
    dialog = SettingsDialog(ChatSettings(kv_bits=None), plan_memory)
    qtbot.addWidget(dialog)
    assert dialog.kv_combo.currentText() == f"Off ({dtype})"
    assert f"({dialog.num_ctx() // 1024}K, {dtype})" in dialog.estimate_label.text()
    assert "16-bit" not in dialog.kv_combo.currentText() or dtype == "fp16"
    # Without an estimate, it claims no precision at all.
    bare = SettingsDialog(ChatSettings(kv_bits=None), None)
    qtbot.addWidget(bare)
    assert bare.kv_combo.currentText() == "Off"
    assert [bare.kv_combo.itemText(i) for i in (1, 2)] == ["8-bit", "4-bit"]


# -- 7. small things


def test_the_stats_line_says_when_the_length_limit_cut_the_answer():
    stats = {"generated_tokens": 1024, "ttft_s": 0.5, "decode_tps": 20.0}
    assert format_stats(stats | {"finish_reason": "length"}, "complete").endswith(
        " · " + LENGTH_CUT_NOTE
    )
    assert LENGTH_CUT_NOTE not in format_stats(stats | {"finish_reason": "stop"}, "complete")
    stopped = format_stats(stats | {"finish_reason": "cancelled"}, "stopped")
    assert stopped.endswith("stopped") and LENGTH_CUT_NOTE not in stopped
    w = MessageWidget(1, "assistant", "Partial", stats=stats | {"finish_reason": "length"})
    assert LENGTH_CUT_NOTE in w.stats_label.text()


def test_copy_buttons_say_copied_then_return(qtbot):
    w = MessageWidget(1, "assistant", "The **answer**.")
    qtbot.addWidget(w)
    w.show()
    width = w.copy_button.width()
    w.copy_button.click()
    assert QGuiApplication.clipboard().text() == "The **answer**."
    assert w.copy_button.text() == COPIED_TEXT
    qtbot.waitUntil(lambda: w.copy_button.text() == "Copy", timeout=30_000)
    assert w.copy_button.minimumWidth() >= width  # room for "Copied": the row does not shift

    panel = QuickPromptView()
    qtbot.addWidget(panel)
    panel.copy_button.click()
    assert panel.copy_button.text() == COPIED_TEXT
    flash_copied(panel.copy_button, ms=10)  # a second click restarts; the idle text is kept
    qtbot.waitUntil(lambda: panel.copy_button.text() == "Copy", timeout=30_000)


def test_a_code_blocks_copy_link_copies_and_reports_it(qtbot):
    w = MessageWidget(1, "assistant", "```sh\nls -la\n```\n\n```\necho hi\n```")
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.browser.codeCopied, timeout=5_000) as copied:
        w.browser.anchorClicked.emit(QUrl(f"{COPY_SCHEME}:1"))
    assert copied.args == [1] and QGuiApplication.clipboard().text() == "echo hi\n"


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("What is 2:3? A/B test", "What is 2-3 A-B test.md"),
        ('Résumé <draft> "v2" | final*', "Résumé draft v2 - final.md"),
        ("line\none\ttab", "line one tab.md"),
        ("...", "Chat.md"),
        (".hidden", "hidden.md"),
        ("?", "Chat.md"),
    ],
)
def test_export_file_names_keep_no_unsafe_characters(tmp_path, title, expected):
    name = export_file_name(title)
    assert name == expected
    assert not set(name) & set(':?/\\*"<>|') and name.isprintable()
    (tmp_path / name).write_text("ok", "utf-8")  # a name this file system accepts
    assert (tmp_path / name).read_text("utf-8") == "ok"


def test_export_file_names_are_bounded():
    name = export_file_name("word " * 200)
    assert name.endswith(".md") and len(name) <= 104 and not name[:-3].endswith(" ")


def test_a_long_title_is_elided_never_scrolled_sideways(qtbot):
    bar = Sidebar()
    qtbot.addWidget(bar)
    bar.resize(240, 400)
    title = "Quarterly budget review with a very long title that goes on and on and on"
    bar.set_conversations([NS(id=1, title=title), NS(id=2, title="Short")], 1)
    bar.show()
    settle(qtbot, bar)
    for width in (240, 180, 320):
        bar.resize(width, 400)
        qtbot.waitUntil(lambda w=width: bar.width() == w)
        for _ in range(5):
            QGuiApplication.processEvents()
        assert bar.list.horizontalScrollBar().maximum() == 0
        assert not bar.list.horizontalScrollBar().isVisible()
        rect = bar.list.visualItemRect(bar.list.item(0))
        assert rect.width() <= bar.list.viewport().width()
    assert bar.list.item(0).toolTip() == title  # the whole title is one hover away


def test_the_document_icon_is_an_svg_shown_without_an_emoji_font(qtbot):
    path = resources_dir() / DOCUMENT_ICON
    renderer = QSvgRenderer(str(path))
    assert renderer.isValid()
    image = QImage(32, 32, QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    drawn = sum(image.pixelColor(x, y).alpha() > 0 for x in range(32) for y in range(32))
    assert drawn > 100  # a page, not an empty file

    atts = [
        Attachment("report.pdf", "x", pages=12, tokens=8431),
        Attachment("a<b>.txt", "x", tokens=9),
    ]
    html_line = attachment_html(atts, document_icon_url())
    assert html_line.count("<img ") == 2 and "📎" not in html_line and "a&lt;b&gt;.txt" in html_line
    assert Path(QUrl(document_icon_url()).toLocalFile()) == path
    w = MessageWidget(1, "user", "Summarize", attachments=atts)
    qtbot.addWidget(w)
    assert "📎" not in w.attachments_label.text()
    assert w.attachments_label.accessibleName() == (
        "report.pdf · 12 pages · 8,431 tokens   a<b>.txt · 9 tokens"
    )


@pytest.mark.parametrize("anchor", [None, "bottom"], ids=["grows-down", "grows-up"])
def test_the_quick_prompt_stop_button_stays_put_while_the_answer_grows(qtbot, anchor):
    panel = QuickPromptView()
    qtbot.addWidget(panel)
    screen = QGuiApplication.primaryScreen().availableGeometry()
    icon = None
    if anchor == "bottom":  # a Linux panel at the bottom: the card grows upwards
        icon = QRect(screen.center().x(), screen.bottom() - 20, 20, 20)
    panel.stop_button.setVisible(True)
    panel.footer.setVisible(True)
    panel.show_panel(icon)
    settle(qtbot, panel)
    panel.render_answer("The first line.", follow=True)
    qtbot.waitUntil(lambda: panel.scroll_area.isVisible())
    for _ in range(5):
        QGuiApplication.processEvents()
    before, height = panel.stop_button.mapToGlobal(QPoint(0, 0)), panel.scroll_area.height()
    text = "The first line."
    for i in range(30):
        text += f"\n\nParagraph {i} of a growing answer."
        panel.render_answer(text, follow=True)
        QGuiApplication.processEvents()
        assert panel.stop_button.mapToGlobal(QPoint(0, 0)) == before, i
    qtbot.waitUntil(lambda: panel.scroll_area.height() > height + 100)  # it really grew
    for _ in range(5):
        QGuiApplication.processEvents()
    assert panel.stop_button.mapToGlobal(QPoint(0, 0)) == before
