"""Loaders: each format on tiny hand-made inputs, skip reporting, auto-detection,
and parity with the real evaluation data sets (skipped when they are absent)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from lcrag.core.types import content_hash
from lcrag.pipeline.ingest.loaders import (
    FORMATS,
    LOADERS,
    LoadOptions,
    SourceNotFoundError,
    UnknownFormatError,
    detect_format,
    load_source,
)
from lcrag.pipeline.ingest.loaders.beir import Query, load_beir_qrels, load_beir_queries
from lcrag.pipeline.ingest.loaders.files import (
    decode_text,
    html_to_text,
    markdown_title,
    paragraph_sections,
    parse_html,
)
from lcrag.pipeline.ingest.loaders.hotpotqa import join_sentences
from lcrag.pipeline.ingest.loaders.squad import join_paragraphs
from tests.conftest import SHARED_DATA as DATA
from tests.conftest import write


def write_jsonl(path: Path, records: list, gz: bool = False) -> Path:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    return write(path, gzip.compress(body) if gz else body)


def write_pdf(path: Path, text: str, password: str | None = None) -> Path:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode())
    page.replace_contents(stream)
    if password:
        writer.encrypt(user_password=password, algorithm="RC4-128")
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write(path)
    return path


def assert_sections_valid(doc) -> None:
    previous_end = 0
    for section in doc.sections:
        assert previous_end <= section.start <= section.end <= len(doc.text)
        previous_end = section.end


# --- pure helpers -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, paragraphs",
    [
        ("", []),
        ("   \n\n  ", []),
        ("one", ["one"]),
        ("one\ntwo", ["one\ntwo"]),
        ("one\n\ntwo", ["one", "two"]),
        ("  one  \n \t \n\n\n  two\nthree \n", ["one", "two\nthree"]),
        ("\n\nlead\n\n", ["lead"]),
    ],
)
def test_paragraph_sections(text, paragraphs):
    assert [text[s.start : s.end] for s in paragraph_sections(text)] == paragraphs


@pytest.mark.parametrize(
    "html, expected",
    [
        ("<p>Hello <b>world</b></p><p>Second</p>", "Hello world\n\nSecond"),
        ("<html><head><title>T</title><style>p{}</style></head><body>Body</body></html>", "Body"),
        ("<div>a<script>var x = '<p>';</script>b</div>", "ab"),
        ("line one<br>line two", "line one\n\nline two"),
        ("<ul><li>x</li><li>y &amp; z</li></ul>", "x\n\ny & z"),
        ("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>", "a b\n\nc"),
        ("<h1>Head</h1>   lots   of\n\n  space  ", "Head\n\nlots of space"),
        ("<pre>keep  this\n  indent</pre>", "keep  this\n  indent"),
    ],
)
def test_html_to_text(html, expected):
    assert html_to_text(html) == expected


def test_parse_html_title():
    assert parse_html("<title> My\n Page </title><p>x</p>") == ("My Page", "x")
    assert parse_html("<p>no title</p>")[0] == ""
    assert parse_html("<title>Fish &amp; <b>chips</b></title><p>x</p>") == ("Fish & <b>chips</b>", "x")  # title is text


@pytest.mark.parametrize(
    "html, expected",
    [
        ('<a href="x>y" title=\'q\'>link</a> here', "link here"),  # ">" inside a quoted value
        ("<p class=foo'bar>text</p><p>more</p>", "text\n\nmore"),  # a quote not after "=" opens nothing
        ("1 < 2 and 3 <4", "1 < 2 and 3 <4"),  # a "<" that starts no tag is text
        ("<p>kept</p><!-- a comment that never closes <p>lost</p>", "kept"),  # runs to the end, as in browsers
        ("<p>kept</p></ bogus comment> <p>after</p>", "kept\n\nafter"),
        ("<!DOCTYPE html><?xml x?><p>a</p><!---->b<!-->c", "a\n\nbc"),
        ("<SCRIPT>if (a<b) x('</p>')</script >after", "after"),
        ("<style>p { x: '</style' }</style>shown", "shown"),  # raw text ends at its own end tag only
        ("<br/>one<br />two<p/>three", "one\n\ntwo\n\nthree"),
        ("<p>dangling <b", "dangling"),  # a tag without ">" is dropped with the rest
        ("<template><p>hidden</p></template><noscript><p>hidden</p></noscript>seen", "seen"),
        ("<textarea>a &lt; b <i>x</i></textarea>", "a < b <i>x</i>"),
        ("<plaintext><p>all text", "<p>all text"),
        ("caf&eacute; &#x263A; &#9731", "café ☺ ☃"),
    ],
    ids=["quoted-gt", "stray-quote", "lone-lt", "unclosed-comment", "bogus-comment", "declarations", "script",
         "style-end", "self-closing", "unclosed-tag", "hidden", "textarea", "plaintext", "charrefs"],
)
def test_html_tokenizer_follows_the_html_standard_where_it_matters(html, expected):
    assert html_to_text(html) == expected


@pytest.mark.parametrize(
    "text, title, body",
    [
        ("# Intro\n\nBody text", "Intro", "\nBody text"),
        ("\n# Intro #\nBody", "Intro", "Body"),
        ("Preface\n\n# Later\nx", "Later", "Preface\n\n# Later\nx"),
        ("```\n# not a title\n```\nplain", "", "```\n# not a title\n```\nplain"),
        ("## Sub only\ntext", "", "## Sub only\ntext"),
    ],
)
def test_markdown_title(text, title, body):
    assert markdown_title(text) == (title, body)


@pytest.mark.parametrize(
    "data, result",
    [
        (b"plain", "plain"),
        (b"\xef\xbb\xbfbom text", "bom text"),
        ("caf\u00e9".encode(), "caf\u00e9"),
        (b"abc\xffdef", "not valid UTF-8 (byte 0xff at offset 3)"),
        (b"\xef\xbb\xbfab\xc3", "not valid UTF-8 (byte 0xc3 at offset 5)"),
        (b"PK\x03\x04\x00\x00", "binary file"),
    ],
)
def test_decode_text(data, result):
    try:
        assert decode_text(data) == result
    except ValueError as exc:
        assert str(exc) == result


@pytest.mark.parametrize(
    "sentences",
    [
        ["First one.", " Second one.", " Third."],
        ["  Leading space.", " Next."],
        ["Only."],
        ["A.", "", " B. "],
    ],
)
def test_join_sentences(sentences):
    text, sections = join_sentences(sentences)
    assert text == "".join(sentences).strip()
    assert len(sections) == len(sentences)
    assert [text[s.start : s.end] for s in sections] == [s.strip() for s in sentences]


def test_join_paragraphs_exact_offsets():
    contexts = ["  a  ", "b", ""]
    text, sections = join_paragraphs(contexts)
    assert text == "  a  \n\nb\n\n"
    assert [text[s.start : s.end] for s in sections] == contexts


# --- files ---------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    write(root / "guide" / "intro.md", "# Getting started\r\n\r\nFirst paragraph.\r\nStill first.\r\n\r\n\r\nSecond.\r\n")
    write(root / "notes.txt", b"\xef\xbb\xbfPlain notes.\n\nMore notes.\n")
    write(root / "page.html", "<html><head><title>The Page</title></head><body><p>Para one.</p><p>Para two.</p></body></html>")
    write(root / "bare.htm", "<div>No title here</div>")
    write(root / "record.json", json.dumps({"title": "Rec", "text": "Record body."}))
    write(root / "list.json", json.dumps([{"id": "a", "text": "Alpha."}, {"text": "Beta."}, {"title": "no text"}]))
    write(root / "lines.jsonl", '{"_id": "x1", "text": "Line one."}\n{broken\n\n{"text": "Line four."}\n')
    write_pdf(root / "paper.pdf", "Hello PDF world")
    write_pdf(root / "locked.pdf", "Secret", password="secret")
    write(root / "corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    write(root / "empty.txt", "")
    write(root / "blank.md", "  \n\n \t\n")
    write(root / "binary.txt", b"abc\x00def")
    write(root / "latin1.txt", "caf\u00e9".encode("latin-1"))
    write(root / "image.png", b"\x89PNG")
    write(root / "bad.json", "{not json")
    write(root / ".hidden.txt", "hidden")
    write(root / ".git" / "config.txt", "hidden folder")
    return root


def test_files_folder_documents(folder: Path):
    result = load_source(folder, "files")
    assert result.format == "files"
    docs = {d.doc_id: d for d in result.documents}
    assert list(docs) == [
        "bare.htm",
        "guide/intro.md",
        "lines.jsonl#x1",
        "lines.jsonl#4",
        "list.json#a",
        "list.json#1",
        "notes.txt",
        "page.html",
        "paper.pdf",
        "record.json",
    ]
    intro = docs["guide/intro.md"]
    assert intro.title == "Getting started"
    assert intro.text == "First paragraph.\nStill first.\n\n\nSecond."
    assert intro.source == "files:guide/intro.md"
    assert [intro.text[s.start : s.end] for s in intro.sections] == ["First paragraph.\nStill first.", "Second."]
    assert docs["notes.txt"].text == "Plain notes.\n\nMore notes."
    assert docs["notes.txt"].title == "notes"
    assert docs["page.html"].title == "The Page"
    assert docs["page.html"].text == "Para one.\n\nPara two."
    assert docs["bare.htm"].title == "bare"
    assert docs["paper.pdf"].text == "Hello PDF world"
    assert docs["paper.pdf"].meta("n_pages") == "1"
    assert docs["record.json"].title == "Rec"
    assert docs["list.json#a"].text == "Alpha."
    for doc in result.documents:
        assert_sections_valid(doc)
        assert doc.content_hash == content_hash(doc.text, doc.title)


def test_files_folder_skips(folder: Path):
    skipped = {s.path: s.reason for s in load_source(folder, "files").skipped}
    assert skipped["empty.txt"] == "empty file"
    assert skipped["blank.md"] == "empty file"
    assert skipped["binary.txt"] == "binary file"
    assert skipped["latin1.txt"] == "not valid UTF-8 (byte 0xe9 at offset 3)"
    assert skipped["image.png"] == "unsupported file type .png"
    assert skipped["corrupt.pdf"].startswith("corrupt PDF")
    assert skipped["locked.pdf"].startswith("encrypted PDF")
    assert skipped["bad.json"].startswith("invalid JSON")
    assert skipped["list.json#2"] == "no 'text' field"
    assert skipped["lines.jsonl:2"].startswith("invalid JSON on line 2")
    assert skipped[".hidden.txt"].startswith("hidden file: skipped")
    assert skipped[".git"].startswith("hidden folder: skipped")  # the folder, not each file in it
    assert not any(path.startswith(".git/") for path in skipped)


def test_files_ids_are_stable(folder: Path):
    first = load_source(folder, "files")
    second = load_source(folder)
    assert first == second


def test_files_single_file(tmp_path: Path):
    path = write(tmp_path / "a" / "one.txt", "Only\r\rfile\n")
    result = load_source(path)
    assert result.format == "files"
    (doc,) = result.documents
    assert (doc.doc_id, doc.title, doc.text, doc.source) == ("one.txt", "one", "Only\n\nfile", "files:one.txt")


def test_files_markdown_title_only(tmp_path: Path):
    result = load_source(write(tmp_path / "t.md", "# Just a title\n"))
    assert result.documents == ()
    assert result.skipped[0].reason == "no text besides the title"


# --- beir ----------------------------------------------------------------------


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    root = tmp_path / "beir"
    write_jsonl(
        root / "corpus.jsonl",
        [
            {"_id": "10", "title": "Ten", "text": "Doc ten.", "metadata": {"year": 2001}},
            {"_id": "2", "title": "", "text": "Doc two."},
            {"_id": "10", "title": "Ten", "text": "Doc ten."},
            {"_id": "2", "title": "", "text": "Other two."},
            {"_id": "3", "title": "Only a title", "text": ""},
            {"_id": "4", "title": "", "text": ""},
            {"title": "no id", "text": "x"},
        ],
    )
    with (root / "corpus.jsonl").open("a") as fh:
        fh.write("{oops\n")
    write_jsonl(root / "queries.jsonl", [{"_id": "q1", "text": "first?"}, {"_id": "q2", "text": "second?"}])
    write(root / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\t10\t1\nq1\t2\t2\nq2\t3\t1\n")
    return root


def test_beir_corpus(beir_folder: Path):
    result = load_source(beir_folder)
    assert result.format == "beir"
    assert [d.doc_id for d in result.documents] == ["10", "2", "3"]
    ten = result.documents[0]
    assert (ten.title, ten.text, ten.source, ten.meta("year")) == ("Ten", "Doc ten.", "beir:corpus.jsonl", "2001")
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons == {
        "corpus.jsonl:4": "duplicate doc id '2' with different text",
        "corpus.jsonl:6": "line 6: no 'text' field",
        "corpus.jsonl:7": "line 7: no '_id' field",
        "corpus.jsonl:8": reasons["corpus.jsonl:8"],
    }
    assert reasons["corpus.jsonl:8"].startswith("invalid JSON on line 8")


def test_beir_queries_and_qrels(beir_folder: Path):
    assert load_beir_queries(beir_folder) == (Query("q1", "first?"), Query("q2", "second?"))
    assert load_beir_queries(beir_folder / "queries.jsonl")[0].qid == "q1"
    assert load_beir_qrels(beir_folder) == {"q1": {"10": 1, "2": 2}, "q2": {"3": 1}}
    with pytest.raises(SourceNotFoundError):
        load_beir_qrels(beir_folder, "dev")


def test_beir_requires_corpus(tmp_path: Path):
    with pytest.raises(ValueError, match=r"no corpus.jsonl"):
        load_source(tmp_path, "beir")


# --- squad ---------------------------------------------------------------------


def squad_payload() -> dict:
    return {
        "version": "v2.0",
        "data": [
            {
                "title": "Super_Bowl_50",
                "paragraphs": [
                    {"context": "First paragraph.", "qas": [{"id": "q", "question": "?", "answers": []}]},
                    {"context": " Second, with spaces. ", "qas": []},
                ],
            },
            {"title": "Broken", "paragraphs": [{"qas": []}]},
            {"title": "Normans", "paragraphs": [{"context": "Normandy.", "qas": []}]},
        ],
    }


def test_squad(tmp_path: Path):
    path = write(tmp_path / "dev.json", json.dumps(squad_payload()))
    result = load_source(path, "squad")
    assert [d.doc_id for d in result.documents] == ["Super_Bowl_50", "Normans"]
    doc = result.documents[0]
    assert doc.title == "Super Bowl 50"
    assert doc.text == "First paragraph.\n\n Second, with spaces. "
    assert [doc.text[s.start : s.end] for s in doc.sections] == ["First paragraph.", " Second, with spaces. "]
    assert doc.meta("n_paragraphs") == "2"
    assert doc.source == "squad:dev.json"
    assert result.skipped[0].path == "dev.json#article 1"
    assert load_source(path) == result  # auto detection reuses the parsed json


@pytest.mark.parametrize("content", ['{"version": 1}', "[1, 2]", "{broken"])
def test_squad_rejects_other_files(tmp_path: Path, content: str):
    with pytest.raises(ValueError, match=r"not a SQuAD 2.0 file.*try --format auto"):
        load_source(write(tmp_path / "x.json", content), "squad")


# --- hotpotqa ------------------------------------------------------------------


def hotpot_payload() -> list:
    return [
        {
            "_id": "a",
            "question": "?",
            "supporting_facts": [["Alpha", 0]],
            "context": [["Alpha", ["Alpha is first.", " It has two sentences."]], ["Beta", ["Beta."]]],
        },
        {
            "_id": "b",
            "question": "?",
            "supporting_facts": [["Beta", 0]],
            "context": [["Beta", ["Beta."]], ["Alpha", ["Alpha, revised."]], ["Alpha", ["Alpha, revised."]], ["bad"]],
        },
    ]


@pytest.mark.parametrize("name", ["hotpot.json", "hotpot.json.gz"])
def test_hotpotqa(tmp_path: Path, name: str):
    body = json.dumps(hotpot_payload()).encode()
    path = write(tmp_path / name, gzip.compress(body) if name.endswith(".gz") else body)
    result = load_source(path, "hotpotqa")
    revised_hash = content_hash("Alpha, revised.", "Alpha")[:8]
    assert [d.doc_id for d in result.documents] == ["Alpha", "Beta", f"Alpha#{revised_hash}"]
    alpha = result.documents[0]
    assert alpha.text == "Alpha is first. It has two sentences."
    assert [alpha.text[s.start : s.end] for s in alpha.sections] == ["Alpha is first.", "It has two sentences."]
    assert result.documents[2].title == "Alpha"
    assert [s.path for s in result.skipped] == [f"{name}#question 1"]
    assert load_source(path) == result


def test_hotpotqa_rejects_dict(tmp_path: Path):
    with pytest.raises(ValueError, match="not a HotpotQA file"):
        load_source(write(tmp_path / "x.json", "{}"), "hotpotqa")


# --- jsonl ---------------------------------------------------------------------


def test_jsonl_records(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "recs.jsonl",
        [
            {"_id": "a", "title": "A", "text": "Alpha.", "lang": "en"},
            {"id": 7, "text": "Seven."},
            {"text": "No id."},
            {"question": "no text"},
            {"_id": "a", "title": "A", "text": "Alpha.", "lang": "en"},
            {"_id": "a", "text": "Alpha."},
        ],
    )
    result = load_source(path)
    assert result.format == "jsonl"
    assert [d.doc_id for d in result.documents] == ["a", "7", "recs.jsonl:3"]
    assert result.documents[0].meta("lang") == "en"
    assert result.documents[0].source == "jsonl:recs.jsonl"
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("recs.jsonl:4", "line 4: no 'text' field"),
        ("recs.jsonl:6", "duplicate doc id 'a' with different text"),  # the title differs
    ]


def test_jsonl_custom_fields(tmp_path: Path):
    path = write_jsonl(tmp_path / "r.jsonl", [{"key": "k1", "name": "N", "body": "Body."}, {"key": "k2", "text": "x"}])
    result = load_source(path, "jsonl", LoadOptions(text_field="body", title_field="name", id_field="key"))
    assert [(d.doc_id, d.title, d.text) for d in result.documents] == [("k1", "N", "Body.")]
    assert result.skipped[0].reason == "line 2: no 'body' field"


def test_jsonl_ctxs_and_corrupt_gzip(tmp_path: Path):
    root = tmp_path / "nq"
    write_jsonl(
        root / "a.jsonl.gz",
        [
            {"question": "q1", "answers": ["x"], "ctxs": [{"title": "T", "text": "One."}, {"title": "U", "text": ""}]},
            {"question": "q2", "answers": ["y"], "ctxs": [{"title": "T", "text": "One."}, {"title": "T", "text": "Two."}]},
            {"question": "q3", "ctxs": [{"id": "p9", "title": "T", "text": "Nine."}]},
        ],
        gz=True,
    )
    write(root / "b.jsonl.gz", gzip.compress(b'{"text": "lost"}\n')[:-6])
    write(root / "ignored.txt", "not jsonl")
    result = load_source(root, "jsonl")
    assert [d.doc_id for d in result.documents] == ["T", f"T#{content_hash('Two.', 'T')[:8]}", "p9"]
    reasons = {s.path: s.reason for s in result.skipped}
    assert reasons["a.jsonl.gz:1"] == "ctx 1: no 'text' field"
    assert reasons["b.jsonl.gz"].startswith("corrupt gzip file")


def test_jsonl_empty_folder(tmp_path: Path):
    with pytest.raises(ValueError, match=r"no .jsonl"):
        load_source(tmp_path, "jsonl")


# --- registry and detection ----------------------------------------------------


def test_registry_names():
    assert FORMATS == ("auto", "files", "beir", "squad", "hotpotqa", "jsonl")
    assert set(LOADERS) == set(FORMATS[1:])


def test_unknown_format_lists_valid_names(tmp_path: Path):
    with pytest.raises(UnknownFormatError) as info:
        load_source(tmp_path, "csv")
    for name in FORMATS:
        assert name in str(info.value)
    assert isinstance(info.value, ValueError)


def test_missing_source(tmp_path: Path):
    missing = tmp_path / "nope"
    with pytest.raises(SourceNotFoundError, match="nope"):
        load_source(missing)
    with pytest.raises(FileNotFoundError):
        detect_format(missing)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("beir/corpus.jsonl", '{"_id": "1", "text": "x"}\n', "beir"),
        ("squad.json", json.dumps(squad_payload()), "squad"),
        ("hotpot.json", json.dumps(hotpot_payload()), "hotpotqa"),
        ("hotpot.json.gz", gzip.compress(json.dumps(hotpot_payload()).encode()), "hotpotqa"),
        ("x.jsonl", '{"text": "x"}\n', "jsonl"),
        ("x.jsonl.gz", gzip.compress(b'{"text": "x"}\n'), "jsonl"),
        ("plain.json", '{"text": "x"}', "files"),
        ("broken.json", "{", "files"),
        ("list.json", '[{"context": "no supporting facts"}]', "files"),
        ("notes.md", "# x", "files"),
        ("folder/a.txt", "x", "files"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str | bytes, expected: str):
    path = write(tmp_path / name, content)
    target = path.parent if "/" in name else path
    assert detect_format(target) == expected


# --- real data sets --------------------------------------------------------------


def data_path(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(f"evaluation data not present: {path}")
    return path


def test_real_scifact():
    folder = data_path("scifact")
    result = load_source(folder)
    assert result.format == "beir"
    assert len(result.documents) == 5183
    assert result.skipped == ()
    qrels = load_beir_qrels(folder, "test")
    assert len(qrels) == 300
    assert sum(len(v) for v in qrels.values()) == 339
    ids = {d.doc_id for d in result.documents}
    assert all(doc_id in ids for judged in qrels.values() for doc_id in judged)
    assert len(load_beir_queries(folder)) == 1109


def test_real_squad():
    path = data_path("squad_v2_dev/dev-v2.0.json")
    result = load_source(path)
    assert result.format == "squad"
    assert len(result.documents) == 35
    raw = json.loads(path.read_text(encoding="utf-8"))
    first, article = result.documents[0], raw["data"][0]
    assert first.doc_id == article["title"]
    contexts = [p["context"] for p in article["paragraphs"]]
    assert [first.text[s.start : s.end] for s in first.sections] == contexts
    assert sum(len(d.sections) for d in result.documents) == 1204


@pytest.mark.slow  # the whole HotpotQA dev set
def test_real_hotpotqa():
    path = data_path("hotpotqa_dev_distractor/hotpot_dev_distractor_v1.json.gz")
    result = load_source(path)
    assert result.format == "hotpotqa"
    assert result.skipped == ()
    docs = {d.doc_id: d for d in result.documents}
    assert len(docs) == len(result.documents)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        questions = json.load(fh)[:50]
    for question in questions:
        for title, _sentence_index in question["supporting_facts"]:
            assert title in docs
        for title, sentences in question["context"]:
            text = "".join(sentences).strip()
            doc = docs[title] if docs[title].text == text else docs[f"{title}#{content_hash(text, title)[:8]}"]
            assert len(doc.sections) == len(sentences)
            assert_sections_valid(doc)


def test_real_nq_open_oracle():
    path = data_path("lost_in_the_middle/nq-open-oracle.jsonl.gz")
    result = load_source(path)
    assert result.format == "jsonl"
    assert result.skipped == ()
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        titles = {ctx["title"] for line in fh for ctx in json.loads(line)["ctxs"]}
    ids = {d.doc_id for d in result.documents}
    assert titles <= ids
    assert len(ids) == len(result.documents) >= len(titles)
