"""What the OS is told about the app: the macOS Info.plist and the Linux .desktop entry.

Plain data, so tests check it on any platform and the spec (nemo_chat.spec) passes it to
PyInstaller's BUNDLE. The version is the one in pyproject.toml: one place to bump.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = REPO / "pyproject.toml"

APP_NAME = "Nemo Chat"  # the .app, the Dock and the menu bar; app/main.py's APP_NAME
EXECUTABLE = "nemo-chat"  # the binary inside the bundle, and the Linux command
BUNDLE_ID = "app.nemochat.NemoChat"  # reverse DNS of app/main.py's ORG_DOMAIN
MIN_MACOS = "14.0"

# The documents a user can drop on the Dock icon (or open with) to get "Summarize".
# (extension, UTI, MIME type, name); LSHandlerRank Alternate: offered, never the default viewer.
DOCUMENTS = [
    ("pdf", "com.adobe.pdf", "application/pdf", "PDF document"),
    (
        "docx",
        "org.openxmlformats.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "Word document",
    ),
    ("txt", "public.plain-text", "text/plain", "Plain text"),
    ("md", "net.daringfireball.markdown", "text/markdown", "Markdown document"),
]
# Markdown's UTI is not declared by every macOS version, so the app imports the declaration.
MARKDOWN_TYPE = {
    "UTTypeIdentifier": "net.daringfireball.markdown",
    "UTTypeDescription": "Markdown document",
    "UTTypeConformsTo": ["public.plain-text"],
    "UTTypeReferenceURL": "https://daringfireball.net/projects/markdown/",
    "UTTypeTagSpecification": {
        "public.filename-extension": ["md", "markdown"],
        "public.mime-type": ["text/markdown"],
    },
}


def project_version(pyproject: Path = PYPROJECT) -> str:
    """[project] version from pyproject.toml (a regex: tomllib is Python 3.11+ only)."""
    text = pyproject.read_text("utf-8")
    section = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    match = section and re.search(r'^version\s*=\s*"([^"]+)"', section.group(1), re.M)
    if not match:
        raise ValueError(f"{pyproject}: no version in the [project] table")
    return match.group(1)


def info_plist(version: str | None = None) -> dict:
    """The keys PyInstaller's BUNDLE merges into the generated Info.plist."""
    version = version or project_version()
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleExecutable": EXECUTABLE,
        "CFBundlePackageType": "APPL",
        "CFBundleShortVersionString": version,
        "CFBundleVersion": version,
        "CFBundleIconFile": "NemoChat.icns",
        "LSMinimumSystemVersion": MIN_MACOS,
        "LSArchitecturePriority": ["arm64"],
        "LSApplicationCategoryType": "public.app-category.productivity",
        "NSHighResolutionCapable": True,
        "NSRequiresAquaSystemAppearance": False,  # follow the system's dark mode
        "NSPrincipalClass": "NSApplication",
        "NSHumanReadableCopyright": "Apache-2.0",
        "CFBundleDocumentTypes": [
            {
                "CFBundleTypeName": name,
                "CFBundleTypeRole": "Viewer",
                "LSHandlerRank": "Alternate",
                "LSItemContentTypes": [uti],
            }
            for _ext, uti, _mime, name in DOCUMENTS
        ],
        "UTImportedTypeDeclarations": [MARKDOWN_TYPE],
    }


def desktop_entry(exec_path: str = EXECUTABLE, icon: str = EXECUTABLE) -> str:
    """A freedesktop.org .desktop file; %F passes the opened files to app/file_open.py."""
    mime = "".join(f"{m};" for _e, _u, m, _n in DOCUMENTS)
    return (
        "[Desktop Entry]\n"
        "Type=Application\n"
        "Version=1.0\n"
        f"Name={APP_NAME}\n"
        "GenericName=Local AI Chat\n"
        "Comment=Chat with Mistral Nemo on this computer and summarize documents\n"
        f"Exec={exec_path} %F\n"
        f"Icon={icon}\n"
        "Terminal=false\n"
        "Categories=Utility;TextTools;\n"
        f"MimeType={mime}\n"
        "Keywords=AI;LLM;Mistral;Nemo;Summarize;\n"
    )
