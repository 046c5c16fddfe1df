"""Ingestion survives bad input. One generated folder holds every kind of bad file
(and good documents, each with a planted token); it is ingested once through the
command line under a time guard, and each kind's outcome and reason is checked,
as is what can and cannot be found afterwards. Table-driven tests cover the pure
pieces: BOM decoding, front matter, the size bound, the folder walk, parser
failures, linear cutting of unpunctuated text, and the TREC id check."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from lcrag.app.cli.app import app
from lcrag.app.cli.index import RunFileError, check_trec_field, search_many, trec_field_problem
from lcrag.core.types import Span, Unit
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest import ingestion
from lcrag.pipeline.ingest.loaders import LoadOptions, SourceFormatError, load_source
from lcrag.pipeline.ingest.loaders import files as files_loader
from lcrag.pipeline.ingest.loaders.decoding import as_utf8, decode_text
from lcrag.pipeline.ingest.loaders.files import heading_title, markdown_title
from lcrag.pipeline.ingest.loaders.front_matter import split_front_matter
from lcrag.pipeline.ingest.loaders.jsonl import iter_json_lines
from lcrag.pipeline.ingest.loaders.reading import gunzip, parse_json, read_bytes, read_regular
from lcrag.pipeline.ingest.loaders.walk import list_source
from lcrag.pipeline.ingest.sentences import chunk_ranges, cut_ranges
from tests.conftest import write
from tests.helpers import ws_offsets

runner = CliRunner()
DEADLINE_S = 120
DEEP = 100_000  # nesting levels: far past the recursion limit

# Good documents: relative path -> (content, the planted token that must be searchable)
GOOD = {
    "good1.txt": ("Quokkamarble lives in this plain text file. It has two sentences.", "quokkamarble"),
    "good2.md": ("# Notes\n\nThe xylofennel paragraph is Markdown without front matter.\n", "xylofennel"),
    "good3.html": ("<html><head><title>Page</title></head><body><p>Brindlewharf sits in HTML.</p></body></html>", "brindlewharf"),
    "guide/good4.txt": ("A nested folder keeps the gondolaquartz document.", "gondolaquartz"),
    "record.json": (json.dumps({"title": "Rec", "text": "The jasperkite record is JSON."}), "jasperkite"),
    "with space.txt": ("The file name of pumicelantern holds a space.", "pumicelantern"),
}
LINES_TOKEN = "velvetorchard"  # line 1 of the .jsonl with a bad and a too-deep line
UTF16_TOKEN = "tamarindcobalt"
FRONT_TOKEN = "saffronglacier"  # in the body of a Markdown file with front matter
HIDDEN_META_TOKEN = "obsidianheron"  # only inside that front matter: metadata, not text
LONG_TOKEN = "ravenquill"  # in the middle of the long unpunctuated line
SECRET_TOKEN = "secrettokenmagpie"  # in a file outside the folder, linked into it
UNREADABLE_TOKEN = "lockedwalnut"  # chmod 000 file (readable anyway when running as root)
LOCKED_DIR_TOKEN = "lockedparsnip"  # in a chmod 000 subfolder


def _deep_json() -> str:
    return "[" * DEEP + "]" * DEEP


def _long_line(n_words: int = 2400) -> str:
    """About 300 KB on one line: no sentence punctuation, no line break. Each word
    is 128 characters, which the encoder's tokenizer reads as one token (longer
    than a WordPiece word), so the document is long in bytes and in cutting work
    while embedding it stays cheap on a shared CPU."""
    words = [hashlib.sha256(str(i).encode()).hexdigest() * 2 for i in range(n_words)]
    words[n_words // 2] = LONG_TOKEN
    return " ".join(words)


def _readable(path: Path) -> bool:
    """Whether this process can read ``path`` despite its mode: root ignores chmod 000,
    so the tests assert whichever outcome applies. To see the other branch as root:
    ``setpriv --bounding-set=-dac_override,-dac_read_search,-fowner python -m pytest ...``."""
    try:
        if path.is_dir():
            os.listdir(path)
        else:
            path.open("rb").close()
        return True
    except PermissionError:
        return False


@dataclass(frozen=True)
class Ingested:
    corpus: Path
    index: Path
    summary: dict
    skipped: dict[str, str]
    warnings: dict[str, str]
    unreadable_file_readable: bool
    locked_dir_readable: bool


def build_bad_folder(root: Path) -> tuple[Path, Path]:
    """Every kind of bad input beside the good documents; returns (corpus, outside folder)."""
    corpus, outside = root / "corpus", root / "outside"
    for rel, (content, _) in GOOD.items():
        write(corpus / rel, content)
    # kinds that already worked before
    write(corpus / "corrupt.pdf", b"%PDF-1.4\nthis is not really a pdf\n%%EOF")
    write(corpus / "empty.txt", "")
    write(corpus / "blank.txt", "  \n\t \n   ")
    write(corpus / "binary.txt", b"\x7fELF\x02\x01\x01\x00\x00\x00binary")
    write(corpus / "latin1.txt", "caf\xe9 au lait".encode("latin-1"))
    write(corpus / "shape.json", json.dumps("a JSON string, not an object"))
    write(corpus / "lines.jsonl", f'{{"text": "The {LINES_TOKEN} line parses."}}\n{{broken\n{_deep_json()}\n')
    write(corpus / "unreadable.txt", f"The {UNREADABLE_TOKEN} file is chmod 000.")
    os.chmod(corpus / "unreadable.txt", 0)
    os.symlink("no-such-target.txt", corpus / "dangling.txt")
    # what failed before
    write(corpus / "deep.json", _deep_json())
    os.mkfifo(corpus / "fifo.txt")
    os.symlink("/dev/zero", corpus / "zero.txt")
    write(outside / "secret.txt", f"The {SECRET_TOKEN} must never be indexed.")
    os.symlink(outside / "secret.txt", corpus / "secret.txt")
    os.symlink(outside, corpus / "outside-folder")
    os.symlink("good1.txt", corpus / "inside-link.txt")  # inside the folder: followed
    os.symlink(".", corpus / "loop")  # a symlinked folder pointing at its own parent
    write(corpus / "locked" / "inner.txt", f"The {LOCKED_DIR_TOKEN} sits in a chmod 000 folder.")
    os.chmod(corpus / "locked", 0)
    write(corpus / ".hidden.txt", "a dotfile")
    write(corpus / ".hiddendir" / "inside.txt", "in a dot-folder")
    write(corpus / "utf16.txt", f"The {UTF16_TOKEN} text is UTF-16 with a byte-order mark.".encode("utf-16"))
    write(corpus / "front-only.md", "---\ntitle: Nothing else\ntags: [a, b]\n---\n\n")
    front_body = f"---\ntitle: Front Title\nauthor: {HIDDEN_META_TOKEN}\n---\n# Heading\n\nThe {FRONT_TOKEN} body.\n"
    write(corpus / "front-body.md", front_body)
    write(corpus / "long.txt", _long_line())
    write(corpus / "big.txt", b"x " * (600 * 1024))  # 1.2 MiB, over the 1 MiB limit of the test config
    return corpus, outside


def run_with_deadline(fn, seconds: float):
    """``fn()`` in a daemon thread; fails the test (instead of hanging CI) when it
    has not returned within ``seconds``."""
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"ingest did not finish within {seconds} s: a read blocks (FIFO?) or cutting is too slow")
    if "error" in box:
        raise box["error"]
    return box["value"]


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, encoder) -> Ingested:
    root = tmp_path_factory.mktemp("bad-inputs")
    corpus, _ = build_bad_folder(root)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "units": {"max_tokens": 1024},
        "chunking": {"target_tokens": 128},
        "ingest": {"max_file_mib": 1, "large_document_tokens": 1000},
    }))
    index = root / "index"
    args = ["ingest", str(corpus), "--index", str(index), "--config", str(config), "--name", "bad", "--json"]
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("lcrag.retrievers.encoders.encoder.make_encoder", lambda _config: encoder)
            result = run_with_deadline(lambda: runner.invoke(app, args), DEADLINE_S)
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        yield Ingested(
            corpus=corpus,
            index=index,
            summary=summary,
            skipped={s["path"]: s["reason"] for s in summary["skipped"]},
            warnings={w["path"]: w["message"] for w in summary["warnings"]},
            unreadable_file_readable=_readable(corpus / "unreadable.txt"),
            locked_dir_readable=_readable(corpus / "locked"),
        )
    finally:
        for path in (corpus / "locked", corpus / "unreadable.txt"):
            if path.exists():
                os.chmod(path, 0o755)  # so the temporary folder can be removed


@pytest.fixture(scope="module")
def reader(ingested, encoder):
    with IndexReader(ingested.index, lambda _config: encoder) as opened:
        yield opened


def found(reader, token: str) -> set[str]:
    return {hit.doc_id for hit in reader.search(token, k=5, mode="bm25", level="doc")}


# --- the one ingest ----------------------------------------------------------------


KIND_REASONS = {  # path -> the start of its skip reason
    "corrupt.pdf": "corrupt PDF",
    "empty.txt": "empty file",
    "blank.txt": "empty file",
    "binary.txt": "binary file",
    "latin1.txt": "not valid UTF-8 (byte 0xe9 at offset 3)",
    "shape.json": "JSON top level is str; expected an object or a list of objects",
    "lines.jsonl:2": "invalid JSON on line 2",
    "lines.jsonl:3": "invalid JSON on line 3: nested too deeply to parse (RecursionError)",
    "dangling.txt": "broken symlink: its target does not exist",
    "deep.json": "invalid JSON: nested too deeply to parse (RecursionError)",
    "fifo.txt": "not a regular file (a FIFO)",
    "zero.txt": "symlink to a file outside the source folder: skipped (pass --follow-symlinks",
    "secret.txt": "symlink to a file outside the source folder: skipped (pass --follow-symlinks",
    "outside-folder": "symlink to a folder outside the source folder: skipped (pass --follow-symlinks",
    "loop": "symlink to a folder already loaded as '.'",
    ".hidden.txt": "hidden file: skipped",
    ".hiddendir": "hidden folder: skipped",
    "front-only.md": "empty after front matter",
    "big.txt": "file too large: 1.2 MiB, over the limit of 1.0 MiB (raise ingest.max_file_mib",
}


@pytest.mark.parametrize("path, reason", sorted(KIND_REASONS.items()))
def test_each_bad_kind_is_skipped_with_its_reason(ingested, path, reason):
    assert path in ingested.skipped, f"{path} not reported; skipped: {sorted(ingested.skipped)}"
    assert ingested.skipped[path].startswith(reason), ingested.skipped[path]


def test_nothing_else_is_skipped_and_hidden_folders_are_listed_once(ingested):
    expected = set(KIND_REASONS)
    if not ingested.unreadable_file_readable:
        expected.add("unreadable.txt")
    if not ingested.locked_dir_readable:
        expected.add("locked")
    assert set(ingested.skipped) == expected
    assert not any(path.startswith(".hiddendir/") for path in ingested.skipped)


def test_unreadable_file_and_folder_follow_what_the_os_allows(ingested, reader):
    # as root chmod 000 does not stop reading: then the documents are loaded
    if ingested.unreadable_file_readable:
        assert found(reader, UNREADABLE_TOKEN) == {"unreadable.txt"}
    else:
        assert ingested.skipped["unreadable.txt"] == "cannot read: permission denied"
    if ingested.locked_dir_readable:
        assert found(reader, LOCKED_DIR_TOKEN) == {"locked/inner.txt"}
    else:
        assert ingested.skipped["locked"].startswith("unreadable folder: permission denied")


def test_every_good_document_is_searchable_by_its_token(ingested, reader):
    for rel, (_, token) in GOOD.items():
        assert rel in found(reader, token), (rel, token)
    assert found(reader, "quokkamarble") == {"good1.txt", "inside-link.txt"}  # a symlink inside the folder is followed
    assert found(reader, LINES_TOKEN) == {"lines.jsonl#1"}
    assert found(reader, UTF16_TOKEN) == {"utf16.txt"}
    assert found(reader, FRONT_TOKEN) == {"front-body.md"}
    assert found(reader, LONG_TOKEN) == {"long.txt"}


def test_the_outside_secret_is_not_searchable(reader):
    assert found(reader, SECRET_TOKEN) == set()
    assert not any("secret" in doc_id or doc_id.startswith("outside-folder") for doc_id in reader.doc_ids())


def test_front_matter_is_metadata_not_text(reader):
    doc = reader.documents(["front-body.md"])["front-body.md"]
    assert doc.title == "Front Title"
    assert doc.meta("author") == HIDDEN_META_TOKEN
    assert doc.text.startswith("# Heading") and "author" not in doc.text
    assert found(reader, HIDDEN_META_TOKEN) == set()


def test_long_unpunctuated_document_is_cut_and_named_in_the_summary(ingested, reader):
    assert set(ingested.warnings) == {"long.txt"}
    assert ingested.warnings["long.txt"].startswith("large document: ")
    assert "ingest.large_document_tokens" in ingested.warnings["long.txt"]
    long_units = [r.unit for r in reader.catalog.unit_records() if "long.txt" in r.unit.doc_ids]
    assert len(long_units) >= 3 and all(unit.n_tokens <= 1024 for unit in long_units)
    spans = sorted((s.start, s.end) for unit in long_units for s in unit.spans if s.doc_id == "long.txt")
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # consecutive, non-overlapping cuts


def test_run_file_refuses_an_id_with_white_space_and_counts_its_lines(reader, tmp_path, capsys):
    # search_many is what `lcrag search --queries --run-file` runs (the open reader is shared:
    # Qdrant local mode allows one process, and the command maps RunFileError to its one-line error)
    queries = write(tmp_path / "q.jsonl", '{"_id": "q1", "text": "pumicelantern"}\n{"_id": "q2", "text": "quokkamarble"}\n')
    refused = tmp_path / "refused.trec"
    with pytest.raises(RunFileError, match=r"document id 'with space.txt' contains white space"):
        search_many(reader, queries, 3, "bm25", "doc", refused, "lcrag", False)
    assert not refused.exists()  # nothing half-written

    written = tmp_path / "run.trec"
    search_many(reader, queries, 3, "bm25", "chunk", written, "lcrag", False)
    lines = written.read_text(encoding="utf-8").splitlines()
    assert f"wrote {len(lines)} lines for 2 queries" in capsys.readouterr().err
    assert lines and all(len(line.split()) == 6 for line in lines)
    assert written.read_text(encoding="utf-8").count("\n") == len(lines)

    bad_qid = write(tmp_path / "bad.jsonl", '{"_id": "q 1", "text": "quokkamarble"}\n')
    with pytest.raises(RunFileError, match=r"query id 'q 1'"):
        search_many(reader, bad_qid, 3, "bm25", "chunk", tmp_path / "x.trec", "lcrag", False)
    with pytest.raises(RunFileError, match=r"run tag 'my run'"):
        search_many(reader, queries, 3, "bm25", "chunk", tmp_path / "y.trec", "my run", False)


def test_search_command_turns_a_refused_run_file_into_a_one_line_error(tmp_path, monkeypatch):
    import lcrag.app.cli.index as index_cli

    def refuse(*args):
        raise RunFileError("cannot write the TREC run file: document id 'a b' contains white space")

    class Reader:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(index_cli, "search_many", refuse)
    monkeypatch.setattr("lcrag.pipeline.index.search.IndexReader", Reader)
    queries = write(tmp_path / "q.jsonl", '{"_id": "q1", "text": "x"}\n')
    args = ["search", "--queries", str(queries), "--index", str(tmp_path), "--run-file", str(tmp_path / "r")]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "error: cannot write the TREC run file: document id 'a b'" in result.output


# --- the pure pieces ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"plain", "plain"),
        (b"\xef\xbb\xbfutf-8 sig", "utf-8 sig"),
        (b"\xff\xfe" + "utf-16 le \u00e9".encode("utf-16-le"), "utf-16 le \u00e9"),
        (b"\xfe\xff" + "utf-16 be".encode("utf-16-be"), "utf-16 be"),
        (b"\xff\xfe\x00\x00" + "utf-32 le".encode("utf-32-le"), "utf-32 le"),
        (b"\x00\x00\xfe\xff" + "utf-32 be".encode("utf-32-be"), "utf-32 be"),
        (b"\xff\xfe" + "odd".encode("utf-16-le") + b"x", "not valid UTF-16 (byte 0x78 at offset 8)"),
        (b"\xff\xfe" + "a\x00nul".encode("utf-16-le"), "binary file (NUL characters after a UTF-16 byte-order mark)"),
        (b"no bom\x00here", "binary file"),
        (b"caf\xe9", "not valid UTF-8 (byte 0xe9 at offset 3)"),
    ],
)
def test_decode_text_honours_byte_order_marks(data, expected):
    try:
        assert decode_text(data) == expected
    except SourceFormatError as exc:
        assert str(exc) == expected


def test_utf16_jsonl_is_read_as_its_mark_says():
    data = '{"text": "a"}\n{"text": "b"}\n'.encode("utf-16")
    assert as_utf8(data) == b'{"text": "a"}\n{"text": "b"}\n'
    assert [record for _, record, _ in iter_json_lines(data)] == [{"text": "a"}, {"text": "b"}]


@pytest.mark.parametrize(
    "text, metadata, body, found_block",
    [
        ("---\ntitle: T\n---\nBody", (("title", "T"),), "Body", True),
        (
            "---\ntitle: T\ntags: [a, 2]\ndate: 2024-01-02\n---\n",
            (("title", "T"), ("tags", "a, 2"), ("date", "2024-01-02")),
            "",
            True,
        ),
        ("---\n---\nBody", (), "Body", True),
        ("---\nkey: v\n...\nBody", (("key", "v"),), "Body", True),
        ("---\nnested: {a: 1}\nok: yes\n---\nB", (("ok", "true"),), "B", True),  # non-scalars are left out
        ("---\njust a line of text\n---\nB", (), "---\njust a line of text\n---\nB", False),  # not a mapping
        ("---\nkey: [unclosed\n---\nB", (), "---\nkey: [unclosed\n---\nB", False),  # invalid YAML
        ("---\n" + "[" * 5000 + "\n---\nB", (), "---\n" + "[" * 5000 + "\n---\nB", False),  # too deep for the parser
        ("---\ntitle: T\nno closing line", (), "---\ntitle: T\nno closing line", False),
        ("Text first\n---\ntitle: T\n---\n", (), "Text first\n---\ntitle: T\n---\n", False),
        ("----\ntitle: T\n---\nB", (), "----\ntitle: T\n---\nB", False),
    ],
)
def test_split_front_matter(text, metadata, body, found_block):
    front = split_front_matter(text)
    assert (front.metadata, front.body, front.found) == (metadata, body, found_block)


@pytest.mark.parametrize(
    "line, title",
    [("# Title", "Title"), ("# Title #", "Title"), ("#\tTabbed ##  ", "Tabbed"), ("# C# language", "C# language"),
     ("#NoSpace", None), ("## Sub", None), ("#", None), ("#   ", None), ("# #", None)],
)
def test_heading_title(line, title):
    assert heading_title(line) == title


def cpu_seconds(fn, repeat: int = 3) -> float:
    """The least CPU time (this thread's, so other processes on a loaded machine do not
    count) that ``fn()`` took in ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        fn()
        times.append(time.thread_time() - started)
    return min(times)


