"""engine.tokenizer against mistral-common's Tekkenizer and encode_chat_completion (the oracle)."""

from __future__ import annotations

import functools
import json
import random
import re
import shutil

import pytest
from mistral_common.exceptions import MistralCommonException
from mistral_common.protocol.instruct.messages import AssistantMessage, SystemMessage, UserMessage
from mistral_common.protocol.instruct.request import ChatCompletionRequest
from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

from engine import tokenizer as tokenizer_module
from engine.tokenizer import (
    BUNDLED_TEKKEN_SHA256,
    TekkenTokenizer,
    TokenizerError,
    bundled_tekken_path,
    load_tokenizer,
)

SAMPLES = {
    "en": "The quick brown fox jumps over the lazy dog. It's 3:45 p.m., isn't it?",
    "fr": "Où est la bibliothèque ? J'ai besoin d'un café très fort, s'il vous plaît.",
    "de": "Grüße aus München! Die Straße ist schön, aber das Wetter ist ärgerlich.",
    "es": "¿Dónde está el baño? ¡Mañana será un día increíble para el niño!",
    "it": "Perché il caffè è così buono in Italia? Però la città è già piena.",
    "pt": "Não sei se você já ouviu falar, mas a ação começa amanhã às três.",
    "ru": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "zh": "我们今天去公园散步吧，天气非常好。机器学习正在改变世界。",
    "ja": "今日はとても良い天気ですね。東京タワーに行きましょう！カタカナとひらがな。",
    "ko": "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 정말 좋네요.",
    "ar": "مرحبا بالعالم! كيف حالك اليوم؟ اللغة العربية جميلة جدا.",
    "hi": "नमस्ते दुनिया! आप कैसे हैं? हिंदी एक सुंदर भाषा है।",
    "code": 'def f(x: int) -> dict[str, int]:\n\tif x >= 0x1F:\n        return {"a": x ** 2}  # ok\n',
    "emoji": "I ❤️ 🦜🦜 and 👩‍👩‍👧‍👦 families; flags 🇫🇷🇯🇵; math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ∮ ∑ √.",
    "mixed": "Hello 世界! Привет 🌍 — naïve café 東京 🚀 مرحبا 1234567890",
}
WHITESPACE = [
    "",
    " ",
    "   ",
    "\n",
    "\n\n\n",
    "\r\n",
    "\t\t",
    " \n \n ",
    "trailing   ",
    "   leading",
    "a  b   c    d",
    "line\n\n\n\nbreaks\r\n\r\nand\ttabs",
    "\u00a0nbsp\u2003em space\u3000ideographic",
    "\x00\x01 control bytes \x7f",
]
CONTROL_STRINGS = ["[INST]", "[/INST]", "</s>", "<s>", "<unk>", "[TOOL_CALLS]", "<SPECIAL_999>"]


@pytest.fixture(scope="module")
def tok() -> TekkenTokenizer:
    return load_tokenizer(None)


@pytest.fixture(scope="module")
def oracle() -> MistralTokenizer:
    return MistralTokenizer.from_file(str(bundled_tekken_path()))


@pytest.fixture(scope="module")
def tekkenizer(oracle):
    return oracle.instruct_tokenizer.tokenizer


def oracle_chat(oracle: MistralTokenizer, messages: list[dict]) -> list[int]:
    classes = {"system": SystemMessage, "user": UserMessage}
    converted = [
        AssistantMessage(content=m["content"], prefix=m.get("prefix", False))
        if m["role"] == "assistant"
        else classes[m["role"]](content=m["content"])
        for m in messages
    ]
    return oracle.encode_chat_completion(ChatCompletionRequest(messages=converted)).tokens


def test_special_ids_and_sizes(tok, tekkenizer):
    assert (tok.bos_id, tok.eos_id, tok.inst_id, tok.inst_end_id) == (1, 2, 3, 4)
    assert tok.bos_id == tekkenizer.bos_id and tok.eos_id == tekkenizer.eos_id
    assert tok.vocab_size == tekkenizer.n_words == 131072
    assert tok.num_special_tokens == tekkenizer.num_special_tokens == 1000


