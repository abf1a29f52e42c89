"""The engine on its own thread: EngineWorker owns all MLX work, EngineController is its GUI face.

MLX streams belong to the thread that made them, so loading, prefill, decoding and freeing all
run on ONE QThread (DESIGN rule 1). Requests go in as queued signals; results come back as
signals of plain data (rule 2). Stop is a threading.Event set straight from the GUI thread
(rule 3), and every request has an id so that a stale request's signals are dropped (rule 4).
This is the only app module that imports engine.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, Signal, Slot

import engine
from engine.config import ConfigError, ModelConfig
from engine.documents import SUPPORTED_EXTENSIONS, extract
from engine.events import (
    ContextTrimmed,
    Event,
    Finished,
    GenerationStats,
    PrefillProgress,
    TextChunk,
)
from engine.generate import SamplingSettings
from engine.memory import NEMO_4BIT_WEIGHTS_BYTES, MemoryPlan, activation_dtype_bytes, plan
from engine.session import ChatSession
from engine.summarize import (
    CombineStarted,
    PartDone,
    PartStarted,
    SummaryDone,
    SummaryPlan,
    session_generate_fn,
    summarize,
)
from engine.synthetic import preset_config
from engine.tokenizer import TokenizerError, load_tokenizer
from engine.weights import WeightsError

log = logging.getLogger(__name__)

CHUNK_INTERVAL_S = 0.033  # ~30 GUI updates a second: smooth to read, cheap to lay out
MAX_CONTEXT = 131_072  # Nemo's trained context; its config says 1,024,000
SHUTDOWN_WAIT_MS = 30_000  # cancel is checked between prefill chunks: one chunk at most
QUEUED = Qt.ConnectionType.QueuedConnection
_DTYPE_LABELS = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class ModelInfo:
    """What the UI shows about the loaded model; plain data."""

    path: str
    name: str
    num_parameters: int  # unquantized count (Nemo: 12,247,782,400)
    weights_bytes: int  # in memory, as loaded
    quantization: str  # "4-bit g64", "bf16", ...
    max_context: int  # tokens the model was trained for (Nemo: 128K)
    config: ModelConfig = field(compare=False, repr=False)  # for memory plans


class ChatSettingsLike(Protocol):
    """The fields of app.settings.ChatSettings that a request uses."""

    num_ctx: int
    kv_bits: int | None
    system_prompt: str
    temperature: float
    top_p: float
    max_tokens: int


@dataclass(frozen=True)
class Request:
    """One answer to generate; built by the controller, read by the worker."""

    rid: int
    conversation_id: int
    messages: tuple[Mapping[str, str], ...]  # copies: the GUI may edit its own list meanwhile
    settings: ChatSettingsLike
    cancel: threading.Event  # set from the GUI thread to stop this request


@dataclass(frozen=True)
class SummaryRequest:
    """Summarize one document (engine.documents.Document: frozen plain data) into the chat."""

    rid: int
    conversation_id: int
    document: Any
    settings: ChatSettingsLike
    cancel: threading.Event
    instruction: str | None = None


def summary_max_tokens(settings: ChatSettingsLike) -> int:
    # The summary's length, capped at a quarter of num_ctx so that the parts keep room to split.
    return min(settings.max_tokens, max(64, settings.num_ctx // 4))


@dataclass(frozen=True)
class ConvertRequest:
    """Quantize downloaded original weights (engine.convert_flow.pull_and_convert) on this thread."""

    root: str  # the models folder; the original is in root/owner--name, the copy next to it
    repo_id: str
    bits: int
    group_size: int
    token: str | None
    cancel: threading.Event  # the download panel's Cancel


def model_name(model_dir: Path) -> str:
    """The folder name; for a Hugging Face cache snapshot, the repository name."""
    if model_dir.parent.name == "snapshots" and model_dir.parent.parent.name.startswith("models--"):
        return model_dir.parent.parent.name.split("--")[-1]
    return model_dir.name


def quantization_label(config: ModelConfig) -> str:
    if config.quantization:
        return f"{config.quantization['bits']}-bit g{config.quantization['group_size']}"
    return _DTYPE_LABELS.get(config.torch_dtype, config.torch_dtype)


def model_info(eng: engine.Engine) -> ModelInfo:
    config = eng.config
    return ModelInfo(
        path=str(eng.model_dir),
        name=model_name(Path(eng.model_dir)),
        num_parameters=config.num_parameters,
        weights_bytes=eng.weights_bytes,
        quantization=quantization_label(config),
        max_context=min(config.max_position_embeddings, MAX_CONTEXT),
        config=config,
    )


def sampling_settings(settings: ChatSettingsLike) -> SamplingSettings:
    return SamplingSettings(
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_tokens,
        repetition_penalty=getattr(settings, "repetition_penalty", None),
        seed=getattr(settings, "seed", None),
    )


def with_system_prompt(messages: Sequence[Mapping[str, str]], system_prompt: str) -> list[dict]:
    """The chat as the engine sees it: the settings' system prompt first, unless one is there."""
    chat = [dict(m) for m in messages]
    if system_prompt.strip() and not (chat and chat[0].get("role") == "system"):
        chat.insert(0, {"role": "system", "content": system_prompt})
    return chat


