"""Download failures as messages for people: huggingface_hub, network and disk errors."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import get_token

from engine.events import Cancelled


class DownloadError(Exception):
    """A download failed; str(error) is a message for the user and `kind` says what went
    wrong, for the app to act on: "gated" (ask for a token), "offline", "not_found", "disk"
    (free some space), or "error"."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


class DownloadCancelled(Cancelled):
    """The cancel event was set; what was downloaded so far is kept and the next call resumes it."""


@contextmanager
def human_errors(repo_id: str, revision: str | None, endpoint: str, dest: Path) -> Iterator[None]:
    """Turn huggingface_hub, network and disk exceptions into a DownloadError for people."""
    host = urlsplit(endpoint).hostname or endpoint
    page = f"{endpoint}/{repo_id}"
    try:
        yield
    except (DownloadError, DownloadCancelled):
        raise
    except OfflineModeIsEnabled as e:
        raise DownloadError(
            "Hugging Face offline mode is on (HF_HUB_OFFLINE): unset it to download", "offline"
        ) from e
    except httpx2.TransportError as e:
        raise DownloadError(f"can't reach {host} — check your connection", "offline") from e
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else None
        if isinstance(e, GatedRepoError) or status in (401, 403):
            refused = (
                " (the saved token was refused: check that it can read this repo)"
                if get_token()
                else ""
            )
            raise DownloadError(
                f"{repo_id} is gated or private: accept the licence on the model page ({page}) "
                f"and sign in; set HF_TOKEN or run `hf auth login`{refused}",
                "gated",
            ) from e
        if isinstance(e, RevisionNotFoundError):
            raise DownloadError(f"{repo_id} has no revision {revision!r}") from e
        if isinstance(e, RemoteEntryNotFoundError):
            raise DownloadError(f"a file of {repo_id} is missing on {host}; try again later") from e
        if isinstance(e, RepositoryNotFoundError) or status == 404:
            raise DownloadError(
                f"no such model repo: {repo_id} (check the name on {host})", "not_found"
            ) from e
        raise DownloadError(f"{host} answered HTTP {status} for {repo_id}; try again later") from e
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DownloadError(
                f"the disk is full at {dest}: free some space and download again "
                "(it resumes where it stopped)",
                "disk",
            ) from e
        raise DownloadError(f"can't write the model to {dest}: {e.strerror or e}") from e