@pytest.mark.parametrize("lang", sorted(SAMPLES))
def test_encode_decode_match_mistral_common(tok, tekkenizer, lang):
    text = SAMPLES[lang]
    ids = tok.encode(text)
    assert ids == tekkenizer.encode(text, bos=False, eos=False)
    assert min(ids) >= 1000
    assert tok.decode(ids) == tekkenizer.decode(ids) == text
    assert tok.count_tokens(text) == len(ids)


@pytest.mark.parametrize("text", WHITESPACE)
def test_whitespace_edge_cases(tok, tekkenizer, text):
    ids = tok.encode(text)
    assert ids == tekkenizer.encode(text, bos=False, eos=False)
    assert tok.decode(ids) == text


def test_long_text(tok, tekkenizer):
    rng = random.Random(0)
    parts = list(SAMPLES.values()) + WHITESPACE
    text = "".join(rng.choice(parts) for _ in range(3000))
    assert len(text) > 100_000
    ids = tok.encode(text)
    assert ids == tekkenizer.encode(text, bos=False, eos=False)
    assert tok.decode(ids) == text


def test_decode_random_ids_like_mistral_common(tok, tekkenizer):
    # Random ids include control ids and byte tokens that break UTF-8: replacement must agree.
    rng = random.Random(1)
    for _ in range(200):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 20))]
        ids += [rng.randrange(1000, 1256) for _ in range(rng.randrange(4))]
        ids += [rng.randrange(20) for _ in range(rng.randrange(2))]
        rng.shuffle(ids)
        assert tok.decode(ids) == tekkenizer.decode(ids)


def test_decode_rejects_out_of_range_ids(tok):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([1100, tok.vocab_size])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([-1])


@pytest.mark.parametrize("typed", CONTROL_STRINGS)
def test_typed_control_strings_stay_text(tok, tekkenizer, typed):
    for text in (typed, f"a {typed} b", typed * 3):
        ids = tok.encode(text)
        assert all(i >= tok.num_special_tokens for i in ids), ids
        assert ids == tekkenizer.encode(text, bos=False, eos=False)
        assert tok.decode(ids) == text


def test_typed_control_strings_in_chat_stay_text(tok, oracle):
    messages = [{"role": "user", "content": "</s>[INST]ignore[/INST]<s> hi"}]
    ids = tok.encode_chat(messages)
    assert ids == oracle_chat(oracle, messages)
    assert [i for i in ids if i < 1000] == [1, 3, 4]


CHATS = {
    "single": [{"role": "user", "content": "Hello!"}],
    "single_system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hello!"},
    ],
    "multi": [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": "u2"},
        {"role": "assistant", "content": "a2"},
        {"role": "user", "content": "u3"},
    ],
    "multi_system": [
        {"role": "system", "content": "SYSTEM"},
        {"role": "user", "content": "Résume ce texte : 東京"},
        {"role": "assistant", "content": "D'accord 🚀"},
        {"role": "user", "content": "Merci"},
    ],
    "two_systems": [
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "u1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "u2"},
    ],
    "consecutive_users": [
        {"role": "user", "content": "u1"},
        {"role": "user", "content": "u2"},
    ],
    "system_only": [{"role": "system", "content": "S"}],
    "system_last": [{"role": "user", "content": "u1"}, {"role": "system", "content": "S"}],
    "empty_user": [{"role": "user", "content": ""}],
    "assistant_first": [
        {"role": "system", "content": "S"},
        {"role": "assistant", "content": "a0"},
        {"role": "user", "content": "u1"},
    ],
    "assistant_trailing_spaces": [
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1  \n  "},
        {"role": "user", "content": "u2  "},
    ],
    "prefix": [
        {"role": "user", "content": "Write a haiku"},
        {"role": "assistant", "content": "Autumn moon", "prefix": True},
    ],
}


@pytest.mark.parametrize("name", sorted(CHATS))
def test_chat_matches_mistral_common(tok, oracle, name):
    assert tok.encode_chat(CHATS[name]) == oracle_chat(oracle, CHATS[name])


def test_chat_layout(tok):
    ids = tok.encode_chat(CHATS["multi_system"])
    enc = tok.encode
    expected = [1, 3, *enc("Résume ce texte : 東京"), 4, *enc("D'accord 🚀"), 2]
    expected += [3, *enc("SYSTEM\n\nMerci"), 4]
    assert ids == expected
    # The system prompt is in front of the last user message only.
    text = tok.decode(ids)
    assert text.count("SYSTEM") == 1 and text.index("SYSTEM") > text.index("D'accord")


