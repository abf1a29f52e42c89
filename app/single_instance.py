"""One running Nemo Chat per history: a second launch hands over its documents and quits.

The first launch listens on a QLocalServer named after the history folder. A later launch with
the same history connects, sends the documents it was asked to open (one JSON line), waits for
"ok" and exits; the first one brings its window forward and opens them. The connect-or-listen
step runs under a QLockFile so two launches at once cannot both become the server; a socket file
left by a crashed run (nobody answers on it) is removed and listened on again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

from PySide6.QtCore import QDir, QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

CONNECT_MS = 1000  # a live server on this machine answers in milliseconds
REPLY_MS = 10_000  # the running app may be busy for a moment (a long paint, a store write)
LOCK_MS = 15_000  # another launch's connect-or-listen step, at most
_MAX_MESSAGE = 1 << 20


def key_for(history_path: Path | str) -> str:
    """A server name for the folder holding this history (per user: the socket is in /tmp)."""
    folder = Path(history_path).expanduser().resolve().parent
    digest = hashlib.sha256(str(folder).encode()).hexdigest()[:16]
    user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    return f"nemo-chat-{user}-{digest}"


class SingleInstance(QObject):
    """`claim(documents)` is True for the instance that should run; False: handed over, quit."""

    activated = Signal(list)  # documents (list[str]) a later launch asked to open; [] to raise

    def __init__(self, key: str, parent: QObject | None = None):
        super().__init__(parent)
        self.key = key
        self.server: QLocalServer | None = None
        self._lock = QLockFile(QDir(QDir.tempPath()).filePath(f"{key}.lock"))
        self._lock.setStaleLockTime(0)  # stale only when its process is gone, never by age
        self._pending: dict[QLocalSocket, bytes] = {}

    def claim(self, documents: Sequence[str] = ()) -> bool:
        """Hand `documents` to a running instance (False), or become the running one (True)."""
        if not self._lock.tryLock(LOCK_MS):
            # Whoever holds the lock is starting up: it will listen. Try it once more.
            return not self.hand_over(documents)
        try:
            if self.hand_over(documents):
                return False
            self.listen()
            return True
        finally:
            self._lock.unlock()

    def hand_over(self, documents: Sequence[str] = ()) -> bool:
        """Send the documents to the instance listening on the key; True when it said ok.

        Blocking (it runs before the event loop): call it from another thread than the server's.
        """
        socket = QLocalSocket()
        socket.connectToServer(self.key)
        if not socket.waitForConnected(CONNECT_MS):
            return False  # nobody there, or a stale socket file from a crashed run
        socket.write(json.dumps({"documents": list(documents)}).encode() + b"\n")
        while socket.bytesToWrite() and socket.waitForBytesWritten(REPLY_MS):
            pass
        reply = b""
        while not reply.endswith(b"\n") and socket.waitForReadyRead(REPLY_MS):
            reply += bytes(socket.readAll().data())
        socket.disconnectFromServer()
        return reply.strip() == b"ok"

    def listen(self) -> None:
        """Become the server; removes a stale socket file (hand_over found nobody on it)."""
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(self.key):
            QLocalServer.removeServer(self.key)
            if not self.server.listen(self.key):
                # Not fatal: this run works, only without the one-instance guard.
                self.server = None
                return
        self.server.newConnection.connect(self._accept)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()  # removes the socket file
            self.server = None

    def _accept(self) -> None:
        while self.server is not None and self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            self._pending[socket] = b""
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._drop(s))
            self._read(socket)  # it may have written before we connected readyRead

    def _read(self, socket: QLocalSocket) -> None:
        if socket not in self._pending:
            return
        data = self._pending[socket] + bytes(socket.readAll().data())
        if len(data) > _MAX_MESSAGE:
            socket.abort()
            return
        if not data.endswith(b"\n"):
            self._pending[socket] = data
            return
        del self._pending[socket]
        try:
            documents = [str(d) for d in json.loads(data)["documents"]]
        except (ValueError, KeyError, TypeError):
            socket.abort()  # not one of ours
            return
        socket.write(b"ok\n")
        socket.flush()
        socket.disconnectFromServer()
        self.activated.emit(documents)

    def _drop(self, socket: QLocalSocket) -> None:
        self._pending.pop(socket, None)
        with suppress(RuntimeError):  # Qt may have deleted it with the server already
            socket.deleteLater()
