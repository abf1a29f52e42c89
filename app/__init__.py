"""Nemo Chat's PySide6 app.

Only the engine-thread modules (worker, engine_controller, engine_requests), downloader (HTTP
only) and selftest import engine; the views never do.
"""
