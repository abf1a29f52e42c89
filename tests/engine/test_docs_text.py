"""Text encodings (lenient UTF-8, legacy code pages, ISO-2022-JP, declared charsets, NULs)
and RTF (surrogate pairs, binary data)."""

from __future__ import annotations

import pytest

from engine.docs.extract import extract
from tests.engine.test_documents import write

SAMPLES = {
    "cp1250": "Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy.\n",
    "iso8859_2": "Zażółć gęślą jaźń, Příliš žluťoučký kůň.\n",
    "cp1254": "Pijamalı hasta yağız şoföre çabucak güvendi.\n",
    "cp1257": "Įlinkdama fechtuotojo špaga sublykčiojusi pragręžė apvalų arbūzą.\n",
    "cp1251": "Съешь же ещё этих мягких французских булок, да выпей чаю.\n",
    "koi8_r": "Съешь же ещё этих мягких французских булок.\n",
    "cp1253": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.\n",
    "cp1252": "Le cœur déçu mais l'âme plutôt naïve, Louÿs rêva.\n",
}


@pytest.mark.parametrize("encoding", SAMPLES)
def test_single_byte_legacy_encodings_are_not_read_as_windows_1252(tmp_path, encoding):
    doc = extract(write(tmp_path, "old.txt", SAMPLES[encoding].encode(encoding)))
    assert (doc.text, doc.encoding) == (SAMPLES[encoding], encoding)
    if encoding != "cp1252":  # the assumption is said
        assert doc.warnings == (f"read as {encoding} (detected; no charset was declared)",)


def test_utf8_with_a_few_bad_bytes_is_utf8_with_a_warning(tmp_path):
    data = "Привет, мир. Größe — ok.\n".encode() * 5 + b"\xff\xfe broken\n"
    doc = extract(write(tmp_path, "mostly.txt", data))
    assert doc.encoding == "utf-8" and doc.text.startswith("Привет, мир. Größe")
    assert doc.text.endswith("\ufffd\ufffd broken\n")
    assert doc.warnings == ("2 invalid UTF-8 byte sequence(s) replaced with \ufffd",)


def test_utf8_cut_inside_its_last_character(tmp_path):
    data = ("plain ascii line " * 10 + "日本").encode()[:-1]
    doc = extract(write(tmp_path, "cut.txt", data))
    assert doc.encoding == "utf-8" and doc.text.startswith("plain ascii") and "日" in doc.text


def test_iso_2022_jp_is_decoded(tmp_path):
    text = "日本語のメールです。よろしくお願いします。\n"
    doc = extract(write(tmp_path, "mail.txt", text.encode("iso2022_jp")))
    assert (doc.text, doc.encoding) == (text, "iso2022_jp")


@pytest.mark.parametrize(
    "head, encoding, python_name",
    [
        ("<meta charset='x-sjis'>", "cp932", "cp932"),
        ('<meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-2">', "iso8859_2", "iso8859-2"),
        ("<meta charset=iso-2022-jp>", "iso2022_jp", "iso2022_jp"),
        ("<meta charset='gb2312'>", "gbk", "gbk"),
    ],
)  # fmt: skip
def test_declared_html_charsets_and_aliases_are_honoured(tmp_path, head, encoding, python_name):
    body = (
        "日本語"
        if encoding in ("cp932", "iso2022_jp")
        else "中文"
        if encoding == "gbk"
        else "Zażółć"
    )
    html = f"<html><head>{head}</head><body><p>{body}</p></body></html>"
    doc = extract(write(tmp_path, "page.html", html.encode(encoding)))
    assert (doc.text, doc.encoding) == (body, python_name)


def test_xml_prolog_encoding_is_honoured(tmp_path):
    xml = '<?xml version="1.0" encoding="windows-1251"?>\n<doc><p>Привет</p></doc>'
    doc = extract(write(tmp_path, "page.xhtml", xml.encode("cp1251")))
    assert (doc.text, doc.encoding) == ("Привет", "cp1251")


def test_nul_padding_in_a_log_is_removed_with_a_warning(tmp_path):
    data = b"2024-05-01 started\n2024-05-01 crashed\n" + b"\x00" * 4096 + b"2024-05-02 restarted\n"
    doc = extract(write(tmp_path, "app.log", data))
    assert doc.text == "2024-05-01 started\n2024-05-01 crashed\n2024-05-02 restarted\n"
    assert doc.warnings == ("4,096 NUL bytes (padding or damage) were removed",)


def test_rtf_surrogate_pairs_become_one_character(tmp_path):
    rtf = r"{\rtf1\ansi\uc1 Party \u-10179?\u-8704? tonight \u55357?\u56832?!\par}"
    assert extract(write(tmp_path, "emoji.rtf", rtf)).text == "Party 😀 tonight 😀!"


def test_rtf_binary_data_is_skipped_and_the_rest_kept(tmp_path):
    blob = b"}{\\par junk \x00\xff" * 50
    rtf = (
        b"{\\rtf1\\ansi Before.\\par {\\pict\\wmetafile8\\bin%d " % len(blob)
        + blob
        + b"} After.\\par}"
    )
    doc = extract(write(tmp_path, "bin.rtf", rtf))
    assert doc.text.split() == ["Before.", "After."]
    assert any("bytes of embedded binary data" in w for w in doc.warnings)