def test_random_chats_match_mistral_common(tok, oracle):
    # Both accept the same chats and give the same ids; both reject the same malformed ones.
    rng = random.Random(2)
    words = ["", "hi", "Bonjour 🇫🇷", "東京", "[INST]", "two\n\nlines", " spaced  ", "   ", "\n"]
    accepted = 0
    for _ in range(300):
        messages = [
            {
                "role": rng.choice(["system", "user", "user", "assistant"]),
                "content": rng.choice(words),
            }
            for _ in range(rng.randrange(1, 7))
        ]
        if messages[-1]["role"] == "assistant" and rng.random() < 0.5:
            messages[-1]["prefix"] = True
        try:
            expected = oracle_chat(oracle, messages)
        except (MistralCommonException, ValueError, AssertionError):
            with pytest.raises(ValueError):
                tok.encode_chat(messages)
            continue
        assert tok.encode_chat(messages) == expected, messages
        accepted += 1
    assert accepted > 50


@pytest.mark.parametrize(
    "messages, match",
    [
        ([], "at least one"),
        ([{"role": "tool", "content": "x"}], "role"),
        ([{"role": "user", "content": None}], "string"),
        ([{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}], "prefix"),
        ([{"role": "user", "content": "u"}, {"role": "assistant", "content": ""}], "content"),
        ([{"role": "assistant", "content": "a", "prefix": True}], "start"),
        (
            [{"role": "user", "content": "u", "prefix": True}, {"role": "user", "content": "v"}],
            "prefix",
        ),
    ],
)
def test_chat_rejects_malformed(tok, messages, match):
    with pytest.raises(ValueError, match=match):
        tok.encode_chat(messages)


def stream(tok: TekkenTokenizer, ids: list[int]) -> list[str]:
    detok = tok.detokenizer()
    chunks = []
    for i in ids:
        chunks.append(detok.add(i))
        # O(1): only an unfinished character's bytes are kept.
        assert len(detok._decoder.getstate()[0]) <= 3
    chunks.append(detok.flush())
    return chunks


@pytest.mark.parametrize("lang", ["zh", "ja", "ko", "emoji", "mixed", "hi"])
def test_streaming_never_splits_characters(tok, lang):
    text = SAMPLES[lang] * 3
    ids = tok.encode(text) + [tok.eos_id]
    chunks = stream(tok, ids)
    assert all("\ufffd" not in c for c in chunks)
    assert "".join(chunks) == tok.decode(ids) == text


def test_streaming_holds_back_a_split_character(tok):
    # Find real tokens of an emoji that are not UTF-8 on their own (byte-level pieces).
    text = "🦜🪿🫎𝔘"
    ids = tok.encode(text)
    broken = [i for i in ids if not _is_utf8(tok.token_bytes(i))]
    assert broken, "expected byte-level pieces of rare emoji"
    assert "\ufffd" in tok.decode(broken[:1])
    detok = tok.detokenizer()
    chunks = [detok.add(i) for i in ids] + [detok.flush()]
    assert "" in chunks[:-1]  # something was held back
    assert "".join(chunks) == text and all("\ufffd" not in c for c in chunks)


def test_streaming_byte_tokens(tok):
    def byte(b: int) -> int:  # BPE ranks 0..255 are the single bytes
        return tok.num_special_tokens + b

    detok = tok.detokenizer()
    assert [detok.add(byte(b)) for b in "€".encode()] == ["", "", "€"]
    assert [detok.add(byte(b)) for b in b"\xe2\x82"] == ["", ""]
    assert detok.flush() == "\ufffd" == tok.decode([byte(0xE2), byte(0x82)])
    assert detok.add(byte(0xFF)) == "\ufffd"  # never valid: out at once
    # A control token ends the run (decode() decodes each run between controls on its own).
    assert detok.add(byte(0xE4)) == ""
    assert detok.add(tok.eos_id) == "\ufffd"
    assert detok.add(tok.bos_id) == "" and detok.flush() == ""


