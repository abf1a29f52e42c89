"""The double-click app's pieces that can be checked here without building a bundle.

The bundle itself is built and run by `make bundle-test` (minutes, so not in pytest).
"""

from __future__ import annotations

import configparser
import importlib.util
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QEvent
from PySide6.QtGui import QFileOpenEvent, QImage

from app.bridge.selftest import run_self_test
from app.file_open import FileOpenFilter, paths_from_argv

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"

# Written out here, not taken from packaging/: Apple's and freedesktop's names for our documents.
EXPECTED_UTIS = {
    "pdf": "com.adobe.pdf",
    "docx": "org.openxmlformats.wordprocessingml.document",
    "txt": "public.plain-text",
    "md": "net.daringfireball.markdown",
}
EXPECTED_MIME = {
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "text/plain",
    "text/markdown",
}


def _load(name: str):
    # packaging/ is a folder of scripts, not a package (its name would shadow PyPI's `packaging`).
    spec = importlib.util.spec_from_file_location(
        f"nemo_packaging_{name}", PACKAGING / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bundle_info():
    return _load("bundle_info")


@pytest.fixture(scope="module")
def render_icons():
    return _load("render_icons")


@pytest.fixture(scope="module")
def pngs(render_icons, tmp_path_factory, qapp) -> dict[int, Path]:
    return render_icons.render_all(render_icons.SVG, tmp_path_factory.mktemp("icons"))


def _pyproject_version() -> str:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))["project"]["version"]


# --- Info.plist -------------------------------------------------------------------------------


def test_info_plist_has_the_keys_macos_needs(bundle_info):
    plist = plistlib.loads(plistlib.dumps(bundle_info.info_plist()))  # valid plist data
    assert plist["CFBundleIdentifier"] == "app.nemochat.NemoChat"
    assert plist["CFBundleName"] == "Nemo Chat"
    assert plist["CFBundleShortVersionString"] == _pyproject_version()
    assert plist["CFBundleVersion"] == _pyproject_version()
    assert plist["LSMinimumSystemVersion"] == "14.0"
    assert plist["NSHighResolutionCapable"] is True
    assert plist["CFBundlePackageType"] == "APPL"
    assert plist["CFBundleIconFile"].endswith(".icns")


def test_info_plist_document_types_cover_pdf_docx_txt_md(bundle_info):
    plist = plistlib.loads(plistlib.dumps(bundle_info.info_plist()))
    types = plist["CFBundleDocumentTypes"]
    declared = {uti for t in types for uti in t["LSItemContentTypes"]}
    assert set(EXPECTED_UTIS.values()) <= declared
    for t in types:
        assert t["CFBundleTypeRole"] == "Viewer"
        assert t["LSHandlerRank"] == "Alternate"  # offered in "Open With", never the default
    # Markdown's UTI is imported with its extension, so a dropped .md file maps to it.
    imported = {d["UTTypeIdentifier"]: d for d in plist["UTImportedTypeDeclarations"]}
    markdown = imported[EXPECTED_UTIS["md"]]
    assert "md" in markdown["UTTypeTagSpecification"]["public.filename-extension"]
    assert "public.plain-text" in markdown["UTTypeConformsTo"]


