"""Build the app for the platform this runs on (`make bundle`).

    python packaging/build_app.py [--dist dist] [--no-dmg]

macOS: dist/Nemo Chat.app (ad-hoc signed) and dist/Nemo-Chat-<version>.dmg with an
Applications link. Linux: dist/nemo-chat/ (one folder) with a .desktop file, PNG icons and
install-desktop-entry.sh. Signing with a Developer ID and notarizing: packaging/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bundle_info
import render_icons

SPEC = Path(__file__).resolve().parent / "nemo_chat.spec"
REPO = bundle_info.REPO
IS_MAC = sys.platform == "darwin"
HICOLOR_SIZES = (16, 32, 48, 64, 128, 256, 512)

INSTALL_SH = """#!/bin/sh
# Adds Nemo Chat to this user's application menu (and "Open With" for PDF/DOCX/TXT/MD).
set -e
here="$(cd "$(dirname "$0")" && pwd)"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
for png in "$here"/share/icons/hicolor/*/apps/nemo-chat.png; do
    size="$(basename "$(dirname "$(dirname "$png")")")"
    mkdir -p "$data/icons/hicolor/$size/apps"
    cp "$png" "$data/icons/hicolor/$size/apps/nemo-chat.png"
done
mkdir -p "$data/applications"
sed "s|^Exec=nemo-chat|Exec=\\"$here/nemo-chat\\"|" "$here/share/applications/nemo-chat.desktop" \\
    > "$data/applications/nemo-chat.desktop"
command -v update-desktop-database >/dev/null && update-desktop-database "$data/applications" || true
echo "Nemo Chat added to the application menu ($data/applications/nemo-chat.desktop)"
"""


def run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kw)


def pyinstaller(dist: Path, work: Path) -> None:
    run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            SPEC,
            "--noconfirm",
            "--distpath",
            dist,
            "--workpath",
            work,
        ]
    )


def finish_linux(folder: Path, icons: Path) -> None:
    """The .desktop entry and hicolor PNGs inside the bundle, and a script that installs them."""
    apps = folder / "share" / "applications"
    apps.mkdir(parents=True, exist_ok=True)
    (apps / "nemo-chat.desktop").write_text(bundle_info.desktop_entry(), "utf-8")
    for size in HICOLOR_SIZES:
        dst = folder / "share" / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        dst.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(icons / render_icons.png_name(size), dst / "nemo-chat.png")
    script = folder / "install-desktop-entry.sh"
    script.write_text(INSTALL_SH, "utf-8")
    script.chmod(0o755)


def check_mlx_wheel_target() -> None:
    """MLX wheels built for a newer macOS carry a metallib that macOS 14 cannot load."""
    from importlib.metadata import PackageNotFoundError, distribution

    for name in ("mlx-metal", "mlx"):
        try:
            wheel = distribution(name).read_text("WHEEL") or ""
        except PackageNotFoundError:
            continue
        tags = [
            line.split(":", 1)[1].strip() for line in wheel.splitlines() if line.startswith("Tag:")
        ]
        for tag in tags:
            if "macosx_" in tag:
                major = int(tag.split("macosx_")[1].split("_")[0])
                if major > 14:
                    sys.exit(
                        f"{name} is the {tag} wheel: its Metal library needs macOS {major}, but the "
                        f"app promises {bundle_info.MIN_MACOS}. Reinstall the macosx_14_0 wheel "
                        "(packaging/README.md)."
                    )


def link_metallib_beside_libmlx(app: Path) -> None:
    """MLX looks for mlx.metallib next to the libmlx it was loaded from; give every copy one."""
    metallibs = sorted(app.rglob("mlx.metallib"))
    if not metallibs:
        sys.exit(f"{app}: no mlx.metallib inside the bundle; MLX cannot run on the GPU")
    for lib in app.rglob("libmlx.dylib"):
        target = lib.parent / "mlx.metallib"
        if not target.exists():
            target.symlink_to(os.path.relpath(metallibs[0].resolve(), lib.parent))
            print(f"linked {target.relative_to(app)}")


def sign(app: Path) -> None:
    """Developer ID with the hardened runtime when CODESIGN_IDENTITY is set, else ad hoc."""
    identity = os.environ.get("CODESIGN_IDENTITY")
    if identity:
        entitlements = Path(__file__).resolve().parent / "entitlements.plist"
        run(["codesign", "--force", "--deep", "--options", "runtime", "--timestamp",
             "--entitlements", entitlements, "-s", identity, app])  # fmt: skip
    else:
        run(["codesign", "--force", "--deep", "-s", "-", app])  # runs here; Gatekeeper will ask
    run(["codesign", "--verify", "--deep", "--strict", "--verbose=2", app])


def finish_mac(dist: Path, make_dmg: bool) -> None:
    app = dist / f"{bundle_info.APP_NAME}.app"
    link_metallib_beside_libmlx(app)
    sign(app)  # again: the links above changed the bundle after PyInstaller signed it
    run(["plutil", "-lint", app / "Contents" / "Info.plist"])
    if not make_dmg:
        return
    dmg = dist / f"{bundle_info.APP_NAME.replace(' ', '-')}-{bundle_info.project_version()}.dmg"
    with tempfile.TemporaryDirectory() as tmp:
        stage = Path(tmp) / bundle_info.APP_NAME
        stage.mkdir()
        run(["ditto", app, stage / app.name])  # keeps symlinks, permissions and the signature
        (stage / "Applications").symlink_to("/Applications")
        run(["hdiutil", "create", "-volname", bundle_info.APP_NAME, "-srcfolder", stage,
             "-ov", "-format", "UDZO", dmg])  # fmt: skip
    if os.environ.get("CODESIGN_IDENTITY"):
        run(["codesign", "--force", "--timestamp", "-s", os.environ["CODESIGN_IDENTITY"], dmg])
    print(f"built {dmg}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "pyinstaller")
    parser.add_argument("--no-dmg", action="store_true", help="macOS: skip the disk image")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    if IS_MAC:
        check_mlx_wheel_target()
    pngs = render_icons.render_all()
    render_icons.build_icns(pngs, render_icons.OUT / render_icons.ICNS_NAME)
    pyinstaller(args.dist, args.work)
    if IS_MAC:
        finish_mac(args.dist, make_dmg=not args.no_dmg)
        built = args.dist / f"{bundle_info.APP_NAME}.app"
    else:
        built = args.dist / bundle_info.EXECUTABLE
        finish_linux(built, render_icons.OUT)
    print(f"built {built} in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
