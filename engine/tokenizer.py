"""Tekken, the Mistral Nemo tokenizer, on tiktoken: text and v3 chat encoding, streaming decoding.

mistral-common's Tekkenizer is the reference; this is the same encoding built straight on tiktoken
(fast to load, no pydantic), and mistral-common only supplies the tokenizer file when a model
folder has none.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import importlib.util
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import tiktoken

TEKKEN_FILENAME = "tekken.json"
BUNDLED_TEKKEN_NAME = "tekken_240718.json"
# The Nemo release's tekken.json; mistral-common ships it byte-identical.
BUNDLED_TEKKEN_SHA256 = "eccd1665d2e477697c33cb7f0daa6f6dfefc57a0a6bceb66d4be52952f827516"

# A v3 tekken.json lists no special tokens: these are mistral-common's defaults for ranks 0..19,
# the rest up to num_special_tokens are fillers "<SPECIAL_{i}>".
DEFAULT_SPECIAL_TOKENS = (
    "<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
    "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
    "[TOOL_CONTENT]",
)  # fmt: skip
SUPPORTED_VERSIONS = ("v3",)  # the chat format below is v3's; other versions need other templates
ROLES = ("system", "user", "assistant")
# mistral-common joins consecutive same-role messages, and the system prompt, with a blank line.
JOIN = "\n\n"


class TokenizerError(ValueError):
    """A tokenizer file that is missing, unreadable, tampered with or not a Nemo Tekken file."""


def _wheel_tekken_path() -> Path:
    # find_spec locates the package without importing it (its import pulls pydantic in).
    spec = importlib.util.find_spec("mistral_common")
    if spec is None or spec.origin is None:
        raise TokenizerError(
            f"no {TEKKEN_FILENAME} in the model folder and mistral-common is not installed "
            f"to provide {BUNDLED_TEKKEN_NAME}"
        )
    return Path(spec.origin).parent / "data" / BUNDLED_TEKKEN_NAME


def bundled_tekken_path() -> Path:
    """The Nemo tekken.json shipped inside the mistral-common wheel, checked against its sha256."""
    path = _wheel_tekken_path()
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read the bundled Tekken tokenizer: {e}") from e
    if digest != BUNDLED_TEKKEN_SHA256:
        raise TokenizerError(
            f"{path}: sha256 is {digest}, expected {BUNDLED_TEKKEN_SHA256} "
            "(the bundled Tekken tokenizer is corrupt or not the Nemo release; reinstall mistral-common)"
        )
    return path


def load_tokenizer(model_dir: Path | str | None = None) -> TekkenTokenizer:
    """The model folder's tekken.json if it has one, else the verified copy from mistral-common."""
    if model_dir is not None:
        path = Path(model_dir) / TEKKEN_FILENAME
        if path.exists():
            return read_tekken(path)
    return read_tekken(bundled_tekken_path())


# Built tokenizers by file content: building one holds the GIL ~0.4 s (JSON parse, tiktoken),
# which would stall the GUI thread; the app builds it once at start-up and loads reuse it.
_BUILT: dict[str, TekkenTokenizer] = {}
_BUILT_LOCK = threading.Lock()


