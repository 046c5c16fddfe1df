"""Encoder runtimes (``encoder.runtime``): parity with the float32 reference, the choice
and its fallback, the fingerprint, and indexes that never mix two runtimes' vectors.

Parity is measured on MiniLM over the texts of ``TEXTS`` (one of them longer than the
window of 128 tokens used here, so long late chunking reads it in overlapping windows),
as cosines against ``torch-fp32`` of (a) every token vector, (b) span-pooled chunk
vectors (what late chunking stores) and (c) sentence vectors (queries and naive chunks).
Tolerances, chosen from what was measured (the smallest cosine of each kind):

- ``onnx-fp32``: every cosine >= 0.9999 (measured: above 0.999999 everywhere; the same
  float32 arithmetic in another order).
- ``torch-bf16``: tokens >= 0.999, their mean and pooled >= 0.9995 (measured: tokens 0.99987
  smallest, 0.99994 mean; pooled 0.99993). bfloat16 keeps 8 bits of mantissa; it is checked
  here even on a CPU that only emulates it (the arithmetic is the same, only slower).
- ``onnx-int8``: tokens >= 0.97 each and >= 0.99 on average, pooled >= 0.99 (measured on an
  AVX2 CPU: tokens 0.986 smallest, 0.9954 mean; pooled 0.9922). A single token vector moves
  more than a pooled one because the rounding of int8 weights averages out over a span.
- nomic (``NOMIC_TOLERANCES``): onnx-fp32 as above; onnx-int8 tokens >= 0.97 each and
  >= 0.985 on average, pooled >= 0.98 (measured: 0.976, 0.9888 and 0.9839): nomic loses
  more to int8 than MiniLM does.

Retrieval quality, the real gate for a default, is measured by ``bench/encoders.py --runtimes``.

The MiniLM export is made once per session into a temporary state folder, so these tests
do not depend on ``make encoder-runtimes``; nomic's parity (``slow``, ``nomic``) uses the
export in the state folder when there is one and makes one otherwise.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from lcrag.core.errors import ConfigError
from lcrag.core.types import Document
from lcrag.pipeline.config import Config, EncoderConfig, config_from_dict
from lcrag.pipeline.index.folder import IndexStateError, read_manifest, with_legacy_runtime
from lcrag.pipeline.index.search import IndexReader
from lcrag.pipeline.ingest.ingestion import ingest
from lcrag.pipeline.ingest.loaders import LoadResult
from lcrag.retrievers.config import RUNTIME_CHOICES
from lcrag.retrievers.encoders import runtimes
from lcrag.retrievers.encoders.encoder import EncoderError, TransformerEncoder, make_encoder
from lcrag.retrievers.encoders.late_chunking import pool_spans, window_starts
from tests.helpers import load_script

MINILM = "all-MiniLM-L6-v2"
SMALL_WINDOW = {"window": 128, "window_overlap": 32, "batch_tokens": 1024}
LONG = " ".join(
    f"Paragraph {i}: volcanoes form where magma reaches the surface, and lava flows can bury whole towns; "
    f"Mount Etna in Sicily is one of the most active volcanoes in the world." for i in range(14))
TEXTS = [
    "Cats purr when they are content.",
    "Bread dough needs flour, water, salt and yeast; kneading develops the gluten network.",
    "What does a sourdough starter replace?",
    "Ünïcödé text — with dashes, “quotes” and numbers like 3.14159 or 2,048 tokens.",
    LONG,
]
# runtime -> (smallest token cosine, smallest mean token cosine, smallest pooled cosine)
TOLERANCES = {
    "onnx-fp32": (0.9999, 0.9999, 0.9999),
    "torch-bf16": (0.999, 0.9995, 0.9995),
    "onnx-int8": (0.97, 0.99, 0.99),
}
NOMIC_TOLERANCES = {"onnx-fp32": TOLERANCES["onnx-fp32"], "onnx-int8": (0.97, 0.985, 0.98)}
NATIVE = frozenset({"avx512_bf16"})


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# -- the exported MiniLM, once per session -----------------------------------------------


@pytest.fixture(scope="session")
def onnx_home(tmp_path_factory) -> Path:
    """A state folder holding MiniLM's ONNX export (float32 and int8)."""
    # the test extra installs both; a missing one is a set-up error, not a reason to skip
    for package in ("onnxruntime", "onnx"):
        assert importlib.util.find_spec(package), f"{package} is missing: pip install -e '.[test]' (or '.[onnx]')"
    home = tmp_path_factory.mktemp("onnx-home")
    marker = load_script("export_onnx").export(MINILM, home)
    assert marker["probe_cosines"]["onnx-fp32"]["token_min"] >= 0.9999
    return home


