"""app.linux_deps: `make run` and nemo-chat say what to apt-get install instead of Qt's abort."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from app import linux_deps

BARE_LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibweird.so.9 => not found
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)
"""
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _fake_ldd(tmp_path: Path, output: str) -> str:
    script = tmp_path / "ldd"
    script.write_text(f"#!/bin/sh\ncat <<'END'\n{output}END\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


def test_a_bare_machine_gets_the_exact_apt_get_line(tmp_path):
    missing = linux_deps.missing_libraries(tmp_path / "libqxcb.so", _fake_ldd(tmp_path, BARE_LDD))
    assert missing == [
        "libweird.so.9", "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxkbcommon-x11.so.0",
    ]  # fmt: skip
    text = linux_deps.advice(*linux_deps.packages_for(missing))
    assert "  sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0\n" in text
    assert "provide: libweird.so.9" in text


@linux_only
def test_this_machine_has_what_qt_links(tmp_path):
    plugin = linux_deps.xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so"
    assert linux_deps.missing_libraries(plugin) == []  # the real ldd on the real plugin
    assert linux_deps.loads_quickly()
    assert not linux_deps.loads_quickly(["libnemo-chat-does-not-exist.so.0"])
    assert linux_deps.check({"DISPLAY": ":0"}) is None
    assert linux_deps.check({"DISPLAY": ":0"}, quick=True) is None


@linux_only
def test_check_names_the_packages_and_the_missing_display(monkeypatch, tmp_path):
    monkeypatch.setattr(linux_deps, "loads_quickly", lambda libraries=None: False)
    monkeypatch.setattr(
        linux_deps, "missing_libraries", lambda plugin: ["libxcb-cursor.so.0", "libxcb-icccm.so.4"]
    )
    plugin = tmp_path / "libqxcb.so"
    for quick in (False, True):  # a failed dlopen falls back to ldd for the full list
        text = linux_deps.check({"DISPLAY": ":0"}, plugin, quick=quick)
        assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4" in text
    monkeypatch.setattr(linux_deps, "missing_libraries", lambda plugin: [])
    assert "DISPLAY is not set" in linux_deps.check({}, plugin)
    assert "xvfb-run" in linux_deps.check({}, plugin)


def test_only_the_xcb_platform_is_checked():
    assert linux_deps.uses_xcb({})  # plain X11 session
    assert linux_deps.uses_xcb({"QT_QPA_PLATFORM": "xcb"})
    assert not linux_deps.uses_xcb({"WAYLAND_DISPLAY": "wayland-0"})  # Qt picks Wayland there
    assert not linux_deps.uses_xcb({"QT_QPA_PLATFORM": "offscreen"})
    assert not linux_deps.uses_xcb({"QT_QPA_PLATFORM": "wayland;xcb"})
    assert linux_deps.check({"QT_QPA_PLATFORM": "offscreen"}) is None


def test_install_needs_root_and_apt_get(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert not linux_deps.install(["libxcb-cursor0"]) and calls == []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(linux_deps.shutil, "which", lambda name: None)
    assert not linux_deps.install(["libxcb-cursor0"]) and calls == []
    assert not linux_deps.install([])


@linux_only
def test_the_command_make_run_calls(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.pop("QT_QPA_PLATFORM", None)
    cmd = [sys.executable, "-m", "app.linux_deps"]
    root = Path(__file__).resolve().parents[2]
    no_display = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    assert no_display.returncode == 1 and "DISPLAY is not set" in no_display.stderr
    env["QT_QPA_PLATFORM"] = "offscreen"
    ok = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stderr == ""