def read_tekken(path: Path) -> TekkenTokenizer:
    """Build the tiktoken Encoding from a tekken.json exactly as mistral-common's Tekkenizer does."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise TokenizerError(f"{path}: cannot read the Tekken tokenizer file: {e}") from e
    key = hashlib.sha256(raw).hexdigest()
    with _BUILT_LOCK:
        if key not in _BUILT:
            _BUILT[key] = _build_tekken(Path(path), raw)
        built = _BUILT[key]
    # Same content, its own path: the tokenizer says which file it came from.
    return TekkenTokenizer(built._encoding, built.special_tokens, path=Path(path))


def _build_tekken(path: Path, raw: bytes) -> TekkenTokenizer:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: cannot read the Tekken tokenizer file: {e}") from e
    try:
        config = data["config"]
        pattern = config["pattern"]
        vocab_size = int(config["default_vocab_size"])
        num_special = int(config["default_num_special_tokens"])
        version = config.get("version")
        vocab = data["vocab"]
        specials = data.get("special_tokens")
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise TokenizerError(f"{path}: not a Tekken tokenizer file (missing or bad {e})") from e
    if version not in SUPPORTED_VERSIONS:
        raise TokenizerError(
            f"{path}: Tekken version {version!r} is not supported (Mistral Nemo uses v3)"
        )
    special_tokens = _special_tokens(path, specials, num_special)
    num_bpe = vocab_size - num_special
    if not isinstance(vocab, list) or not 256 <= num_bpe <= len(vocab):
        count = len(vocab) if isinstance(vocab, list) else type(vocab).__name__
        raise TokenizerError(
            f"{path}: vocab_size {vocab_size} - {num_special} special tokens needs "
            f"{num_bpe} BPE tokens, the file has {count}"
        )
    ranks = _mergeable_ranks(path, vocab[:num_bpe])
    try:
        # Special tokens stay out of tiktoken: user text must never turn into control ids.
        encoding = tiktoken.Encoding(
            name=Path(path).stem, pat_str=pattern, mergeable_ranks=ranks, special_tokens={}
        )
    except (ValueError, TypeError) as e:
        raise TokenizerError(f"{path}: bad Tekken pre-tokenizer pattern: {e}") from e
    return TekkenTokenizer(encoding, special_tokens, path=Path(path))


def _special_tokens(path: Path, specials: Any, num_special: int) -> tuple[str, ...]:
    # `specials` is raw JSON: a wrong shape raises TypeError/KeyError, reported below.
    if specials is None:
        names = list(DEFAULT_SPECIAL_TOKENS)
    else:
        try:
            ordered = sorted(specials, key=lambda t: t["rank"])
            names = [str(t["token_str"]) for t in ordered]
            ok = [t["rank"] for t in ordered] == list(range(len(ordered)))
        except (KeyError, TypeError) as e:
            raise TokenizerError(f"{path}: bad special_tokens entry ({e})") from e
        if not ok:
            raise TokenizerError(f"{path}: special token ranks are not 0..{len(names) - 1}")
    names += [f"<SPECIAL_{i}>" for i in range(len(names), num_special)]
    if len(names) != num_special or len(set(names)) != num_special:
        raise TokenizerError(
            f"{path}: expected {num_special} distinct special tokens, found {len(names)}"
        )
    for needed in ("<s>", "</s>", "[INST]", "[/INST]"):
        if needed not in names:
            raise TokenizerError(f"{path}: the control token {needed} is missing")
    return tuple(names)


def _mergeable_ranks(path: Path, vocab: list) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    try:
        for i, entry in enumerate(vocab):
            if entry["rank"] != i:
                raise TokenizerError(f"{path}: vocab entry {i} has rank {entry['rank']}")
            token = base64.b64decode(entry["token_bytes"], validate=True)
            if i < 256 and token != bytes([i]):
                raise TokenizerError(f"{path}: vocab entry {i} must be the single byte {i}")
            ranks[token] = i
    except (KeyError, TypeError, binascii.Error) as e:
        raise TokenizerError(f"{path}: bad vocab entry {i}: {e!r}") from e
    if len(ranks) != len(vocab):
        raise TokenizerError(f"{path}: the vocab has duplicate token bytes")
    return ranks


class TekkenTokenizer:
    """Token ids are [control tokens][BPE ranks + num_special_tokens], as in the model's embedding."""

    def __init__(self, encoding: tiktoken.Encoding, special_tokens: Sequence[str], path: Path):
        self._encoding = encoding
        self.special_tokens = tuple(special_tokens)
        self.num_special_tokens = len(self.special_tokens)
        self.vocab_size = self.num_special_tokens + encoding.n_vocab
        self.path = path
        index = {name: i for i, name in enumerate(self.special_tokens)}
        self.bos_id = index["<s>"]
        self.eos_id = index["</s>"]
        self.inst_id = index["[INST]"]
        self.inst_end_id = index["[/INST]"]

    def __repr__(self) -> str:
        return f"TekkenTokenizer({str(self.path)!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str) -> list[int]:
        """Plain text to ids, without BOS/EOS; "[INST]" or "</s>" in the text stay text."""
        offset = self.num_special_tokens
        return [t + offset for t in self._encoding.encode_ordinary(text)]

    def count_tokens(self, text: str) -> int:
        return len(self._encoding.encode_ordinary(text))

    def is_control(self, token_id: int) -> bool:
        return 0 <= token_id < self.num_special_tokens

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes of one token (b"" for a control token); may be part of a UTF-8 character."""
        token_id = self._check_id(token_id)
        if token_id < self.num_special_tokens:
            return b""
        return self._encoding.decode_single_token_bytes(token_id - self.num_special_tokens)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids to text with control tokens dropped; invalid UTF-8 becomes U+FFFD."""
        # Like mistral-common, each run between control tokens is decoded on its own.
        parts: list[str] = []
        run: list[int] = []
        for token_id in ids:
            token_id = self._check_id(token_id)
            if token_id < self.num_special_tokens:
                if run:
                    parts.append(self._encoding.decode(run, errors="replace"))
                    run = []
            else:
                run.append(token_id - self.num_special_tokens)
        if run:
            parts.append(self._encoding.decode(run, errors="replace"))
        return "".join(parts)

    def detokenizer(self) -> StreamingDetokenizer:
        return StreamingDetokenizer(self)

    def encode_chat(self, messages: Sequence[Mapping]) -> list[int]:
        """The v3 prompt: <s>[INST]u1[/INST]a1</s>[INST]SYSTEM\\n\\nu2[/INST].

        Same ids as mistral-common's encode_chat_completion: consecutive messages of one role are
        joined with a blank line, the system prompt goes before the last user message only, trailing
        spaces of assistant messages are dropped, and a final assistant message with "prefix": True is left open (no </s>) to be continued.
        """
        checked = _check_messages(messages)
        system = JOIN.join(content for role, content, _ in checked if role == "system" and content)
        turns = _merge_runs(checked)
        if not turns or turns[0][0] != "user":
            turns.insert(0, ("user", "", False))
        last_user = max(i for i, (role, _, _) in enumerate(turns) if role == "user")
        ids = [self.bos_id]
        for i, (role, content, prefix) in enumerate(turns):
            if role == "user":
                if i == last_user and system:
                    content = system + JOIN + content
                ids += [self.inst_id, *self.encode(content), self.inst_end_id]
            else:
                ids += self.encode(content.rstrip(" "))  # mistral-common drops trailing spaces
                if not prefix:
                    ids.append(self.eos_id)
        return ids

    def _check_id(self, token_id: int) -> int:
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size:
            raise ValueError(
                f"token id {token_id} is outside the vocabulary (0..{self.vocab_size - 1})"
            )
        return token_id


