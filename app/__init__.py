"""Nemo Chat's PySide6 app.

Only app/bridge/ imports engine (the controller that hands out jobs, downloads, the self-test);
app/chat/ holds the answer lifecycle and the prompt builder, app/views/ passive widgets.
"""