def load_error_message(path: str, error: Exception) -> str:
    # The engine's own errors already name the file and the problem.
    if isinstance(error, (ConfigError, WeightsError, TokenizerError)):
        return str(error)
    return f"{path}: cannot load the model ({type(error).__name__}: {error})"


def generation_error_message(error: Exception) -> str:
    # The engine's ValueErrors (a malformed chat, a num_ctx that does not fit in memory) and
    # ContextOverflow (token counts) are written for the user; anything else is a bug report.
    if isinstance(error, ValueError) or hasattr(error, "prompt_tokens"):
        return str(error)
    return f"Generation failed: {type(error).__name__}: {error}"


def cancelled_stats() -> GenerationStats:
    """Stats of a request stopped before it began."""
    return GenerationStats(0, 0, 0, 0, 0.0, 0.0, 0.0, 0, "cancelled")


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

    convertProgress = Signal(object)  # engine.convert_flow.PullProgress
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
        """The convert phase of app.downloader's flow: MLX quantization, so on this thread.
        pull_and_convert first re-checks the download (one Hub call, no bytes fetched)."""
        from engine.convert_flow import pull_and_convert
        from engine.hub import DownloadError

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
        events = self._events(messages, sampling_settings(settings), request.cancel)
        try:
            for event in events:
                if isinstance(event, TextChunk):
                    self._emit_text(rid, batcher.add(event.text))
                elif isinstance(event, PrefillProgress):
                    self.prefillProgress.emit(rid, event.done, event.total)
                elif isinstance(event, ContextTrimmed):
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
        """engine.summarize on this thread's session: part progress out, the final call streamed."""
        rid, settings = request.rid, request.settings
        self._configure(settings.num_ctx, settings.kv_bits)
        if self._session is None:
            self._session = self._engine.session(num_ctx=self._num_ctx, kv_bits=self._kv_bits)
        generate_fn = session_generate_fn(self._session, sampling_settings(settings))
        events = summarize(
            request.document, generate_fn, self._engine.tokenizer, settings.num_ctx,
            instruction=request.instruction, max_tokens=summary_max_tokens(settings),
            cancel=request.cancel,
        )  # fmt: skip
        done, eta = None, -1.0  # eta: seconds left after the last finished part; -1 unknown
        try:
            for event in events:
                if isinstance(event, TextChunk):
                    self._emit_text(rid, batcher.add(event.text))
                elif isinstance(event, PrefillProgress):
                    self.prefillProgress.emit(rid, event.done, event.total)
                elif isinstance(event, SummaryPlan):
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

    def _events(
        self, messages: list[dict], sampling: SamplingSettings, cancel: threading.Event
    ) -> Iterator[Event]:
        if self._session is None:
            # Made on first use: a num_ctx that does not fit fails a request, not a load.
            self._session = self._engine.session(num_ctx=self._num_ctx, kv_bits=self._kv_bits)
        return self._session.chat(messages, sampling, cancel)

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

    convertProgress = Signal(object)  # engine.convert_flow.PullProgress
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
        """engine.documents.extract(path); raises DocumentError naming the file and the problem."""
        return extract(path)

    def document_tokenizer(self) -> Any:
        """The loaded model's Tekken tokenizer, else Nemo's bundled one; tiktoken, any thread."""
        return self._worker.tokenizer or load_tokenizer(None)

    def convert_model(
        self, root: str, repo_id: str, bits: int, group_size: int, token: str | None,
        cancel: threading.Event,
    ) -> None:  # fmt: skip
        """Quantize a downloaded original on the engine thread (app.downloader calls this);
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