def _check_messages(messages: Sequence[Mapping]) -> list[tuple[str, str, bool]]:
    """mistral-common's request validation for text-only chats, as ValueErrors naming the message."""
    if not messages:
        raise ValueError("a chat needs at least one message")
    checked = []
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, Mapping) else None
        content = message.get("content") if isinstance(message, Mapping) else None
        if role not in ROLES:
            raise ValueError(f"message {i}: role must be one of {ROLES}, got {role!r}")
        if not isinstance(content, str):
            # ValueError, not TypeError: callers catch one error type for a malformed chat.
            raise ValueError(f"message {i} ({role}): content must be a string")  # noqa: TRY004
        prefix = bool(message.get("prefix", False))
        if prefix and (role != "assistant" or i != len(messages) - 1):
            raise ValueError(f"message {i}: only a final assistant message can be a prefix")
        if role == "assistant" and not content:
            raise ValueError(f"message {i}: an assistant message must have content")
        if i and checked[-1][0] == "assistant" and role == "system":
            raise ValueError(f"message {i}: a system message cannot follow an assistant message")
        checked.append((role, content, prefix))
    if len(checked) == 1 and checked[0][0] == "assistant":
        raise ValueError("a chat must start with a user or system message")
    if len(checked) > 1 and checked[-1][0] == "assistant" and not checked[-1][2]:
        raise ValueError(
            'the last message is an assistant message: set "prefix": True to continue it, '
            "or end with a user message"
        )
    return checked


def _merge_runs(checked: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    # System messages break runs (then vanish into the system prompt), as in mistral-common.
    turns: list[tuple[str, str, bool]] = []
    previous = None
    for role, content, prefix in checked:
        if role == "system":
            pass
        elif role == previous:
            _, text, was_prefix = turns[-1]
            text = text + JOIN + content if text and content else text or content
            turns[-1] = (role, text, was_prefix or prefix)
        else:
            turns.append((role, content, prefix))
        previous = role
    return turns


class StreamingDetokenizer:
    """Text of generated ids as they come, never a split UTF-8 character; O(1) per token.

    An incremental UTF-8 decoder holds at most the 3 bytes of an unfinished character.
    """

    def __init__(self, tokenizer: TekkenTokenizer):
        self._tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token_id: int) -> str:
        """The text this token completes (often "", e.g. for the first bytes of an emoji)."""
        if self._tokenizer.is_control(int(token_id)):
            # decode() decodes each run between control tokens on its own; so does this.
            return self.flush()
        return self._decoder.decode(self._tokenizer.token_bytes(token_id))

    def flush(self) -> str:
        """What is left; bytes that never became a character come out as U+FFFD."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
