"""The engine on its own thread: EngineWorker owns all MLX work.

MLX streams belong to the thread that made them, so loading, prefill, decoding and freeing all
run on ONE QThread (DESIGN rule 1). Requests arrive as queued signals from EngineController
(app.bridge.engine_controller); results go back as signals of plain data (rule 2), built with the
helpers in app.bridge.engine_requests.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

import engine
from app.bridge.engine_requests import (
    ConvertRequest,
    Request,
    SummaryRequest,
    cancelled_stats,
    generation_error_message,
    load_error_message,
    model_info,
    sampling_settings,
    summary_max_tokens,
    with_system_prompt,
)
from engine.config import ConfigError
from engine.docs.summarize import (
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryDone,
    SummaryPlan,
    session_generate_fn,
    summarize,
)
from engine.events import (
    ContextTrimmed,
    Finished,
    GenerationStats,
    PrefillProgress,
    TextChunk,
)
from engine.session import ChatSession
from engine.tokenizer import TokenizerError, load_tokenizer
from engine.weights import WeightsError

log = logging.getLogger(__name__)

CHUNK_INTERVAL_S = 0.033  # ~30 GUI updates a second: smooth to read, cheap to lay out


class ChunkBatcher:
    """Coalesces streamed text: at most one GUI update per `interval` (the first goes at once)."""

    def __init__(
        self, interval: float = CHUNK_INTERVAL_S, clock: Callable[[], float] = time.monotonic
    ):
        self._interval, self._clock = interval, clock
        self._parts: list[str] = []
        self._last = float("-inf")

    def add(self, text: str) -> str | None:
        """Buffer `text`; return everything buffered when it is time to emit, else None."""
        self._parts.append(text)
        now = self._clock()
        if now - self._last < self._interval:
            return None
        self._last = now
        return self.flush()

    def flush(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


class EngineWorker(QObject):
    """Lives on the engine thread; owns the Engine and one ChatSession. Use via EngineController."""

    stateChanged = Signal(str)
    loadProgress = Signal(int, int)
    modelLoaded = Signal(object)  # ModelInfo
    modelFailed = Signal(str)
    started = Signal(int)
    prefillProgress = Signal(int, int, int)
    contextTrimmed = Signal(int, int, int, int)
    chunk = Signal(int, str)
    contextUsage = Signal(int, int, int)  # rid, used tokens, num_ctx
    finished = Signal(int, object)  # GenerationStats
    failed = Signal(int, str)
    summaryProgress = Signal(int, int, int, float, str)  # rid, part, count, eta_s, label

    convertProgress = Signal(object)  # engine.hub.convert_flow.PullProgress
    converted = Signal(str)  # the quantized model folder
    convertFailed = Signal(str, bool)  # message, cancelled

    def __init__(self, chunk_interval: float = CHUNK_INTERVAL_S):
        super().__init__()
        self._engine: engine.Engine | None = None
        self._session: ChatSession | None = None  # made at the first request
        self._num_ctx = 8192
        self._kv_bits: int | None = None
        self._chunk_interval = chunk_interval
        # Read by the controller on the GUI thread: tiktoken encoding is thread-safe, no MLX.
        self.tokenizer: Any = None

    prepared = Signal()

    @Slot()
    def prepare(self) -> None:
        """Build the Nemo tokenizer once at start-up: building it holds the GIL ~0.4 s, which
        would stall the GUI if it happened during a model load (loads reuse this one)."""
        try:
            load_tokenizer(None)
        except TokenizerError:
            log.warning("the bundled tokenizer could not be built", exc_info=True)
        self.prepared.emit()

    @Slot(str)
    def load(self, path: str) -> None:
        self.stateChanged.emit("loading")
        self.loadProgress.emit(0, 1000)
        self._free()  # two 12B models do not fit: drop the old one first
        try:
            # Per mille: a 7 GB byte count would overflow the signal's C int.
            eng = engine.load(
                path, lambda done, total: self.loadProgress.emit(done * 1000 // total, 1000)
            )
        except Exception as e:  # noqa: BLE001 - any failure is reported, never a crash
            log.warning("loading %s failed", path, exc_info=True)
            self._free()
            self.stateChanged.emit("error")
            self.modelFailed.emit(load_error_message(path, e))
            return
        self._engine, self.tokenizer = eng, eng.tokenizer
        self.stateChanged.emit("ready")  # before modelLoaded: its handlers see a ready engine
        self.modelLoaded.emit(model_info(eng))

    @Slot(object)
    def convert(self, request: ConvertRequest) -> None:
        """The convert phase of app.bridge.downloader's flow: MLX quantization, so on this thread.
        pull_and_convert first re-checks the download (one Hub call, no bytes fetched)."""
        from engine.hub.convert_flow import pull_and_convert
        from engine.hub.download import DownloadError

        try:
            path = pull_and_convert(
                Path(request.root), repo_id=request.repo_id, bits=request.bits,
                group_size=request.group_size, token=request.token,
                on_progress=self.convertProgress.emit, cancel=request.cancel,
            )  # fmt: skip
        except engine.Cancelled as e:
            self.convertFailed.emit(str(e), True)
        except Exception as e:  # noqa: BLE001 - DownloadError, WeightsError… name the problem
            log.warning("converting %s failed", request.repo_id, exc_info=True)
            known = isinstance(e, (DownloadError, ConfigError, WeightsError))
            message = str(e) if known else f"the conversion failed ({type(e).__name__}: {e})"
            self.convertFailed.emit(message, False)
        else:
            self.converted.emit(str(path))

    @Slot()
    def unload(self) -> None:
        self._free()
        self.stateChanged.emit("none")

    @Slot()
    def close(self) -> None:
        """Free the model on this thread, then end the thread's event loop."""
        self._free()
        QThread.currentThread().quit()

    @Slot(int)
    def set_num_ctx(self, num_ctx: int) -> None:
        self._configure_or_log(num_ctx, self._kv_bits)

    @Slot(object)
    def set_kv_bits(self, kv_bits: int | None) -> None:
        self._configure_or_log(self._num_ctx, kv_bits)

    def _configure_or_log(self, num_ctx: int, kv_bits: int | None) -> None:
        try:
            self._configure(num_ctx, kv_bits)
        except ValueError:  # e.g. does not fit in memory: the next request reports it
            log.warning("num_ctx %s, kv_bits %s rejected", num_ctx, kv_bits, exc_info=True)

    @Slot(object)
    def generate(self, request: Request) -> None:
        self._serve(request, self._stream)

    @Slot(object)
    def summarize(self, request: SummaryRequest) -> None:
        self._serve(request, self._summarize)

    def _serve(self, request: Request | SummaryRequest, run: Callable) -> None:
        rid = request.rid
        if request.cancel.is_set():  # stopped or superseded while it waited in the queue
            self.started.emit(rid)
            self.finished.emit(rid, cancelled_stats())
            return
        if self._engine is None:
            self.failed.emit(rid, "No model is loaded: choose a model folder first.")
            return
        self.stateChanged.emit("generating")
        self.started.emit(rid)
        batcher = ChunkBatcher(self._chunk_interval)
        try:
            stats = run(request, batcher)
        except Exception as e:  # noqa: BLE001 - the worker must stay usable
            log.warning("request %d failed", rid, exc_info=True)
            self._emit_text(rid, batcher.flush())  # what was generated is kept, marked failed
            self._recover()
            self.stateChanged.emit("ready")
            self.failed.emit(rid, generation_error_message(e))
            return
        self._emit_text(rid, batcher.flush())
        self.contextUsage.emit(rid, stats.prompt_tokens + stats.generated_tokens, self._num_ctx)
        self.stateChanged.emit("ready")
        self.finished.emit(rid, stats)

    def _stream(self, request: Request, batcher: ChunkBatcher) -> GenerationStats:
        rid, settings = request.rid, request.settings
        self._configure(settings.num_ctx, settings.kv_bits)
        messages = with_system_prompt(request.messages, settings.system_prompt)
        stats = None
        events = self._chat_session().chat(messages, sampling_settings(settings), request.cancel)
        try:
            for event in events:
                if self._relay(rid, event, batcher):
                    continue
                if isinstance(event, ContextTrimmed):
                    self.contextTrimmed.emit(
                        rid, event.dropped_messages, event.prompt_tokens, event.num_ctx
                    )
                elif isinstance(event, Finished):
                    stats = event.stats
        finally:
            # Close it here, on this thread: a generator left to the garbage collector could
            # release its MLX arrays on whichever thread happens to collect it.
            close = getattr(events, "close", None)
            if close is not None:
                close()
        if stats is None:
            raise RuntimeError("the engine ended the answer without its stats")
        return stats

    def _summarize(self, request: SummaryRequest, batcher: ChunkBatcher) -> GenerationStats:
        """engine.docs.summarize on this thread's session: part progress out, the final call streamed."""
        rid, settings = request.rid, request.settings
        self._configure(settings.num_ctx, settings.kv_bits)
        generate_fn = session_generate_fn(self._chat_session(), sampling_settings(settings))
        events = summarize(
            request.document, generate_fn, self._engine.tokenizer, settings.num_ctx,
            instruction=request.instruction, max_tokens=summary_max_tokens(settings),
            cancel=request.cancel,
        )  # fmt: skip
        done, eta = None, -1.0  # eta: seconds left after the last finished part; -1 unknown
        try:
            for event in events:
                if self._relay(rid, event, batcher):
                    continue
                if isinstance(event, SummaryPlan):
                    label = "single" if event.single_pass else "plan"
                    self.summaryProgress.emit(rid, 0, event.parts, -1.0, label)
                elif isinstance(event, PartStarted):
                    self.summaryProgress.emit(rid, event.index, event.count, eta, "part")
                elif isinstance(event, PartDone):
                    eta = event.eta_s
                elif isinstance(event, CombineStarted):
                    label = "final" if event.final else "combine"
                    self.summaryProgress.emit(rid, event.index, event.count, event.eta_s, label)
                elif isinstance(event, SummaryDone):
                    done = event
        finally:
            events.close()  # here, on this thread (see _stream)
        if done is None:
            raise RuntimeError("the summary ended without its result")
        if done.cancelled or done.stats.final is None:
            return cancelled_stats()
        return done.stats.final

    def _chat_session(self) -> ChatSession:
        if self._session is None:
            # Made on first use: a num_ctx that does not fit fails a request, not a load.
            self._session = self._engine.session(num_ctx=self._num_ctx, kv_bits=self._kv_bits)
        return self._session

    def _relay(self, rid: int, event: object, batcher: ChunkBatcher) -> bool:
        """Emit the events that chats and summaries share; False for any other event."""
        if isinstance(event, TextChunk):
            self._emit_text(rid, batcher.add(event.text))
        elif isinstance(event, PrefillProgress):
            self.prefillProgress.emit(rid, event.done, event.total)
        else:
            return False
        return True

    def _emit_text(self, rid: int, text: str | None) -> None:
        if text:
            self.chunk.emit(rid, text)

    def _configure(self, num_ctx: int, kv_bits: int | None) -> None:
        """Apply the settings; the session checks them (memory) and keeps what still applies."""
        if num_ctx != self._num_ctx:
            if self._session is not None:
                self._session.set_num_ctx(num_ctx)
            self._num_ctx = num_ctx
        if kv_bits != self._kv_bits:
            if self._session is not None:
                self._session.set_kv_bits(kv_bits)
            self._kv_bits = kv_bits

    def _recover(self) -> None:
        # After a failure the session's cache may hold half an answer: start it afresh.
        if self._session is not None:
            try:
                self._session.reset()
            except Exception:  # noqa: BLE001
                log.warning("session reset failed; dropping the session", exc_info=True)
                self._session = None

    def _free(self) -> None:
        """Drop the model and its caches; runs on this thread, where the arrays were made."""
        if self._engine is None and self._session is None:
            return
        self.tokenizer = self._session = self._engine = None
        gc.collect()
        import mlx.core as mx

        mx.clear_cache()