def test_project_version_reads_the_project_table(bundle_info, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[build-system]\nversion = "9"\n[project]\nname = "x"\nversion = "1.2.3"\n')
    assert bundle_info.project_version(good) == "1.2.3"
    bad = tmp_path / "bad.toml"
    bad.write_text('[project]\nname = "x"\n[tool.x]\nversion = "1.0"\n')
    with pytest.raises(ValueError, match="no version"):
        bundle_info.project_version(bad)


# --- Linux .desktop ---------------------------------------------------------------------------


def test_desktop_entry_is_valid(bundle_info, tmp_path):
    path = tmp_path / "nemo-chat.desktop"
    path.write_text(bundle_info.desktop_entry(), "utf-8")
    validator = shutil.which("desktop-file-validate")
    if validator:
        result = subprocess.run([validator, str(path)], capture_output=True, text=True)
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(path)
    section = entry["Desktop Entry"]
    assert section["Type"] == "Application"
    assert section["Name"] == "Nemo Chat"
    assert section["Exec"] == "nemo-chat %F"  # %F: the files go to paths_from_argv
    assert set(filter(None, section["MimeType"].split(";"))) == EXPECTED_MIME


# --- icons ------------------------------------------------------------------------------------


def test_render_icons_makes_every_size_with_transparent_corners(pngs):
    assert {16, 32, 64, 128, 256, 512, 1024} <= set(pngs)
    for size, path in pngs.items():
        image = QImage(str(path))
        assert (image.width(), image.height()) == (size, size), path
        assert image.pixelColor(0, 0).alpha() == 0  # outside the rounded square
        assert image.pixelColor(size // 2, size // 2).alpha() == 255  # the opaque body


def test_icns_holds_each_png_at_its_size(render_icons, pngs, tmp_path):
    icns = render_icons.write_icns(pngs, tmp_path / "app.icns")
    chunks = render_icons.read_icns(icns)
    assert set(chunks) == set(render_icons.ICNS_TYPES)
    for kind, data in chunks.items():
        image = QImage.fromData(data, "PNG")
        expected = render_icons.ICNS_TYPES[kind]
        assert (image.width(), image.height()) == (expected, expected), kind


def test_read_icns_rejects_a_truncated_file(render_icons, pngs, tmp_path):
    icns = render_icons.write_icns(pngs, tmp_path / "app.icns")
    icns.write_bytes(icns.read_bytes()[:-10])
    with pytest.raises(ValueError, match="not an .icns"):
        render_icons.read_icns(icns)


def test_render_png_rejects_a_broken_svg(render_icons, tmp_path, qapp):
    bad = tmp_path / "bad.svg"
    bad.write_text("<svg")
    with pytest.raises(ValueError, match="bad.svg"):
        render_icons.render_png(bad, 16, tmp_path / "x.png")


# --- opening documents from the OS ------------------------------------------------------------


def test_file_open_filter_emits_for_a_file_open_event(qapp, tmp_path):
    doc = tmp_path / "report.pdf"
    doc.write_bytes(b"%PDF-1.4")
    received: list[str] = []
    file_filter = FileOpenFilter()
    file_filter.fileOpened.connect(received.append)
    qapp.installEventFilter(file_filter)
    try:
        QCoreApplication.sendEvent(qapp, QFileOpenEvent(str(doc)))
        QCoreApplication.sendEvent(qapp, QEvent(QEvent.Type.User))  # ignored
    finally:
        qapp.removeEventFilter(file_filter)
    assert received == [str(doc)]


def test_paths_from_argv_keeps_existing_files_only(tmp_path):
    pdf = tmp_path / "a.pdf"
    md = tmp_path / "-notes.md"
    history = tmp_path / "history.db"
    for p in (pdf, md, history):
        p.write_bytes(b"x")
    argv = [
        "--model", str(tmp_path),  # a folder, and an option's value
        str(pdf),
        "--history", str(history),  # an existing file, but the option's value
        str(tmp_path / "missing.txt"),
        "-platform", "offscreen",
        "--",
        str(md),  # after --, a name starting with '-' is a file
    ]  # fmt: skip
    assert paths_from_argv(argv) == [str(pdf), str(md)]
    assert paths_from_argv([]) == []


# --- --self-test ------------------------------------------------------------------------------

STATS = re.compile(
    r"^self-test ok: loaded tiny-hf \(bf16\) in [\d.]+ s, (\d+) tokens, ttft [\d.]+ s, "
    r"[\d.]+ tok/s, peak [\d.]+ GB; Qt [\d.]+ \w+; documents ok$"
)


def test_self_test_loads_generates_and_prints_stats(qapp, tiny_model_dir, capsys):
    assert run_self_test(str(tiny_model_dir), max_tokens=4) == 0
    out = capsys.readouterr().out.strip()
    match = STATS.match(out)
    assert match, out
    assert 1 <= int(match.group(1)) <= 4


def test_self_test_reports_a_broken_model_folder(qapp, tmp_path, capsys):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "mistral",')
    assert run_self_test(str(broken)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"self-test failed: cannot load {broken}: ")
    assert "config.json" in captured.err


def test_self_test_reports_a_missing_folder(qapp, tmp_path, capsys):
    assert run_self_test(str(tmp_path / "nowhere")) == 1
    assert "nowhere: not a folder" in capsys.readouterr().err


def test_frozen_entry_point_routes_self_test(qapp, tmp_path, capsys, monkeypatch):
    entry = _load("entry")
    monkeypatch.setattr(sys, "argv", ["nemo-chat", "--self-test", str(tmp_path / "nowhere")])
    assert entry.main() == 1
    assert "self-test failed" in capsys.readouterr().err


def test_describe_weights_names_quantization_or_float_type():
    from types import SimpleNamespace

    from app.bridge.selftest import describe_weights

    q4 = SimpleNamespace(quantization={"bits": 4, "group_size": 64}, torch_dtype="bfloat16")
    assert describe_weights(q4) == "4-bit g64"
    assert describe_weights(SimpleNamespace(quantization=None, torch_dtype="bfloat16")) == "bf16"
    assert describe_weights(SimpleNamespace(quantization=None, torch_dtype="float16")) == "fp16"