@pytest.fixture
def exported(onnx_home, monkeypatch) -> Path:
    """LCRAG_HOME pointed at the session's export for one test."""
    monkeypatch.setenv("LCRAG_HOME", str(onnx_home))
    return onnx_home


class Recorder:
    """Wraps an encoder's forward pass and keeps every batch it was given."""

    def __init__(self, encoder: TransformerEncoder) -> None:
        self.inner = encoder.warm_up()._runner
        self.runtime = self.inner.runtime
        self.batches: list[tuple[np.ndarray, np.ndarray]] = []
        encoder._runner = self

    def __call__(self, input_ids, attention_mask):
        self.batches.append((input_ids.copy(), attention_mask.copy()))
        return self.inner(input_ids, attention_mask)


def encode_all(encoder: TransformerEncoder):
    """Token vectors, span-pooled chunk vectors (thirds of each text) and sentence vectors."""
    tokens = encoder.token_embeddings(TEXTS)
    spans = [[(0, len(t) // 3), (len(t) // 3, 2 * len(t) // 3), (2 * len(t) // 3, len(t))] for t in TEXTS]
    chunks = np.vstack([pool_spans(te, s) for te, s in zip(tokens, spans)])
    return tokens, chunks, encoder.embed(TEXTS), encoder.embed_documents(TEXTS)


@pytest.fixture(scope="module")
def reference():
    encoder = TransformerEncoder(EncoderConfig(**SMALL_WINDOW))
    recorder = Recorder(encoder)
    return encode_all(encoder), recorder.batches


def parity(reference_out, out) -> dict[str, float]:
    ref_tokens, ref_chunks, ref_queries, ref_docs = reference_out
    tokens, chunks, queries, docs = out
    per_token = np.concatenate([cosine_rows(a.vectors, b.vectors) for a, b in zip(ref_tokens, tokens)])
    pooled = np.concatenate([cosine_rows(ref_chunks, chunks), cosine_rows(ref_queries, queries), cosine_rows(ref_docs, docs)])
    return {"token_min": float(per_token.min()), "token_mean": float(per_token.mean()), "pooled_min": float(pooled.min())}


@pytest.mark.parametrize("runtime", sorted(TOLERANCES))
def test_runtime_matches_float32_within_its_tolerance(runtime, reference, exported, monkeypatch):
    monkeypatch.setattr(runtimes, "cpu_flags", lambda *a: NATIVE)  # bf16 is checked on any CPU (emulated here)
    encoder = TransformerEncoder(EncoderConfig(runtime=runtime, **SMALL_WINDOW))
    assert (encoder.runtime, encoder.runtime_note) == (runtime, None)
    recorder = Recorder(encoder)
    assert recorder.runtime == runtime
    out = encode_all(encoder)
    ref_out, ref_batches = reference
    # the same token vectors per text, from the same windows in the same batches
    assert [len(t.vectors) for t in out[0]] == [len(t.vectors) for t in ref_out[0]]
    assert all(np.array_equal(a.offsets, b.offsets) for a, b in zip(out[0], ref_out[0]))
    assert len(recorder.batches) == len(ref_batches)
    for (ids, mask), (ref_ids, ref_mask) in zip(recorder.batches, ref_batches):
        assert np.array_equal(ids, ref_ids) and np.array_equal(mask, ref_mask)
    measured = parity(ref_out, out)
    token_min, token_mean, pooled_min = TOLERANCES[runtime]
    assert measured["token_min"] >= token_min, measured
    assert measured["token_mean"] >= token_mean, measured
    assert measured["pooled_min"] >= pooled_min, measured


def test_the_long_text_is_read_in_overlapping_windows(reference):
    """The parity above covers long late chunking: LONG needs several windows here."""
    ref_tokens = reference[0][0]
    encoder = TransformerEncoder(EncoderConfig(**SMALL_WINDOW)).warm_up()
    starts = window_starts(len(ref_tokens[-1].vectors), encoder._window_content(), SMALL_WINDOW["window_overlap"])
    assert len(starts) >= 3


# -- which runtime runs, and the fallback -------------------------------------------------


@pytest.mark.parametrize("runtime", ["onnx", "int8", "", "torch-fp16", "AUTO"])
def test_config_refuses_an_unknown_runtime_listing_the_choices(runtime):
    with pytest.raises(ConfigError, match=r"encoder.runtime must be one of torch-fp32, torch-bf16, onnx-fp32, onnx-int8, auto"):
        EncoderConfig(runtime=runtime)
    with pytest.raises(ConfigError, match=r"encoder.runtime"):
        config_from_dict({"encoder": {"runtime": runtime}})


def test_config_accepts_every_runtime_and_defaults_to_the_reference():
    assert EncoderConfig().runtime == runtimes.REFERENCE == "torch-fp32"
    assert set(RUNTIME_CHOICES) == {*runtimes.RUNTIMES, runtimes.AUTO}
    for runtime in RUNTIME_CHOICES:
        assert config_from_dict({"encoder": {"runtime": runtime}}).encoder.runtime == runtime


@pytest.mark.parametrize("flags", [frozenset(), frozenset({"avx2"}), NATIVE, frozenset({"amx_bf16", "avx512_bf16"})])
def test_auto_resolves_by_the_table_of_cpu_features(flags):
    expected = next(runtime for needed, runtime in runtimes.DEFAULT_BY_FEATURES if needed <= flags)
    assert runtimes.resolve_runtime("auto", flags) == expected
    assert expected in runtimes.RUNTIMES
    for runtime in runtimes.RUNTIMES:  # a concrete runtime is what it says
        assert runtimes.resolve_runtime(runtime, flags) == runtime


def test_the_table_ends_with_a_row_for_every_cpu():
    assert runtimes.DEFAULT_BY_FEATURES[-1][0] == frozenset()
    assert all(runtime in runtimes.RUNTIMES for _, runtime in runtimes.DEFAULT_BY_FEATURES)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n")
    assert runtimes.cpu_flags(cpuinfo) == {"fpu", "avx2", "avx512_bf16"}
    assert runtimes.cpu_flags(tmp_path / "missing") == frozenset()


def no_onnxruntime(monkeypatch):
    real = runtimes.importlib.util.find_spec
    monkeypatch.setattr(runtimes.importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))


# (runtime asked, CPU flags, onnxruntime installed, export present) -> (runtime run, words of the warning)
CHOICES = [
    ("torch-fp32", frozenset(), True, False, "torch-fp32", None),
    ("torch-bf16", NATIVE, True, False, "torch-bf16", None),
    ("torch-bf16", frozenset({"amx_bf16"}), True, False, "torch-bf16", None),
    ("torch-bf16", frozenset({"avx2"}), True, True, "torch-fp32", "neither AVX-512 BF16 nor AMX"),
    ("onnx-fp32", frozenset(), True, True, "onnx-fp32", None),
    ("onnx-int8", frozenset(), True, True, "onnx-int8", None),
    ("onnx-fp32", frozenset(), True, False, "torch-fp32", "make encoder-runtimes"),
    ("onnx-int8", frozenset(), True, False, "torch-fp32", "make encoder-runtimes"),
    ("onnx-int8", frozenset(), False, True, "torch-fp32", "pip install onnxruntime"),
    ("auto", frozenset(), True, True, runtimes.resolve_runtime("auto", frozenset()), None),
    ("auto", frozenset(), True, False, "torch-fp32", "make encoder-runtimes"),  # auto's onnx-fp32, not exported
]


@pytest.mark.parametrize("asked, flags, installed, present, runs, warning", CHOICES)
def test_choose_runtime_falls_back_to_float32_with_the_fix(asked, flags, installed, present, runs, warning, tmp_path, monkeypatch):
    if present:
        folder = runtimes.onnx_dir(MINILM, tmp_path)
        folder.mkdir(parents=True)
        for name in runtimes.ONNX_FILES.values():
            (folder / name).write_bytes(b"")
        (folder / runtimes.ONNX_MARKER).write_text("{}")
    if not installed:
        no_onnxruntime(monkeypatch)
    runtime, note = runtimes.choose_runtime(asked, MINILM, flags, tmp_path)
    assert runtime == runs
    if warning is None:
        assert note is None
    else:
        assert warning in note and f"Falling back to {runtimes.REFERENCE}" in note and asked in note


def test_an_unfinished_export_is_missing(tmp_path):
    folder = runtimes.onnx_dir(MINILM, tmp_path)
    folder.mkdir(parents=True)
    (folder / "model.onnx").write_bytes(b"")  # the export stopped before its marker
    runtime, note = runtimes.choose_runtime("onnx-fp32", MINILM, frozenset(), tmp_path)
    assert runtime == "torch-fp32" and "missing or unfinished" in note and str(folder) in note


def test_the_encoder_warns_and_runs_float32_when_the_export_is_missing(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LCRAG_HOME", str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="lcrag.retrievers.encoders.encoder"):
        encoder = TransformerEncoder(EncoderConfig(runtime="onnx-int8"))
    assert encoder.runtime == "torch-fp32"
    assert "make encoder-runtimes" in encoder.runtime_note and str(tmp_path / "models" / f"{MINILM}-onnx") in encoder.runtime_note
    assert [r.getMessage() for r in caplog.records] == [encoder.runtime_note]
    vectors = encoder.embed(["a query"])
    assert encoder._runner.runtime == "torch-fp32" and vectors.shape == (1, 384)


def test_the_encoder_names_its_runtime_without_loading(exported):
    encoder = make_encoder(EncoderConfig(runtime="onnx-fp32"))
    assert (encoder.runtime, encoder.runtime_note, encoder._runner) == ("onnx-fp32", None, None)


def test_onnx_runtimes_load_no_torch_model(exported):
    encoder = TransformerEncoder(EncoderConfig(runtime="onnx-int8")).warm_up()
    assert encoder._model is None and encoder.dim == 384 and encoder._runner.runtime == "onnx-int8"


# -- the fingerprint and indexes ----------------------------------------------------------


def old_fingerprint(config: Config) -> str:
    """The fingerprint as computed before runtimes existed."""
    shaping = {
        "encoder": {k: v for k, v in dataclasses.asdict(config.encoder).items()
                    if k in ("model", "window", "window_overlap") or (k in ("query_prefix", "document_prefix") and v)},
        "units": dataclasses.asdict(config.units), "chunking": dataclasses.asdict(config.chunking),
        "bm25": dataclasses.asdict(config.bm25),
    }
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def with_runtime(runtime: str, **encoder) -> Config:
    return config_from_dict({"encoder": {"runtime": runtime, **encoder}})


def test_the_fingerprint_differs_by_runtime_and_keeps_float32s():
    fingerprints = {runtime: with_runtime(runtime).index_fingerprint() for runtime in runtimes.RUNTIMES}
    assert len(set(fingerprints.values())) == len(runtimes.RUNTIMES)
    assert fingerprints["torch-fp32"] == Config().index_fingerprint() == old_fingerprint(Config())
    nomic = with_runtime("torch-fp32", window=2048, window_overlap=256)
    assert nomic.index_fingerprint() == old_fingerprint(nomic)
    assert with_runtime("auto").index_fingerprint() == fingerprints[runtimes.resolve_runtime("auto")]


def test_a_manifest_from_before_runtimes_means_float32():
    assert with_legacy_runtime({"encoder": {"model": MINILM}})["encoder"]["runtime"] == "torch-fp32"
    assert with_legacy_runtime({"encoder": {"runtime": "onnx-int8"}})["encoder"]["runtime"] == "onnx-int8"


DOCS = LoadResult("docs", (
    Document("cats", "Cats are small domestic felines. They purr when content and sleep most of the day.", "Cats"),
    Document("etna", "Mount Etna in Sicily is one of the most active volcanoes in the world.", "Etna"),
    Document("bread", "Bread dough needs flour, water, salt and yeast. Bake the loaf in a hot oven.", "Bread"),
), ())
MORE = LoadResult("docs", (*DOCS.documents, Document("tea", "Green tea is steamed or pan fired to stop oxidation.", "Tea")), ())
TINY = {"chunking": {"target_tokens": 16}, "units": {"max_tokens": 64}}


def tiny_config(runtime: str) -> Config:
    return config_from_dict({**TINY, "encoder": {"runtime": runtime}})


def test_an_index_refuses_vectors_of_another_runtime(tmp_path, exported, encoder):
    index = tmp_path / "index"
    ingest(DOCS, index, tiny_config("torch-fp32"), encoder, "docs")
    int8 = make_encoder(EncoderConfig(runtime="onnx-int8"))
    with pytest.raises(IndexStateError, match="built with encoder runtime torch-fp32, and this encoder runs onnx-int8"):
        ingest(MORE, index, tiny_config("onnx-int8"), int8, "docs")
    # the same runtime adds to it
    report = ingest(MORE, index, tiny_config("torch-fp32"), encoder, "docs")
    assert report.plan.added == 1


def test_an_index_records_its_runtime_and_is_searched_with_it(tmp_path, exported, encoder):
    index = tmp_path / "index"
    ingest(DOCS, index, tiny_config("onnx-int8"), make_encoder(EncoderConfig(runtime="onnx-int8")), "docs")
    manifest = read_manifest(index)
    assert manifest.config["encoder"]["runtime"] == "onnx-int8"
    assert manifest.fingerprint == tiny_config("onnx-int8").index_fingerprint() != tiny_config("torch-fp32").index_fingerprint()
    with IndexReader(index, make_encoder) as reader:
        assert reader.encoder.runtime == "onnx-int8"
        assert reader.search("which volcano is active?", k=1, level="doc")[0].doc_id == "etna"
    with IndexReader(index, lambda config: encoder) as reader:  # opens: reading documents needs no encoder
        assert reader.documents(["etna"])["etna"].text
        with pytest.raises(IndexStateError, match="built with encoder runtime onnx-int8, but the encoder here runs torch-fp32"):
            reader.search("which volcano is active?", k=1)
    with pytest.raises(IndexStateError, match="and this encoder runs torch-fp32"):
        ingest(MORE, index, tiny_config("torch-fp32"), encoder, "docs")


def test_an_index_built_with_an_export_is_refused_where_it_is_missing(tmp_path, exported, monkeypatch):
    index = tmp_path / "index"
    ingest(DOCS, index, tiny_config("onnx-fp32"), make_encoder(EncoderConfig(runtime="onnx-fp32")), "docs")
    monkeypatch.setenv("LCRAG_HOME", str(tmp_path / "elsewhere"))  # a machine without the export
    with IndexReader(index, make_encoder) as reader, pytest.raises(IndexStateError, match="make encoder-runtimes"):
        reader.search("which volcano is active?", k=1)
    with pytest.raises(IndexStateError, match=r"built with encoder runtime onnx-fp32.*make encoder-runtimes"):
        ingest(MORE, index, tiny_config("onnx-fp32"), make_encoder(EncoderConfig(runtime="onnx-fp32")), "docs")


def test_a_fallback_records_the_runtime_that_really_built_the_index(tmp_path, monkeypatch, encoder):
    monkeypatch.setenv("LCRAG_HOME", str(tmp_path / "no-exports"))
    index = tmp_path / "index"
    fallback = make_encoder(EncoderConfig(runtime="onnx-int8"))
    assert fallback.runtime == "torch-fp32"
    ingest(DOCS, index, tiny_config("onnx-int8"), fallback, "docs")
    manifest = read_manifest(index)
    assert manifest.config["encoder"]["runtime"] == "torch-fp32"
    assert manifest.fingerprint == tiny_config("torch-fp32").index_fingerprint()


def test_auto_records_the_runtime_it_resolved_to(tmp_path, exported, encoder):
    index = tmp_path / "index"
    ingest(DOCS, index, tiny_config("auto"), make_encoder(EncoderConfig(runtime="auto")), "docs")
    assert read_manifest(index).config["encoder"]["runtime"] == runtimes.resolve_runtime("auto")


def test_auto_keeps_the_runtime_an_existing_index_was_built_with(tmp_path, encoder, monkeypatch):
    from lcrag.pipeline.ingest.ingestion import ingest_generation, runtime_for_index

    index, generational = tmp_path / "index", tmp_path / "generational"
    assert runtime_for_index(tiny_config("auto"), index) == tiny_config("auto")  # a new index: this machine's default
    assert runtime_for_index(tiny_config("onnx-int8"), index) == tiny_config("onnx-int8")  # named: as configured
    ingest(DOCS, index, tiny_config("torch-fp32"), encoder, "docs")
    ingest_generation(DOCS, generational, tiny_config("torch-fp32"), encoder, "docs")
    # the machine's default moves on (a measured runtime became auto's choice): old indexes keep theirs
    monkeypatch.setattr(runtimes, "DEFAULT_BY_FEATURES", ((frozenset(), "onnx-int8"),))
    for root in (index, generational):
        kept = runtime_for_index(tiny_config("auto"), root)
        assert kept.encoder.runtime == "torch-fp32" and kept.index_fingerprint() == tiny_config("torch-fp32").index_fingerprint()
        assert runtime_for_index(tiny_config("onnx-int8"), root).encoder.runtime == "onnx-int8"  # refused later, by the writer
    assert ingest(MORE, index, runtime_for_index(tiny_config("auto"), index), encoder, "docs").plan.added == 1


def test_a_worker_that_cannot_run_the_index_runtime_refuses(tmp_path, monkeypatch):
    from lcrag.pipeline.ingest.distributed import worker_encoder

    monkeypatch.setenv("LCRAG_HOME", str(tmp_path))
    with pytest.raises(EncoderError, match=r"cannot run the index's encoder runtime onnx-int8.*make encoder-runtimes"):
        worker_encoder(EncoderConfig(runtime="onnx-int8", threads=1))


# -- nomic -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.nomic
@pytest.mark.parametrize("runtime", sorted(NOMIC_TOLERANCES))
def test_nomic_runtimes_match_float32(runtime, tmp_path_factory, monkeypatch):
    from lcrag.retrievers.encoders import installed
    from tests.test_nomic_encoder import require_converted_model

    assert importlib.util.find_spec("onnxruntime"), "onnxruntime is missing: pip install -e '.[test]'"
    source = require_converted_model()
    nomic = installed.NOMIC_MODEL
    if not runtimes.is_exported(runtimes.onnx_dir(nomic)):  # export into a temporary state folder beside the model
        home = tmp_path_factory.getbasetemp() / "nomic-onnx-home"
        if not runtimes.is_exported(runtimes.onnx_dir(nomic, home)):
            (home / "models").mkdir(parents=True, exist_ok=True)
            os.symlink(source, home / "models" / nomic)
            load_script("export_onnx").export(nomic, home)
        monkeypatch.setenv("LCRAG_HOME", str(home))
    settings = {"model": nomic, "window": 256, "window_overlap": 64, "batch_tokens": 2048,
                "query_prefix": "search_query: ", "document_prefix": "search_document: "}
    reference = encode_all(TransformerEncoder(EncoderConfig(**settings)))
    encoder = TransformerEncoder(EncoderConfig(runtime=runtime, **settings))
    assert encoder.runtime == runtime
    measured = parity(reference, encode_all(encoder))
    token_min, token_mean, pooled_min = NOMIC_TOLERANCES[runtime]
    assert measured["token_min"] >= token_min and measured["token_mean"] >= token_mean, measured
    assert measured["pooled_min"] >= pooled_min, measured
