"""Before Qt starts on Linux: are the system libraries of Qt's xcb (X11) plugin installed?

Without them Qt aborts with "Could not load the Qt platform plugin xcb" and a core dump. On a bare
Debian/Ubuntu machine we say exactly what to `apt-get install` instead (and install it where
asked to: `python -m app.linux_deps --install`, as root with apt-get). No Qt import here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# Shared library -> its Debian/Ubuntu package, for what Qt's xcb plugin and QtGui link.
PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
}
# What PySide6 6.x's libqxcb.so links (ldd), less libxcb/libX11 that every X desktop has.
XCB_LIBRARIES = [
    "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-image.so.0", "libxcb-keysyms.so.1",
    "libxcb-randr.so.0", "libxcb-render-util.so.0", "libxcb-shape.so.0", "libxcb-sync.so.1",
    "libxcb-xfixes.so.0", "libxcb-xkb.so.1", "libxkbcommon-x11.so.0", "libX11-xcb.so.1",
]  # fmt: skip
_NOT_FOUND = re.compile(r"^\s*(\S+)\s*=>\s*not found", re.MULTILINE)


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so, found without importing Qt."""
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(next(iter(spec.submodule_search_locations))) / "Qt/plugins/platforms/libqxcb.so"
    return plugin if plugin.exists() else None


def missing_libraries(plugin: Path, ldd: str = "ldd") -> list[str]:
    """Libraries the plugin links (directly or not) that the loader cannot find."""
    try:
        out = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []  # no ldd (a minimal image): let Qt speak for itself
    return sorted(set(_NOT_FOUND.findall(out)))


def packages_for(libraries: list[str]) -> tuple[list[str], list[str]]:
    """(Debian packages to install, libraries we have no package name for)."""
    known = sorted({PACKAGES[lib] for lib in libraries if lib in PACKAGES})
    return known, [lib for lib in libraries if lib not in PACKAGES]


def uses_xcb(env: dict[str, str]) -> bool:
    """Whether Qt will try the xcb plugin: asked for, or the default outside a Wayland session."""
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(";")[0].split(":")[0] == "xcb"
    return not env.get("WAYLAND_DISPLAY")


def advice(packages: list[str], unknown: list[str]) -> str:
    lines = ["Nemo Chat needs system libraries that Qt's X11 (xcb) plugin uses:"]
    if packages:
        lines.append(f"  sudo apt-get install {' '.join(packages)}")
    if unknown:
        lines.append(f"  and the packages that provide: {', '.join(unknown)}")
    lines.append("(or run `make run INSTALL_LINUX_DEPS=1` as root to install them)")
    return "\n".join(lines)


def install(packages: list[str]) -> bool:
    """apt-get install, only as root with apt-get present; True when it succeeded."""
    if not packages or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *packages]):
        if subprocess.run(cmd, env=env, check=False).returncode != 0:
            return False
    return True


def loads_quickly(libraries: list[str] | None = None) -> bool:
    """Whether the loader finds every xcb library (dlopen: a few ms, where ldd takes ~0.1 s)."""
    import ctypes

    for lib in libraries if libraries is not None else XCB_LIBRARIES:
        try:
            ctypes.CDLL(lib)
        except OSError:
            return False
    return True


def check(
    env: dict[str, str] | None = None, plugin: Path | None = None, quick: bool = False
) -> str | None:
    """None when Qt can start here (or this is not Linux/xcb); else what to install or do.

    quick: trust a successful dlopen of the xcb libraries and skip ldd (at app start)."""
    env = dict(os.environ) if env is None else env
    if not sys.platform.startswith("linux") or not uses_xcb(env):
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    missing = [] if quick and loads_quickly() else missing_libraries(plugin)
    if missing:
        return advice(*packages_for(missing))
    if not env.get("DISPLAY"):
        return (
            "Nemo Chat needs a display: DISPLAY is not set. Run it in a desktop session, "
            "or under a virtual one: xvfb-run -a make run"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """`python -m app.linux_deps [--install]`: 0 ready, 1 libraries missing (printed)."""
    argv = sys.argv[1:] if argv is None else argv
    problem = check()
    if problem and "--install" in argv:
        plugin = xcb_plugin()
        packages, _ = packages_for(missing_libraries(plugin)) if plugin else ([], [])
        if install(packages):
            problem = check()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
