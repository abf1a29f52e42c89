"""`nemo-chat`: the composition root — QApplication, Store, EngineController, MainWindow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QGuiApplication, QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from app.file_open import FileOpenFilter, paths_from_argv
from app.settings import load_settings
from app.store.store import Store, StoreError

APP_NAME = "Nemo Chat"
ORG_NAME = "Nemo Chat"
ORG_DOMAIN = "nemochat.app"


def resources_dir() -> Path:
    """resources/ next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


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
    app = QApplication.instance()
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
    if args.self_test is not None:
        from app.bridge.selftest import main as self_test

        return self_test(argv)
    app = make_application([sys.argv[0], *argv])
    try:
        store, moved = Store.open_or_recover(args.history)
    except StoreError as e:  # a newer schema or an unreadable file: say so, touch nothing
        QMessageBox.critical(None, APP_NAME, str(e))
        return 1
    from app.bridge.engine_controller import (
        EngineController,  # engine (MLX): after the window can show
    )
    from app.window import MainWindow

    settings = load_settings(QSettings())
    controller = EngineController()
    controller.set_num_ctx(settings.num_ctx)
    controller.set_kv_bits(settings.kv_bits)
    from app.bridge.downloader import (
        Downloader,  # engine.hub.download on its own thread: HTTP, no MLX
    )

    window = MainWindow(store, controller, settings, downloader=Downloader(controller))
    from app.tray import install_menu_bar

    menu_bar = install_menu_bar(app, window, controller)  # tray icon, quick prompt, shortcuts
    if not menu_bar.starts_hidden:
        window.show()
    if moved:
        QMessageBox.warning(window, APP_NAME, moved)
    model_dir = args.model or settings.model_dir
    if model_dir:
        window.load_model(model_dir)
    # Documents from "Open With" (argv on Linux, QFileOpenEvent on macOS) go to the window.
    opener = FileOpenFilter(app)
    opener.fileOpened.connect(window.open_document)
    app.installEventFilter(opener)
    for path in paths_from_argv(argv):
        window.open_document(path)
    try:
        return app.exec()
    finally:
        controller.shutdown()
        store.close()


if __name__ == "__main__":
    sys.exit(main())
