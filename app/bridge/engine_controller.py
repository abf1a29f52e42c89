"""EngineController: the GUI thread's handle on the engine thread.

It owns the QThread and its EngineWorker (app.bridge.worker), tags every request with an id, and drops
the signals of a stale request (DESIGN rule 4). Stop is a threading.Event set straight from the
GUI thread (rule 3). The few engine calls made here are pure Python: document extraction (for a
helper thread), the tiktoken tokenizer, and memory-plan arithmetic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

from app.bridge.engine_requests import (
    ChatSettingsLike,
    ConvertRequest,
    ModelInfo,
    Request,
    SummaryRequest,
)
from app.bridge.worker import CHUNK_INTERVAL_S, EngineWorker
from engine.docs.extract import SUPPORTED_EXTENSIONS, extract
from engine.events import GenerationStats
from engine.memory import NEMO_4BIT_WEIGHTS_BYTES, MemoryPlan, activation_dtype_bytes, plan
from engine.synthetic import preset_config
from engine.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

SHUTDOWN_WAIT_MS = 30_000  # cancel is checked between prefill chunks: one chunk at most
QUEUED = Qt.ConnectionType.QueuedConnection


class EngineController(QObject):
    """The GUI thread's handle on the engine: starts the thread, tags requests, drops stale ones."""

    stateChanged = Signal(str)  # "none" | "loading" | "ready" | "generating" | "error"
    loadProgress = Signal(int, int)
    modelLoaded = Signal(object)  # ModelInfo
    modelFailed = Signal(str)
    started = Signal(int)
    prefillProgress = Signal(int, int, int)  # rid, done, total
    contextTrimmed = Signal(int, int, int, int)  # rid, dropped messages, prompt tokens, num_ctx
    chunk = Signal(int, str)  # at most ~30 a second
    finished = Signal(int, object)  # rid, GenerationStats
    failed = Signal(int, str)
    contextUsage = Signal(int, int)  # used tokens, num_ctx
    summaryProgress = Signal(int, int, int, float, str)  # rid, part, count, eta_s, label
    becameIdle = Signal()  # the current request ended (after its finished/failed): see `busy`

    convertProgress = Signal(object)  # engine.hub.convert_flow.PullProgress
    converted = Signal(str)
    convertFailed = Signal(str, bool)  # message, cancelled

    _load = Signal(str)
    _convert = Signal(object)
    _generate = Signal(object)
    _summarize = Signal(object)
    _numCtx = Signal(int)
    _kvBits = Signal(object)
    _unload = Signal()
    _close = Signal()

    def __init__(self, parent: QObject | None = None, chunk_interval: float = CHUNK_INTERVAL_S):
        super().__init__(parent)
        self._state = "none"
        self._model_info: ModelInfo | None = None
        self._rid = 0
        self._current: int | None = None
        self._cancel = threading.Event()  # the current request's stop flag
        self._closed = False
        self._convert_cancel = threading.Event()  # the running conversion's, if any

        self._thread = QThread()
        self._thread.setObjectName("engine")
        self._worker = EngineWorker(chunk_interval)
        self._worker.moveToThread(self._thread)
        for signal, slot in (
            (self._load, self._worker.load),
            (self._convert, self._worker.convert),
            (self._generate, self._worker.generate),
            (self._summarize, self._worker.summarize),
            (self._numCtx, self._worker.set_num_ctx),
            (self._kvBits, self._worker.set_kv_bits),
            (self._unload, self._worker.unload),
            (self._close, self._worker.close),
        ):
            signal.connect(slot, QUEUED)
        w = self._worker
        for signal, slot in (
            (w.stateChanged, self._on_state),
            (w.loadProgress, self.loadProgress),
            (w.modelLoaded, self._on_loaded),
            (w.modelFailed, self.modelFailed),
            (w.started, self._on_started),
            (w.prefillProgress, self._on_prefill),
            (w.contextTrimmed, self._on_trimmed),
            (w.chunk, self._on_chunk),
            (w.contextUsage, self._on_usage),
            (w.finished, self._on_finished),
            (w.failed, self._on_failed),
            (w.convertProgress, self.convertProgress),
            (w.converted, self.converted),
            (w.convertFailed, self.convertFailed),
            (w.summaryProgress, self._on_summary_progress),
        ):
            signal.connect(slot, QUEUED)
        self.prepared = False  # True once the tokenizer is built (see EngineWorker.prepare)
        w.prepared.connect(self._on_prepared, QUEUED)
        self._thread.started.connect(self._worker.prepare)
        self._thread.start()
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # --- requests (GUI thread) ---

    @property
    def state(self) -> str:
        return self._state

    @property
    def model_info(self) -> ModelInfo | None:
        return self._model_info

    @property
    def busy(self) -> bool:
        """An answer is under way; send() would cancel it. Callers that must not (the quick
        prompt) wait for becameIdle instead."""
        return self._current is not None

    @property
    def current_request(self) -> int | None:
        """The id whose signals get through; None when no answer is under way."""
        return self._current

    def load_model(self, path: str) -> None:
        """Load a model folder on the engine thread; answers modelLoaded or modelFailed."""
        self._check_open()
        self._cancel.set()  # a running answer stops (and reports as cancelled) first
        self._load.emit(str(path))

    def unload_model(self) -> None:
        self._check_open()
        self._cancel.set()
        self._unload.emit()

    def send(
        self,
        conversation_id: int,
        messages: Sequence[Mapping[str, str]],
        settings: ChatSettingsLike,
    ) -> int:
        """Ask for the next assistant message; returns the request id its signals carry."""
        self._check_open()
        self._cancel.set()  # a previous answer stops; its signals are stale from now on
        self._cancel = threading.Event()
        self._rid += 1
        self._current = self._rid
        messages = tuple(dict(m) for m in messages)
        self._generate.emit(Request(self._rid, conversation_id, messages, settings, self._cancel))
        return self._rid

    def summarize(
        self,
        conversation_id: int,
        document: Any,
        settings: ChatSettingsLike,
        instruction: str | None = None,
    ) -> int:
        """Summarize `document` (from extract_document) as the next answer; like send(), it
        streams chunk/finished/failed, with summaryProgress between the model calls."""
        self._check_open()
        self._cancel.set()
        self._cancel = threading.Event()
        self._rid += 1
        self._current = self._rid
        request = SummaryRequest(
            self._rid, conversation_id, document, settings, self._cancel, instruction
        )
        self._summarize.emit(request)
        return self._rid

    # Documents: extraction is pure Python (no MLX), for a helper thread, never the GUI thread.
    document_extensions: tuple[str, ...] = SUPPORTED_EXTENSIONS

    @staticmethod
    def extract_document(path: str) -> Any:
        """engine.docs.extract.extract(path); raises DocumentError naming the file and the problem."""
        return extract(path)

    def document_tokenizer(self) -> Any:
        """The loaded model's Tekken tokenizer, else Nemo's bundled one; tiktoken, any thread."""
        return self._worker.tokenizer or load_tokenizer(None)

    def convert_model(
        self, root: str, repo_id: str, bits: int, group_size: int, token: str | None,
        cancel: threading.Event,
    ) -> None:  # fmt: skip
        """Quantize a downloaded original on the engine thread (app.bridge.downloader calls this);
        answers convertProgress…, then converted(path) or convertFailed(message, cancelled)."""
        self._check_open()
        self._convert_cancel = cancel
        self._convert.emit(ConvertRequest(root, repo_id, bits, group_size, token, cancel))

    def stop(self) -> None:
        """Stop the current answer now: the engine checks this between tokens and prefill chunks."""
        self._cancel.set()

    def set_num_ctx(self, num_ctx: int) -> None:
        self._check_open()
        self._numCtx.emit(int(num_ctx))

    def set_kv_bits(self, kv_bits: int | None) -> None:
        self._check_open()
        self._kvBits.emit(kv_bits)

    def count_tokens(self, text: str) -> int:
        """Tekken tokens in `text` (no BOS); runs here, on the GUI thread: pure tiktoken."""
        return len(self._tokenizer().encode(text))

    def count_chat_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Tokens of the whole chat prompt as the engine would encode it (BOS included)."""
        return len(self._tokenizer().encode_chat(list(messages)))

    def plan_memory(self, num_ctx: int, kv_bits: int | None) -> MemoryPlan:
        """engine.memory.plan for the loaded model, or for Nemo 12B 4-bit when none is loaded:
        pure arithmetic, safe on the GUI thread; the same numbers ChatSession checks."""
        info = self._model_info
        if info is None:
            config, weights = preset_config("nemo-12b"), NEMO_4BIT_WEIGHTS_BYTES
        else:
            config, weights = info.config, info.weights_bytes
        return plan(config, weights, num_ctx, kv_bits, dtype_bytes=activation_dtype_bytes())

    def shutdown(self, timeout_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Stop, free the model on its thread, end the thread; True when it ended in time."""
        if self._closed:
            return not self._thread.isRunning()
        self._closed = True
        self._current = None
        self._cancel.set()
        self._convert_cancel.set()
        self._close.emit()
        done = self._thread.wait(timeout_ms)
        if not done:
            log.error("the engine thread did not stop within %d ms", timeout_ms)
            _orphans.append(self._thread)  # never destroy a running QThread: that aborts
        return done

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the engine has been shut down")

    def _tokenizer(self) -> Any:
        tokenizer = self._worker.tokenizer
        if tokenizer is None:
            raise RuntimeError("no model is loaded")
        return tokenizer

    # --- results from the worker (delivered on the GUI thread) ---

    @Slot(str)
    def _on_state(self, state: str) -> None:
        if state in ("loading", "none", "error"):
            self._model_info = None
        self._state = state
        self.stateChanged.emit(state)

    @Slot()
    def _on_prepared(self) -> None:
        self.prepared = True

    @Slot(object)
    def _on_loaded(self, info: ModelInfo) -> None:
        self._model_info = info
        self.modelLoaded.emit(info)

    @Slot(int)
    def _on_started(self, rid: int) -> None:
        if rid == self._current:
            self.started.emit(rid)

    @Slot(int, int, int)
    def _on_prefill(self, rid: int, done: int, total: int) -> None:
        if rid == self._current:
            self.prefillProgress.emit(rid, done, total)

    @Slot(int, int, int, int)
    def _on_trimmed(self, rid: int, dropped: int, prompt_tokens: int, num_ctx: int) -> None:
        if rid == self._current:
            self.contextTrimmed.emit(rid, dropped, prompt_tokens, num_ctx)

    @Slot(int, str)
    def _on_chunk(self, rid: int, text: str) -> None:
        if rid == self._current:
            self.chunk.emit(rid, text)

    @Slot(int, int, int)
    def _on_usage(self, rid: int, used: int, num_ctx: int) -> None:
        if rid == self._current:
            self.contextUsage.emit(used, num_ctx)

    @Slot(int, object)
    def _on_finished(self, rid: int, stats: GenerationStats) -> None:
        if rid == self._current:
            self._current = None  # before emitting: a handler may send the next request
            self.finished.emit(rid, stats)
            self._emit_idle()

    @Slot(int, int, int, float, str)
    def _on_summary_progress(
        self, rid: int, part: int, count: int, eta_s: float, label: str
    ) -> None:
        if rid == self._current:
            self.summaryProgress.emit(rid, part, count, eta_s, label)

    @Slot(int, str)
    def _on_failed(self, rid: int, message: str) -> None:
        if rid == self._current:
            self._current = None
            self.failed.emit(rid, message)
            self._emit_idle()

    def _emit_idle(self) -> None:
        if self._current is None:  # unless a finished/failed handler already sent another
            self.becameIdle.emit()


_orphans: list[QThread] = []  # engine threads that outlived shutdown's wait
