"""Render resources/icon.svg into every icon size the bundles need, and the macOS .icns.

    python packaging/render_icons.py [--svg resources/icon.svg] [--out resources/icons]

PNGs come from Qt's QSvgRenderer (PySide6-Essentials ships QtSvg). The .icns is made by Apple's
iconutil on a Mac; elsewhere we write it ourselves: the format is a header and PNG chunks.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SVG = REPO / "resources" / "icon.svg"
OUT = REPO / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256, 512, 1024)
ICNS_NAME = "NemoChat.icns"

# .icns chunk types that hold PNG data, by pixel size (the @2x types reuse the larger PNG).
ICNS_TYPES: dict[bytes, int] = {
    b"icp4": 16,
    b"icp5": 32,
    b"ic11": 32,  # 16@2x
    b"icp6": 64,
    b"ic12": 64,  # 32@2x
    b"ic07": 128,
    b"ic08": 256,
    b"ic13": 256,  # 128@2x
    b"ic09": 512,
    b"ic14": 512,  # 256@2x
    b"ic10": 1024,  # 512@2x
}
# iconutil's .iconset names: (file name, pixel size).
ICONSET = [
    (f"icon_{pt}x{pt}{'@2x' if scale == 2 else ''}.png", pt * scale)
    for pt in (16, 32, 128, 256, 512)
    for scale in (1, 2)
]


def png_name(size: int) -> str:
    return f"icon_{size}.png"


def render_png(svg: Path, size: int, dst: Path) -> Path:
    """Draw the SVG onto a transparent size x size image with antialiasing."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    if QGuiApplication.instance() is None:  # QPainter needs a GUI application for its fonts
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        render_png._app = QGuiApplication([])  # kept alive for later calls
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"{svg}: not an SVG file Qt can draw")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHints(
        QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform
    )
    renderer.render(painter)
    painter.end()
    if not image.save(str(dst), "PNG"):
        raise OSError(f"{dst}: could not write the PNG")
    return dst


def render_all(svg: Path = SVG, out_dir: Path = OUT, sizes=SIZES) -> dict[int, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return {size: render_png(svg, size, out_dir / png_name(size)) for size in sizes}


def write_icns(pngs: dict[int, Path], dst: Path) -> Path:
    """Apple's icon container: b'icns' + total length, then (type, length, PNG bytes) chunks."""
    chunks = b"".join(
        kind + struct.pack(">I", 8 + len(data)) + data
        for kind, size in ICNS_TYPES.items()
        for data in [pngs[size].read_bytes()]
    )
    dst.write_bytes(b"icns" + struct.pack(">I", 8 + len(chunks)) + chunks)
    return dst


def read_icns(path: Path) -> dict[bytes, bytes]:
    """The chunks of an .icns file by type; raises ValueError if the lengths do not add up."""
    raw = path.read_bytes()
    if raw[:4] != b"icns" or struct.unpack(">I", raw[4:8])[0] != len(raw):
        raise ValueError(f"{path}: not an .icns file")
    chunks, pos = {}, 8
    while pos < len(raw):
        kind, length = raw[pos : pos + 4], struct.unpack(">I", raw[pos + 4 : pos + 8])[0]
        if length < 8 or pos + length > len(raw):
            raise ValueError(f"{path}: chunk {kind!r} at {pos} has a bad length {length}")
        chunks[kind] = raw[pos + 8 : pos + length]
        pos += length
    return chunks


def build_icns(pngs: dict[int, Path], dst: Path) -> Path:
    """iconutil where it exists (a Mac), our own writer elsewhere."""
    iconutil = shutil.which("iconutil")
    if iconutil is None:
        return write_icns(pngs, dst)
    with tempfile.TemporaryDirectory() as tmp:
        iconset = Path(tmp) / "NemoChat.iconset"
        iconset.mkdir()
        for name, size in ICONSET:
            shutil.copyfile(pngs[size], iconset / name)
        subprocess.run([iconutil, "-c", "icns", "-o", str(dst), str(iconset)], check=True)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--svg", type=Path, default=SVG)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    pngs = render_all(args.svg, args.out)
    icns = build_icns(pngs, args.out / ICNS_NAME)
    print(f"rendered {len(pngs)} PNGs ({min(pngs)}-{max(pngs)} px) and {icns} into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
