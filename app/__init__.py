"""Nemo Chat's PySide6 app: the only package that imports Qt. Only app.worker imports engine."""