def growth(small, large, repeat: int = 3) -> tuple[float, float]:
    """CPU seconds of ``small()`` and ``large()``, each the best of ``repeat`` calls
    made alternately (so a change of conditions on the machine hits both alike)."""
    smalls, larges = [], []
    for _ in range(repeat):
        smalls.append(cpu_seconds(small, 1))
        larges.append(cpu_seconds(large, 1))
    return min(smalls), min(larges)


# Inputs 8 times as long: linear work grows about 8 times, quadratic work 64 times.
GROWTH = 8
LINEAR_BOUND = 24.0  # three times what linear work needs, well under quadratic's 64


def test_markdown_heading_is_linear_on_a_long_blank_heading():
    def heading(blanks: int) -> str:
        return "# a" + " " * blanks + "b\n\nbody"

    small_text, large_text = heading(25_000), heading(GROWTH * 25_000)
    # the old regex took minutes at 200,000 blanks: quadratic, it fails here by the ratio
    small, large = growth(lambda: markdown_title(small_text), lambda: markdown_title(large_text), repeat=5)
    assert large <= LINEAR_BOUND * max(small, 1e-4), (small, large)
    assert markdown_title(large_text)[0] == "a" + " " * (GROWTH * 25_000) + "b"


# Malformed markup that made html.parser (Python 3.11.7) search the rest of the page once per
# character (CVE-2025-6069): 200 KB of "<a" took it 32 s, 200 KB of "<!--" 22 s.
HOSTILE_HTML = {
    "unclosed-comments": "<!--", "end-tag-openers": "</", "tag-openers": "<a", "processing-instructions": "<?",
    "declarations": "<!", "mixed": "<!--</<a<?", "open-quoted-values": "<a x='", "spaced-quotes": "<a =\t'",
    "raw-text-openers": "<script>", "title-openers": "<title>", "end-tags-without-close": "</a",
}
HOSTILE_HTML_BYTES = 3 * 2**20  # a few MB: quadratic parsing of this would take hours
HTML_RATIO = 3.0  # a crafted page may cost at most this many times a benign page of the same size


