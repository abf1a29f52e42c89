"""EngineController: the GUI thread's handle on the engine, handing out one QtJob per request.

It owns one EngineService (engine.service: the ONE engine thread, where MLX lives) and wraps
each request in a QtJob (app.bridge.qt_job) whose signals only that request's owner hears
(DESIGN rule 4). Stop is the job's threading.Event, set from the GUI thread (rule 3). It also
keeps the engine's state for the views (no model, loading, ready, answering). The few engine
calls made here directly are pure Python: document extraction (for a helper thread), Tekken
token counts and memory-plan arithmetic.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.bridge.engine_requests import (
    ChatSettingsLike,
    ask_request,
    generation_options,
    part_cap_of,
    rates_for,
    stored_document,
    summary_max_tokens,
    summary_request,
)
from app.bridge.qt_job import ANSWER_KINDS, CHUNK_INTERVAL_S, JobRelay, QtJob
from app.bridge.state import EngineState
from engine.backend import Backend, ChatRequest, ModelInfo, TokenCounter, messages_of
from engine.config import ConfigError, nemo_12b_config
from engine.docs.detect import KIND_BY_EXTENSION
from engine.docs.document import Document
from engine.events import Cancelled
from engine.jobs import Job, JobDone, JobFailed, JobStarted, Sink
from engine.memory import NEMO_4BIT_WEIGHTS_BYTES, MemoryPlan, activation_dtype_bytes, plan
from engine.service import EngineService
from engine.tokenizer import TokenizerError, load_tokenizer

if TYPE_CHECKING:
    from engine.cache_settings import CacheSettings

log = logging.getLogger(__name__)

SHUTDOWN_WAIT_S = 30.0  # cancel is checked between prefill chunks: one chunk at most


class LoadFailed(Exception):
    """A model folder that could not be loaded for a reason the engine did not name."""

    kind = "load"


class ConvertFailed(Exception):
    kind = "convert"


def _load_local(
    path: str, on_progress: Callable[[int, int], None], caches: CacheSettings | None = None
) -> Backend:
    from engine.local_backend import LocalBackend
    from engine.weights import WeightsError  # lazy: engine.weights imports mlx-lm (seconds)

    try:
        return LocalBackend.load(path, on_progress, caches=caches)
    except (ConfigError, WeightsError, TokenizerError):
        raise  # the engine's own errors already name the file and the problem
    except Exception as e:  # noqa: BLE001 - any failure is reported, never a crash
        raise LoadFailed(f"{path}: cannot load the model ({type(e).__name__}: {e})") from e


class EngineController(QObject):
    """The GUI thread's handle on the engine service: requests in, QtJobs out."""

    stateChanged = Signal(str)  # EngineState
    loadProgress = Signal(int, int)  # per mille, of the model being loaded
    modelLoaded = Signal(object)  # ModelInfo
    modelFailed = Signal(str)
    jobSubmitted = Signal(object)  # every QtJob handed out (activity, tests)
    answerMeasured = Signal(object)  # a chat answer's GenerationStats (this machine's rates)
    cachesChanged = Signal()  # `caches` was set after construction

    def __init__(
        self,
        parent: QObject | None = None,
        chunk_interval: float = CHUNK_INTERVAL_S,
        *,
        caches: CacheSettings | None = None,
    ):
        super().__init__(parent)
        # KV-cache snapshots of the models it loads (app.bridge.cache_control); None: memory
        # only, nothing written (tests, scripts). app.main sets the app's cache folder.
        self._caches = caches
        self._state = EngineState.NONE
        self._model_info: ModelInfo | None = None
        self._chunk_interval = chunk_interval
        self._live: list[QtJob] = []  # handed out and not ended, in queue order
        self._closed = False
        self._relay = JobRelay(self)
        self.service = EngineService(name="engine")  # queues its tokenizer-building job first
        self.prepared = False  # True once the engine thread ran a first job
        job, sink = self._job("prepare")
        self.service.submit("prepare", lambda _job: None, sink)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # --- state (GUI thread) ---

    @property
    def caches(self) -> CacheSettings | None:
        """Where and how the models it loads keep KV caches (engine.cache_store)."""
        return self._caches

    @caches.setter
    def caches(self, caches: CacheSettings | None) -> None:
        self._caches = caches
        self.cachesChanged.emit()

    @property
    def state(self) -> EngineState:
        return self._state

    @property
    def model_info(self) -> ModelInfo | None:
        return self._model_info

    @property
    def busy(self) -> bool:
        """An answer is running or waiting for the engine."""
        return any(j.kind in ANSWER_KINDS and not j.ended for j in self._live)

    # --- requests (GUI thread) ---

    def send(
        self,
        messages: Sequence[Mapping[str, str]],
        settings: ChatSettingsLike,
        *,
        key: str | None = None,
        max_tokens: int | None = None,
        kind: str = "chat",
    ) -> QtJob:
        """The next assistant message for `messages` (from app.chat.prompt, system prompt
        included); `key` names the conversation whose cache the engine may reuse."""
        request = ChatRequest(messages_of(messages), generation_options(settings, max_tokens), key)
        job, sink = self._job(kind)
        return job.attach(self.service.chat(request, sink, kind=kind))

    def summarize(
        self,
        documents: Document | Sequence[Document],
        settings: ChatSettingsLike,
        instruction: str | None = None,
        *,
        finished: Sequence[Mapping[str, Any]] = (),
    ) -> QtJob:
        """Summarize one or more documents (every page read, in parts of at most the "Longest
        part" setting, the map step batched) as the next answer. Its `progress` signal carries
        the run's events (SummaryPlan, PartStarted, PartDone, CombineStarted, SummaryDone);
        `finished`: stored part rows (app.store.summary_parts) not read again."""
        request = summary_request(documents, settings, instruction, finished)
        job, sink = self._job("summary")
        return job.attach(self.service.summarize(request, sink))

    def ask(
        self,
        documents: Document | Sequence[Document],
        question: str,
        settings: ChatSettingsLike,
        *,
        finished: Sequence[Mapping[str, Any]] = (),
    ) -> QtJob:
        """A question put to every part of documents too long for the context; the answer
        combines what the parts found, citing pages. Events as for summarize()."""
        request = ask_request(documents, question, settings, finished)
        job, sink = self._job("ask")
        return job.attach(self.service.ask(request, sink))

    def summary_plan(
        self,
        documents: Document | Sequence[Document],
        settings: ChatSettingsLike,
        measured: tuple[float, float] = (0.0, 0.0),
        question: str | None = None,
    ) -> Any:
        """The plan of a summary (or question) without running it: parts, estimated seconds
        from `measured` (prefill, decode tok/s) and a larger num_ctx when one fits memory and
        cuts the parts (engine.docs.summary_estimate.PlanReport); None when it cannot be
        planned (the run itself then says why). Pure Python (tiktoken), fine on the GUI thread."""
        from engine.docs.summary_estimate import MemoryFacts, plan_report

        info = self._model_info
        if info is None or info.config is None:
            config, weights = nemo_12b_config(), NEMO_4BIT_WEIGHTS_BYTES
        else:
            config, weights = info.config, info.weights_bytes
        docs = (documents,) if isinstance(documents, Document) else tuple(documents)
        memory = MemoryFacts(
            config, weights, settings.kv_bits, dtype_bytes=activation_dtype_bytes()
        )
        try:
            return plan_report(
                docs[0] if len(docs) == 1 else list(docs), load_tokenizer(None),
                settings.num_ctx, max_tokens=summary_max_tokens(settings),
                part_cap=part_cap_of(settings), question=question,
                rates=rates_for(*measured, weights), memory=memory,
            )  # fmt: skip
        except Exception:  # noqa: BLE001 - the run reports budget errors with their numbers
            log.debug("no plan", exc_info=True)
            return None

    @staticmethod
    def stored_document(name: str, text: str, path: str | None = None) -> Document:
        """A stored attachment as the Document to summarize again (name and pages kept)."""
        return stored_document(name, text, path)

    def load_model(self, path: str) -> QtJob:
        """Load a model folder; answers (running or queued) stop first, as cancelled."""
        self._stop_answers()
        job, sink = self._job("load")
        load = functools.partial(_load_local, caches=self.caches)
        return job.attach(self.service.load(str(path), sink, factory=load))

    def use_backend(self, make: Callable[[], Backend]) -> QtJob:
        """Switch to the backend `make()` builds on the engine thread (a server's client,
        app.bridge.backend_control); like load_model: answers stop first, result ModelInfo."""
        self._stop_answers()
        job, sink = self._job("load")
        return job.attach(self.service.use(make, sink))

    def unload_model(self) -> QtJob:
        self._stop_answers()
        job, sink = self._job("unload")
        return job.attach(self.service.use(lambda: None, sink))

    def convert_model(
        self, root: str, repo_id: str, bits: int, group_size: int, token: str | None
    ) -> QtJob:
        """Quantize a downloaded original (MLX, so on the engine thread); the job's progress
        carries PullProgress, its finished the new folder (a str), or a cancelled finish."""
        from engine.hub.convert_flow import pull_and_convert
        from engine.hub.errors import DownloadError
        from engine.weights import WeightsError  # lazy: engine.weights imports mlx-lm (seconds)

        def run(job: Job) -> str:
            try:
                path = pull_and_convert(
                    Path(root), repo_id=repo_id, bits=bits, group_size=group_size, token=token,
                    on_progress=job.emit, cancel=job.cancel,
                )  # fmt: skip
            except Cancelled as e:
                job.stop()
                return str(e)
            except (DownloadError, ConfigError, WeightsError):
                raise  # they name the problem
            except Exception as e:  # noqa: BLE001
                raise ConvertFailed(f"the conversion failed ({type(e).__name__}: {e})") from e
            return str(path)

        job, sink = self._job("convert")
        return job.attach(self.service.submit("convert", run, sink))

    def run_on_engine(self, kind: str, run: Callable[[Job], Any]) -> QtJob:
        """A chore on the engine thread (app.bridge.cache_control): `run(job)` may use
        `self.service.backend` there and returns plain data, the QtJob's result."""
        job, sink = self._job(kind)
        return job.attach(self.service.submit(kind, run, sink))

    def stop_ahead_of(self, job: QtJob) -> None:
        """Stop the answers queued or running before `job` (the quick prompt's "Stop it")."""
        for other in self._live[: self._live.index(job)] if job in self._live else []:
            if other.kind in ANSWER_KINDS:
                other.stop()

    def _stop_answers(self) -> None:
        self._check_open()
        for job in list(self._live):
            if job.kind in ANSWER_KINDS:
                job.stop()

    # --- pure helpers (any thread: no MLX) ---

    document_extensions: tuple[str, ...] = tuple(sorted(KIND_BY_EXTENSION))  # extract's list

    @staticmethod
    def extract_document(path: str) -> Document:
        """engine.docs.extract.extract(path); raises DocumentError naming the file and problem.
        Slow for long files: call it from a helper thread, never the GUI thread."""
        from engine.docs.extract import extract  # its readers (lxml, pdf) load on first use

        return extract(path)

    def document_tokenizer(self) -> TokenCounter:
        """Nemo's Tekken tokenizer (the loaded model's is the same); tiktoken, any thread."""
        return load_tokenizer(None)

    def count_tokens(self, text: str) -> int:
        """Tekken tokens in `text` (no BOS): pure tiktoken, fine on the GUI thread."""
        return len(self._counter().encode(text))

    def count_chat_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Tokens of the whole chat prompt as the engine would encode it (BOS included)."""
        return len(self._counter().encode_chat([dict(m) for m in messages]))

    def plan_memory(self, num_ctx: int, kv_bits: int | None) -> MemoryPlan:
        """engine.memory.plan for the loaded model, or for Nemo 12B 4-bit when none is loaded:
        pure arithmetic, safe on the GUI thread; the same numbers the engine checks."""
        info = self._model_info
        if info is None or info.config is None:
            config, weights = nemo_12b_config(), NEMO_4BIT_WEIGHTS_BYTES
        else:
            config, weights = info.config, info.weights_bytes
        return plan(config, weights, num_ctx, kv_bits, dtype_bytes=activation_dtype_bytes())

    def _counter(self) -> TokenCounter:
        if self._model_info is None:
            raise RuntimeError("no model is loaded")
        return load_tokenizer(None)  # built once at start (the service's "prepare" job)

    # --- shutdown ---

    def shutdown(self, timeout_ms: int = int(SHUTDOWN_WAIT_S * 1000)) -> bool:
        """Stop every job, free the model on its thread, end the thread; True when in time."""
        if self._closed:
            return not self.service.thread.is_alive()
        self._closed = True
        for job in list(self._live):
            job.stop()
        return self.service.shutdown(timeout_ms / 1000)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the engine has been shut down")

    # --- every job's events, on the GUI thread: the engine's state ---

    def _job(self, kind: str) -> tuple[QtJob, Sink]:
        """A QtJob and the sink its engine job feeds; the caller submits and attaches."""
        self._check_open()
        job = QtJob(kind, self._on_job_event)
        sink = self._relay.sink_for(job, self._chunk_interval)
        if kind != "prepare":
            self._live.append(job)
            self.jobSubmitted.emit(job)
        return job, sink

    def _on_job_event(self, job: QtJob, event: object) -> None:
        kind = job.kind
        if isinstance(event, (JobDone, JobFailed)) and job in self._live:
            self._live.remove(job)
        if kind == "prepare":
            self.prepared = self.prepared or isinstance(event, (JobDone, JobFailed))
        elif isinstance(event, JobStarted):
            if kind == "load":
                self._model_info = None
                self._set_state(EngineState.LOADING)
                self.loadProgress.emit(0, 1000)
            elif kind == "unload":
                self._model_info = None
            elif kind in ANSWER_KINDS:
                self._set_state(EngineState.GENERATING)
        elif isinstance(event, JobFailed):
            if kind == "load":
                self._set_state(EngineState.ERROR)
                self.modelFailed.emit(event.message)
            elif kind in ANSWER_KINDS:
                self._set_state(self._idle_state())
        elif isinstance(event, JobDone):
            if kind == "load" and not event.cancelled:
                self._model_info = event.result
                self._set_state(EngineState.READY)  # before modelLoaded: handlers see it ready
                self.modelLoaded.emit(event.result)
            elif kind == "unload":
                self._set_state(EngineState.NONE)
            elif kind in ANSWER_KINDS and self._state == EngineState.GENERATING:
                self._set_state(self._idle_state())
            if kind in ("chat", "quick") and not event.cancelled and event.result is not None:
                self.answerMeasured.emit(event.result)
        elif kind == "load" and job.running:
            # LoadProgress: the job's own signal has it too; the window's status bar uses this
            done, total = getattr(event, "done", 0), getattr(event, "total", 0)
            if total:
                self.loadProgress.emit(done * 1000 // total, 1000)

    def _idle_state(self) -> EngineState:
        return EngineState.READY if self._model_info is not None else EngineState.NONE

    def _set_state(self, state: EngineState) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)
