"""The main window's parts: sidebar, chat view, composer, status bar, welcome, settings."""