def benign_html(size: int) -> str:
    return ("<p>Mount Etna in <b>Sicily</b> erupts &amp; smokes.</p>\n" * (size // 40 + 1))[:size]


def timed_load(folder: Path, guard_s: float | None = None) -> tuple[object, float]:
    """Load ``folder``; (result, CPU seconds it took: this thread's, so a loaded machine
    does not count). With ``guard_s`` a load still running after that many seconds of
    wall time fails the test instead of hanging it (SIGALRM: the parser's searches
    return often enough to see it)."""
    import signal

    def overdue(signum, frame):
        raise TimeoutError(f"loading took longer than {guard_s:.1f} s")

    previous = signal.signal(signal.SIGALRM, overdue) if guard_s else None
    if guard_s:
        signal.setitimer(signal.ITIMER_REAL, guard_s)
    try:
        started = time.thread_time()
        result = load_source(folder)
        return result, time.thread_time() - started
    finally:
        if guard_s:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def benign_html_seconds(tmp_path_factory) -> float:
    """The best of three loads of a benign page of HOSTILE_HTML_BYTES, in CPU seconds."""
    folder = tmp_path_factory.mktemp("benign-html")
    write(folder / "page.html", benign_html(HOSTILE_HTML_BYTES))
    times = []
    for _ in range(3):
        result, seconds = timed_load(folder)
        assert [d.doc_id for d in result.documents] == ["page.html"]
        times.append(seconds)
    return min(times)


@pytest.mark.parametrize("unit", list(HOSTILE_HTML.values()), ids=list(HOSTILE_HTML))
def test_crafted_html_ingests_in_time_proportional_to_its_size(tmp_path, benign_html_seconds, unit):
    page = (unit * (HOSTILE_HTML_BYTES // len(unit) + 1))[:HOSTILE_HTML_BYTES]
    write(tmp_path / "crafted.html", page)
    write(tmp_path / "good.html", "<p>Brindlewharf sits in HTML.</p>")
    bound = HTML_RATIO * benign_html_seconds
    result, seconds = timed_load(tmp_path, guard_s=max(20 * bound, 60.0))  # quadratic would take hours
    assert seconds <= bound, f"{seconds:.2f} s for a crafted page, {benign_html_seconds:.2f} s for a benign one"
    # loaded (whatever text it holds) or skipped with its reason; the other file in any case
    loaded = {d.doc_id for d in result.documents}
    assert "good.html" in loaded
    assert "crafted.html" in loaded or [s.path for s in result.skipped] == ["crafted.html"]


def test_crafted_html_parses_in_time_linear_in_its_size():
    """The parser alone: a crafted page four times as long takes about four times
    the CPU time (a quadratic parser would take sixteen), eight allowed for noise."""
    from lcrag.pipeline.ingest.loaders.html_text import parse_html

    size = 2**18  # a quadratic parser takes minutes on four times this
    for unit in ("<a x='", "<\x00", "&#"):  # the slowest crafted pages: many small steps, none skipped
        small_page, large_page = (unit * size)[:size], (unit * 4 * size)[: 4 * size]
        small, large = growth(lambda page=small_page: parse_html(page), lambda page=large_page: parse_html(page))
        assert large <= 8.0 * small + 0.02, (unit, small, large)


@pytest.mark.parametrize(
    "size, limit, ok",
    [(0, 1, True), (10, 10, True), (11, 10, False), (2 * 2**20, 2**20, False), (100, None, True)],
)
def test_read_regular_is_size_bounded(tmp_path, size, limit, ok):
    path = write(tmp_path / "f.txt", b"x" * size)
    if ok:
        assert read_regular(path, limit) == b"x" * size
    else:
        with pytest.raises(SourceFormatError, match=r"file too large: .*over the limit of .*ingest.max_file_mib"):
            read_regular(path, limit)


@pytest.mark.parametrize("target, kind", [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_devices_are_refused_even_when_links_are_followed(tmp_path, target, kind):
    if not Path(target).exists():
        pytest.skip(f"{target} is absent on this system")
    os.symlink(target, tmp_path / "dev.txt")
    result = load_source(tmp_path, "files", LoadOptions(follow_symlinks=True))
    reason = f"not a regular file ({kind}): only regular files are read"
    assert [(s.path, s.reason) for s in result.skipped] == [("dev.txt", reason)]


def test_fifo_is_refused_without_opening_it(tmp_path, monkeypatch):
    import builtins

    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    opened: list[str] = []
    real_os_open, real_open = os.open, builtins.open

    def refuse_the_fifo(opener):
        def spy(file, *args, **kwargs):
            if isinstance(file, (str, bytes, os.PathLike)) and Path(os.fsdecode(file)) == fifo:
                opened.append(opener)  # recorded, and never really opened: it could block
                raise PermissionError(13, "the test forbids opening the FIFO", str(fifo))
            return (real_os_open if opener == "os.open" else real_open)(file, *args, **kwargs)

        return spy

    monkeypatch.setattr(os, "open", refuse_the_fifo("os.open"))
    monkeypatch.setattr(builtins, "open", refuse_the_fifo("open"))
    with pytest.raises(SourceFormatError, match=r"not a regular file \(a FIFO\)"):
        read_regular(fifo, 100)
    monkeypatch.undo()
    assert opened == []  # refused on its stat alone


def test_gzip_is_bounded_after_decompression(tmp_path):
    bomb = gzip.compress(b"\x00" * (4 * 2**20))  # 4 MiB of zeros in a few KB
    assert len(bomb) < 2**20
    with pytest.raises(SourceFormatError, match=r"decompressed file too large: over the limit of 1.0 MiB"):
        gunzip(bomb, 2**20)
    path = write(tmp_path / "a.jsonl.gz", gzip.compress(b'{"text": "x"}\n'))
    assert read_bytes(path, 2**20) == b'{"text": "x"}\n'


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[" * DEEP + "]" * DEEP, "invalid JSON: nested too deeply to parse (RecursionError)"),
        ('{"n": ' + "9" * 5000 + "}", "invalid JSON: ValueError: Exceeds the limit"),
        ("{oops", "invalid JSON: Expecting property name"),
    ],
)
def test_parse_json_turns_any_parser_failure_into_a_reason(text, reason):
    with pytest.raises(SourceFormatError) as info:
        parse_json(text)
    assert str(info.value).startswith(reason)


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_too_deep_json_given_as_the_source_is_a_skip(tmp_path, name):
    path = write(tmp_path / name, ('{"text": "fine"}\n' if name.endswith("l") else "") + "[" * DEEP + "]" * DEEP + "\n")
    result = load_source(path)
    (skipped,) = result.skipped
    assert "nested too deeply to parse" in skipped.reason
    assert len(result.documents) == (1 if name.endswith("l") else 0)


def test_any_parser_failure_skips_only_that_file(tmp_path, monkeypatch):
    write(tmp_path / "a.html", "<p>first</p>")
    write(tmp_path / "b.txt", "second")

    def explode(html):
        raise MemoryError

    monkeypatch.setattr(files_loader, "parse_html", explode)
    result = load_source(tmp_path)
    assert [d.doc_id for d in result.documents] == ["b.txt"]
    reason = "cannot parse: too large to parse in memory (MemoryError)"
    assert [(s.path, s.reason) for s in result.skipped] == [("a.html", reason)]


def test_unreadable_folder_is_reported_even_as_root(tmp_path, monkeypatch):
    write(tmp_path / "ok" / "a.txt", "a")
    write(tmp_path / "locked" / "b.txt", "b")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr("lcrag.pipeline.ingest.loaders.walk.os.scandir", scandir)
    listing = list_source(tmp_path)
    assert [p.name for p in listing.files] == ["a.txt"]
    assert [(s.path, s.reason) for s in listing.skipped] == [
        ("locked", "unreadable folder: permission denied; its files were not loaded")
    ]


def test_symlinked_folders_inside_are_walked_once_outside_ones_only_when_allowed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "out"
    write(root / "real" / "a.txt", "a")
    write(outside / "o.txt", "o")
    os.symlink(root / "real", root / "alias")  # the same folder again: reported, read once
    os.symlink(outside, root / "ext")
    os.symlink(root, root / "real" / "up")  # a loop through an ancestor
    hidden = write(root / ".cache" / "h.txt", "h")
    os.symlink(hidden.parent, root / "linked-hidden")  # inside, not otherwise walked: followed
    listing = list_source(root)
    rels = [p.relative_to(root).as_posix() for p in listing.files]
    assert rels == ["linked-hidden/h.txt", "real/a.txt"]
    reasons = {s.path: s.reason for s in listing.skipped}
    assert reasons["alias"].startswith("symlink to a folder already loaded as 'real'")
    assert reasons["real/up"].startswith("symlink to a folder already loaded as '.'")
    assert reasons["ext"].startswith("symlink to a folder outside the source folder")
    assert reasons[".cache"].startswith("hidden folder")
    allowed = list_source(root, follow_symlinks=True)
    assert "ext/o.txt" in [p.relative_to(root).as_posix() for p in allowed.files]


def test_too_large_file_is_a_skip_with_the_configured_limit(tmp_path):
    write(tmp_path / "big.txt", b"y " * 2**20)
    write(tmp_path / "small.txt", "small")
    config = ingestion.load_options(_config(max_file_mib=1))
    result = load_source(tmp_path, "files", config)
    assert [d.doc_id for d in result.documents] == ["small.txt"]
    assert result.skipped[0].reason.startswith("file too large: 2.0 MiB, over the limit of 1.0 MiB")
    assert ingestion.load_options(_config(follow_symlinks=True)).follow_symlinks
    assert not ingestion.load_options(_config(follow_symlinks=True), follow_symlinks=False).follow_symlinks


def _config(**ingest):
    from lcrag.pipeline.config import config_from_dict

    return config_from_dict({"ingest": ingest})


def test_unpunctuated_text_is_cut_by_token_windows_in_linear_time():
    def words(n: int) -> tuple[str, np.ndarray]:  # one line, no sentence punctuation
        text = " ".join(f"w{i % 97}" for i in range(n))
        return text, ws_offsets(text)

    def cutting(text: str, offsets: np.ndarray):
        def cut():
            pieces = cut_ranges(text, offsets, [(0, len(text))], 500)
            return pieces, [c for piece in pieces for c in chunk_ranges(text, offsets, piece, 100)]

        return cut

    n_words = GROWTH * 12_500  # about 0.4 MB
    (small_text, small_offsets), (text, offsets) = words(12_500), words(n_words)
    small, large = growth(cutting(small_text, small_offsets), cutting(text, offsets))
    assert large <= LINEAR_BOUND * max(small, 1e-3), (small, large)  # linear: about 8 times
    pieces, chunks = cutting(text, offsets)()
    assert len(pieces) == n_words // 500 and all(len(ws_offsets(text[s:e])) <= 500 for s, e in pieces)
    assert sum(len(ws_offsets(text[s:e])) for s, e in chunks) == n_words  # every word, once


class _CountingCatalog:
    def __init__(self, docs):
        self.docs, self.fetched = docs, []

    def documents(self, ids):
        ids = list(ids)
        self.fetched.extend(ids)
        return {i: self.docs[i] for i in ids if i in self.docs}


class _CountingEncoder:
    def __init__(self):
        self.tokenized = []

    def token_offsets(self, texts):
        self.tokenized.extend(texts)
        return [ws_offsets(t) for t in texts]


def test_a_long_document_is_tokenized_once_across_commit_batches():
    from lcrag.core.types import Document

    long_doc, other = Document("long", "word " * 1000), Document("other", "short text")

    writer = SimpleNamespace(catalog=_CountingCatalog({"long": long_doc, "other": other}), encoder=_CountingEncoder())
    carried: dict = {}
    batches = [["long"], ["long"], ["long", "other"], ["other"], ["long"]]
    for number, ids in enumerate(batches):
        units = [Unit(f"u{number}{i}", (Span(doc_id, 0, 4),), 1) for i, doc_id in enumerate(ids)]
        carried = ingestion._batch_documents(writer, units, carried)
        assert set(carried) == set(ids)
        for doc, offsets in carried.values():
            assert np.array_equal(offsets, ws_offsets(doc.text))
    assert writer.catalog.fetched == ["long", "other", "long"]  # read again only after a batch without it
    assert len(writer.encoder.tokenized) == 3


@pytest.mark.parametrize(
    "value, problem",
    [
        ("d1", None),
        ("guide/tea.txt", None),
        ("u-0123abcd-c0001", None),
        ("doc#3", None),
        ("", "is empty"),
        ("with space.txt", "contains white space or a line break"),
        ("tab\there", "contains white space or a line break"),
        ("line\nbreak", "contains white space or a line break"),
        ("carriage\rreturn", "contains white space or a line break"),
        ("no\u00a0break", "contains white space or a line break"),
        ("para\u2029sep", "contains white space or a line break"),
    ],
)
def test_trec_field_check(value, problem):
    assert trec_field_problem(value) == problem
    if problem is None:
        check_trec_field("document id", value)
    else:
        with pytest.raises(RunFileError, match=re.escape(repr(value))):
            check_trec_field("document id", value)
