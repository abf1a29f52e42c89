"""`nemo-chat`: the composition root — QApplication, Store, EngineController, MainWindow."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import cast

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from app.file_open import FileOpenFilter, paths_from_argv
from app.identity import APP_NAME, ORG_DOMAIN, ORG_NAME, resources_dir
from app.settings import load_settings
from app.single_instance import SingleInstance, key_for
from app.store.store import Store, StoreError, default_path

# NEMO_CHAT_TIMING=1 prints when the window is shown and the model is ready (wall-clock epoch
# seconds, for packaging/launch_timing.py); NEMO_CHAT_TIMING=quit also quits once ready.
TIMING = os.environ.get("NEMO_CHAT_TIMING", "")


def report(event: str) -> None:
    if TIMING:
        print(f"nemo-chat timing: {event} {time.time():.3f}", file=sys.stderr, flush=True)


def bring_forward(window: QWidget, documents: list[str], open_document) -> None:
    """A second launch asked for the window (and maybe documents): show it on top."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()
    for path in documents:
        open_document(path)
    report(f"activated-{len(documents)}")


def apply_style(app: QApplication) -> None:
    """The stylesheet refers to palette roles, so re-applying it follows a light/dark switch."""
    qss = resources_dir() / "style.qss"
    try:
        app.setStyleSheet(qss.read_text("utf-8"))
    except OSError:
        pass  # an unstyled window is better than none


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nemo-chat", description="Chat with Mistral Nemo locally."
    )
    parser.add_argument("--model", metavar="DIR", help="model folder to load at start")
    parser.add_argument("--history", metavar="FILE", help="chat history database to use")
    parser.add_argument(
        "--self-test", nargs="?", const="", metavar="DIR",
        help="load a model, generate a few tokens, print the stats and exit (no window)",
    )  # fmt: skip
    parser.add_argument("documents", nargs="*", help="documents to open (Linux 'Open With')")
    return parser.parse_args(argv)


def make_application(argv: list[str]) -> QApplication:
    # instance() is typed QCoreApplication; this process only ever makes a QApplication.
    app = cast("QApplication | None", QApplication.instance())
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv)
    app.setApplicationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setOrganizationDomain(ORG_DOMAIN)
    icon = resources_dir() / "icon.svg"
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    apply_style(app)
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: apply_style(app))
    return app


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    report("main")
    if args.self_test is not None:
        from app.bridge.selftest import main as self_test

        return self_test(argv)
    from app.linux_deps import check as missing_linux_deps

    problem = missing_linux_deps(quick=True)  # before Qt, which would abort without a word
    if problem:
        print(problem, file=sys.stderr)
        return 1
    app = make_application([sys.argv[0], *argv])
    documents = paths_from_argv(argv)
    instance = SingleInstance(key_for(args.history or default_path()))
    if not instance.claim(documents):
        return 0  # the running window came forward and took the documents
    try:
        store, moved = Store.open_or_recover(args.history)
    except StoreError as e:  # a newer schema or an unreadable file: say so, touch nothing
        QMessageBox.critical(None, APP_NAME, str(e))
        return 1
    # Imported here, not at the top: a second launch or a bad history needs none of it. Nothing
    # on the way to the window imports MLX (tests/app/test_main_startup.py).
    from app.bridge.engine_controller import EngineController
    from app.window import MainWindow

    report("store")
    settings = load_settings(QSettings())
    from app.bridge.cache_control import cache_settings

    # Each request carries its num_ctx and KV bits; models load with caches on disk (issue 12).
    # CacheSettings is plain data (engine.cache_settings): no MLX before the window shows.
    controller = EngineController(caches=cache_settings(settings))
    from app.bridge.downloader import (
        Downloader,  # engine.hub.download on its own thread: HTTP, no MLX
    )

    window = MainWindow(store, controller, settings, downloader=Downloader(controller))
    from app.tray import MenuBarApp, install_menu_bar, starts_in_menu_bar

    report("built")
    if not starts_in_menu_bar(settings):
        window.show()
        QTimer.singleShot(0, lambda: report("window"))
    # The tray icon, quick prompt panel and shortcuts: once the window is on screen.
    menu_bar: list[MenuBarApp] = []  # keeps it referenced for the app's life

    def install_tray() -> None:
        menu_bar.append(install_menu_bar(app, window, controller))
        report("tray")

    QTimer.singleShot(0, install_tray)
    instance.activated.connect(lambda docs: bring_forward(window, docs, window.open_document))
    if moved:
        QMessageBox.warning(window, APP_NAME, moved)
    model_dir = args.model or settings.model_dir
    if TIMING:
        controller.modelLoaded.connect(lambda _info: report("ready"))
        if TIMING == "quit":
            controller.modelLoaded.connect(lambda _info: QTimer.singleShot(0, app.quit))
    if model_dir or settings.backend == "server":  # after the first paint: the engine's
        QTimer.singleShot(0, lambda: window.start_model(args.model))  # imports load behind it
    # Documents from "Open With" (argv on Linux, QFileOpenEvent on macOS) go to the window.
    opener = FileOpenFilter(app)
    opener.fileOpened.connect(window.open_document)
    app.installEventFilter(opener)
    for path in documents:
        window.open_document(path)
    try:
        return app.exec()
    finally:
        instance.close()
        controller.shutdown()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