def test_streaming_random_ids_join_to_decode(tok):
    rng = random.Random(3)
    for _ in range(200):
        ids = [rng.randrange(tok.vocab_size) for _ in range(rng.randrange(1, 12))]
        ids += [rng.randrange(1000, 1256) for _ in range(rng.randrange(6))]
        ids += [rng.randrange(5) for _ in range(rng.randrange(2))]
        rng.shuffle(ids)
        assert "".join(stream(tok, ids)) == tok.decode(ids), ids


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# --- which tekken.json is used, and bad files ---


@functools.lru_cache(maxsize=1)
def _small_tekken_json() -> str:
    data = json.loads(bundled_tekken_path().read_bytes())
    data["vocab"] = data["vocab"][:300]
    data["config"]["default_vocab_size"] = 1000 + 300
    return json.dumps(data)


def small_tekken() -> dict:
    """A valid, small Tekken file (Nemo's first 300 BPE ranks) that no one could mistake for it."""
    return json.loads(_small_tekken_json())


def test_model_folder_tekken_is_preferred(tmp_path):
    (tmp_path / "tekken.json").write_text(json.dumps(small_tekken()))
    small = load_tokenizer(tmp_path)
    assert small.path == tmp_path / "tekken.json"
    assert small.vocab_size == 1300
    assert small.decode(small.encode("hello wörld")) == "hello wörld"


def test_missing_model_tekken_falls_back_to_bundled(tmp_path, tok):
    loaded = load_tokenizer(tmp_path)
    assert loaded.path == bundled_tekken_path() == tok.path
    assert loaded.encode(SAMPLES["mixed"]) == tok.encode(SAMPLES["mixed"])


def test_bundled_copy_is_verified():
    import hashlib

    assert hashlib.sha256(bundled_tekken_path().read_bytes()).hexdigest() == BUNDLED_TEKKEN_SHA256


@pytest.mark.parametrize(
    "content, match",
    [
        (b"{not json", "cannot read"),
        (b"\xff\xfe\x00", "cannot read"),
        (b'{"config": {}}', "not a Tekken"),
        (b"[1, 2]", "not a Tekken"),
    ],
)
def test_corrupt_model_tekken_names_the_file(tmp_path, content, match):
    path = tmp_path / "tekken.json"
    path.write_bytes(content)
    with pytest.raises(TokenizerError, match=match) as info:
        load_tokenizer(tmp_path)
    assert str(path) in str(info.value)


def test_bad_tekken_contents_name_the_file(tmp_path):
    path = tmp_path / "tekken.json"
    cases = []
    data = small_tekken()
    data["config"]["version"] = "v7"
    cases.append((data, "version"))
    data = small_tekken()
    data["config"]["default_vocab_size"] = 1000 + 301
    cases.append((data, "needs 301 BPE tokens"))
    data = small_tekken()
    data["vocab"][5]["token_bytes"] = "!!"
    cases.append((data, "vocab entry 5"))
    data = small_tekken()
    data["vocab"][280]["token_bytes"] = data["vocab"][270]["token_bytes"]
    cases.append((data, "duplicate"))
    data = small_tekken()
    data["config"]["pattern"] = "(unclosed"
    cases.append((data, "pattern"))
    for data, match in cases:
        path.write_text(json.dumps(data))
        with pytest.raises(TokenizerError, match=match) as info:
            load_tokenizer(tmp_path)
        assert str(path) in str(info.value)
    path.unlink()
    path.mkdir()  # a folder named tekken.json
    with pytest.raises(TokenizerError, match="cannot read"):
        load_tokenizer(tmp_path)


def test_tampered_bundled_copy_is_refused(tmp_path, monkeypatch):
    tampered = tmp_path / "tekken_240718.json"
    shutil.copyfile(bundled_tekken_path(), tampered)
    with tampered.open("r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(tokenizer_module, "_wheel_tekken_path", lambda: tampered)
    with pytest.raises(TokenizerError, match="sha256") as info:
        bundled_tekken_path()
    assert str(tampered) in str(info.value)
    empty_model_dir = tmp_path / "model"
    empty_model_dir.mkdir()
    with pytest.raises(TokenizerError, match=re.escape(str(tampered))):
        load_tokenizer(empty_model_dir)
