"""Late chunking: windowing, stitching and span pooling as pure functions, then
the real encoder checked against raw model forwards and sentence-transformers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lcrag.pipeline.config import ChunkConfig, EncoderConfig
from lcrag.retrievers.encoders.late_chunking import (
    TokenEmbeddings,
    pool_spans,
    stitch_windows,
    window_starts,
)
from tests.helpers import ws_offsets


def normalised(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


# -- window_starts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, content, overlap, expected",
    [
        (0, 10, 2, [0]),
        (10, 20, 5, [0]),
        (20, 20, 5, [0]),
        (21, 10, 2, [0, 8, 16]),  # 16 + 10 = 26 >= 21; 8 + 10 = 18 < 21
        (26, 10, 2, [0, 8, 16]),
        (27, 10, 2, [0, 8, 16, 24]),
        (30, 10, 0, [0, 10, 20]),
        (31, 10, 0, [0, 10, 20, 30]),
        (11, 10, 9, [0, 1]),
        (100, 30, 8, [0, 22, 44, 66, 88]),
        (96, 30, 8, [0, 22, 44, 66]),
    ],
)
def test_window_starts_table(n, content, overlap, expected):
    assert window_starts(n, content, overlap) == expected


def test_window_starts_properties_over_a_grid():
    for n, content, overlap in itertools.product(range(1, 80), (4, 7, 10, 30), (0, 1, 3, 6)):
        if overlap >= content:
            continue
        starts = window_starts(n, content, overlap)
        assert starts[0] == 0
        assert starts[-1] + content >= n  # the last window reaches the end
        if len(starts) > 1:
            assert starts[-2] + content < n  # and no window is redundant
        assert all(b - a == content - overlap for a, b in itertools.pairwise(starts))


@pytest.mark.parametrize("content, overlap", [(5, 5), (4, 6)])
def test_window_starts_rejects_overlap_not_below_content(content, overlap):
    with pytest.raises(ValueError):
        window_starts(20, content, overlap)


# -- stitch_windows -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, content, overlap",
    [(5, 10, 3), (10, 10, 3), (11, 10, 3), (50, 10, 3), (50, 10, 0), (64, 16, 15), (100, 30, 8), (97, 30, 8)],
)
def test_stitch_windows_reconstructs_per_token_rows(n, content, overlap):
    base = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    starts = window_starts(n, content, overlap)
    windows = [base[s : s + content] for s in starts]
    assert np.array_equal(stitch_windows(windows, starts, n, overlap), base)


def test_stitch_windows_errors():
    base = np.arange(20, dtype=np.float32).reshape(10, 2)
    with pytest.raises(ValueError, match="no windows"):
        stitch_windows([], [], 0, 0)
    with pytest.raises(ValueError, match="gap"):
        stitch_windows([base[0:4], base[6:10]], [0, 6], 10, 0)
    with pytest.raises(ValueError, match="stitched"):
        stitch_windows([base[0:4], base[2:6]], [0, 2], 10, 2)


# -- pool_spans -----------------------------------------------------------------------------------


POOL_TEXT = "alpha beta  gamma delta\nepsilon zeta"


@pytest.mark.parametrize(
    "words, normalize",
    [
        (["alpha"], True),
        (["alpha", "beta"], True),
        (["gamma", "delta", "epsilon"], True),
        (["zeta"], False),
        (["beta", "gamma", "delta"], False),
    ],
)
def test_pool_spans_is_mean_of_tokens_starting_inside(words, normalize):
    offsets = ws_offsets(POOL_TEXT)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(offsets), 5)).astype(np.float32)
    start = POOL_TEXT.index(words[0])
    end = POOL_TEXT.index(words[-1]) + len(words[-1])
    all_words = POOL_TEXT.split()
    rows = [all_words.index(w) for w in words]
    expected = vectors[rows].mean(axis=0)
    if normalize:
        expected = normalised(expected)
    out = pool_spans(TokenEmbeddings(offsets, vectors), [(start, end)], normalize=normalize)
    assert out.shape == (1, 5)
    assert np.allclose(out[0], expected, atol=1e-6)


def test_pool_spans_range_starting_mid_token_skips_that_token():
    offsets = ws_offsets(POOL_TEXT)
    vectors = np.eye(len(offsets), dtype=np.float32)
    start = POOL_TEXT.index("beta") + 1  # inside "beta": only gamma's token begins inside
    end = POOL_TEXT.index("gamma") + 5
    out = pool_spans(TokenEmbeddings(offsets, vectors), [(start, end)])
    assert np.allclose(out[0], vectors[2])


def test_pool_spans_empty_range_falls_back_to_context_mean():
    offsets = ws_offsets(POOL_TEXT)
    vectors = np.arange(len(offsets) * 4, dtype=np.float32).reshape(-1, 4) + 1
    space = POOL_TEXT.index("  ")
    out = pool_spans(TokenEmbeddings(offsets, vectors), [(space, space + 1), (0, 0), (0, 5)])
    assert np.allclose(out[0], normalised(vectors.mean(axis=0)), atol=1e-6)
    assert np.allclose(out[1], normalised(vectors.mean(axis=0)), atol=1e-6)
    assert np.allclose(out[2], normalised(vectors[0]), atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_pool_spans_zero_vector_stays_zero_and_no_tokens_gives_zeros():
    offsets = ws_offsets("a b")
    out = pool_spans(TokenEmbeddings(offsets, np.zeros((2, 3), dtype=np.float32)), [(0, 1)])
    assert np.array_equal(out, np.zeros((1, 3)))
    empty = TokenEmbeddings(np.zeros((0, 2), dtype=np.int64), np.zeros((0, 3), dtype=np.float32))
    assert np.array_equal(pool_spans(empty, [(0, 4)]), np.zeros((1, 3)))


def test_token_embeddings_length_mismatch_raises():
    with pytest.raises(ValueError):
        TokenEmbeddings(np.zeros((2, 2), dtype=np.int64), np.zeros((3, 4), dtype=np.float32))


# -- the real encoder -------------------------------------------------------------------------------

SHORT = "Late chunking pools token embeddings after reading the whole document."
LONG_SENTENCES = [
    "Marie Curie was a physicist and chemist who conducted pioneering research on radioactivity.",
    "She was the first woman to win a Nobel Prize.",
    "She is the only person to win Nobel Prizes in two scientific fields.",
    "Her husband Pierre Curie shared her first Nobel Prize.",
    "She discovered the elements polonium and radium.",
    "During the First World War she developed mobile radiography units.",
    "She died in 1934 from aplastic anaemia, likely caused by radiation exposure.",
]
LONG = " ".join(LONG_SENTENCES)


def small_encoder(window: int, overlap: int):
    """An encoder with a small window, loaded the ordinary way."""
    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    return TransformerEncoder(EncoderConfig(window=window, window_overlap=overlap, batch_tokens=window)).warm_up()


def raw_forward(enc, ids: list[int]) -> np.ndarray:
    """Hidden states of [CLS] + ids + [SEP] from one unpadded model call."""
    import torch

    tok = enc.tokenizer
    tensor = torch.tensor([[tok.cls_token_id, *ids, tok.sep_token_id]], dtype=torch.long)
    with torch.inference_mode():
        hidden = enc._model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).last_hidden_state
    return hidden[0].float().numpy()


def ids_of(enc, text: str) -> list[int]:
    return enc.tokenizer(text, add_special_tokens=False)["input_ids"]


def test_token_embeddings_equal_a_raw_forward(encoder):
    texts = [SHORT, "A much shorter one.", LONG]  # different lengths: batched with padding
    embedded = encoder.token_embeddings(texts)
    for text, emb in zip(texts, embedded):
        ids = ids_of(encoder, text)
        assert len(ids) <= encoder.window - 2
        expected = raw_forward(encoder, ids)[1:-1]
        assert emb.vectors.shape == (len(ids), encoder.dim)
        assert np.allclose(emb.vectors, expected, atol=1e-4)
        assert np.array_equal(emb.offsets, encoder.token_offsets([text])[0])
        # offsets point at the token text
        first = encoder.tokenizer.convert_ids_to_tokens(ids[:1])[0]
        assert text[emb.offsets[0, 0] : emb.offsets[0, 1]].lower() == first


def test_token_embeddings_of_empty_text(encoder):
    out = encoder.token_embeddings(["", SHORT])
    assert out[0].vectors.shape == (0, encoder.dim)
    assert len(out[1].vectors) == len(ids_of(encoder, SHORT))


def test_short_text_through_a_small_window_equals_the_single_pass(encoder):
    small = small_encoder(64, 16)
    text = LONG_SENTENCES[0] + " " + LONG_SENTENCES[1]
    ids = ids_of(small, text)
    assert len(ids) < 62
    vectors = small.token_embeddings([text])[0].vectors
    assert np.allclose(vectors, raw_forward(small, ids)[1:-1], atol=1e-4)


def test_long_text_is_read_in_overlapping_windows(encoder):
    window, overlap = 32, 8
    content = window - 2
    small = small_encoder(window, overlap)
    ids = ids_of(small, LONG)
    n = len(ids)
    assert n > 3 * content
    vectors = small.token_embeddings([LONG])[0].vectors
    assert vectors.shape == (n, small.dim)

    # windows start every content - overlap tokens until one reaches the end
    starts = [0]
    while starts[-1] + content < n:
        starts.append(starts[-1] + content - overlap)
    assert np.allclose(vectors[:content], raw_forward(small, ids[:content])[1:-1], atol=1e-4)
    for s in starts[1:]:
        window_rows = raw_forward(small, ids[s : s + content])[1:-1]
        assert np.allclose(vectors[s + overlap : s + len(window_rows)], window_rows[overlap:], atol=1e-4)
    # and windowing matters: the tail differs from a single full-length pass
    full = encoder.token_embeddings([LONG])[0].vectors
    assert not np.allclose(vectors[-5:], full[-5:], atol=1e-3)


def one_unit_corpus(encoder):
    from lcrag.core.types import Document
    from lcrag.pipeline.ingest.units import build_units

    docs = [
        Document("curie", " ".join(LONG_SENTENCES[:4]), title="Marie Curie"),
        Document("radium", " ".join(LONG_SENTENCES[4:]), title="Marie Curie"),
    ]
    offsets = encoder.token_offsets([d.text for d in docs])
    title_tokens = [len(o) for o in encoder.token_offsets([d.title for d in docs])]
    units = build_units(docs, offsets, title_tokens, 512, "title")
    assert len(units) == 1 and units[0].doc_ids == ("curie", "radium")
    return units, {d.doc_id: d for d in docs}, {d.doc_id: o for d, o in zip(docs, offsets)}


def test_late_unit_context_vectors_are_span_means_of_the_unit_pass(encoder):
    from lcrag.pipeline.ingest.embedding import embed_units, late_contexts

    units, docs, offsets = one_unit_corpus(encoder)
    chunks, vectors = embed_units(units, docs, offsets, encoder, ChunkConfig(method="late", context="unit", target_tokens=24))
    assert len(chunks) >= 4 and {c.doc_id for c in chunks} == {"curie", "radium"}
    assert vectors.shape == (len(chunks), encoder.dim)

    (ctx,) = late_contexts(units[0], chunks, docs, "unit")
    assert ctx.text == "Marie Curie\n" + docs["curie"].text + "\n\nMarie Curie\n" + docs["radium"].text
    assert list(ctx.chunk_rows) == list(range(len(chunks)))
    emb = encoder.token_embeddings([ctx.text])[0]
    for row, (start, end) in zip(ctx.chunk_rows, ctx.ranges):
        chunk = chunks[row]
        assert ctx.text[start:end] == docs[chunk.doc_id].text[chunk.start : chunk.end]
        inside = (emb.offsets[:, 0] >= start) & (emb.offsets[:, 0] < end)
        assert inside.any()
        expected = normalised(emb.vectors[inside].mean(axis=0))
        assert np.allclose(vectors[row], expected, atol=1e-5)


def test_embed_equals_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    from lcrag.retrievers.encoders.encoder import resolve_model_path

    texts = [SHORT, "Who discovered radium?", LONG_SENTENCES[0], "x", LONG]
    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    expected = model.encode(texts, normalize_embeddings=True)
    got = encoder.embed(texts)
    assert got.shape == expected.shape
    assert np.allclose(got, expected, atol=1e-5)
    assert encoder.embed([]).shape == (0, encoder.dim)


def test_late_chunk_vectors_differ_from_naive(encoder):
    from lcrag.core.types import Document
    from lcrag.pipeline.ingest.embedding import embed_units
    from lcrag.pipeline.ingest.units import build_units

    doc = Document("curie", LONG, title="Marie Curie")
    offsets = encoder.token_offsets([doc.text])
    units = build_units([doc], offsets, [2], 512, "none")
    docs, offs = {"curie": doc}, {"curie": offsets[0]}
    config = dict(target_tokens=40)
    late_chunks, late = embed_units(units, docs, offs, encoder, ChunkConfig(method="late", **config))
    naive_chunks, naive = embed_units(units, docs, offs, encoder, ChunkConfig(method="naive", **config))
    assert late_chunks == naive_chunks and len(late_chunks) >= 2
    # naive vectors are each chunk encoded alone
    assert np.allclose(naive, encoder.embed([LONG[c.start : c.end] for c in naive_chunks]), atol=1e-6)
    assert np.allclose(np.linalg.norm(late, axis=1), 1.0, atol=1e-5)
    for a, b in zip(late, naive):
        assert float(a @ b) < 0.99  # context changes the vector
        assert float(a @ b) > 0.3  # but it is still about the same text


def test_a_cold_encoder_used_by_many_threads_at_once_loads_once(encoder):
    """API request threads can be the first users of a generation's encoder."""
    from concurrent.futures import ThreadPoolExecutor

    from lcrag.retrievers.encoders.encoder import TransformerEncoder

    cold = TransformerEncoder(EncoderConfig())
    loads = []
    real_load = cold._load
    cold._load = lambda: (loads.append(1), real_load())[1]
    texts = ["purring cats", "lava flows bury towns", "kittens learn to hunt", "magma"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        vectors = list(pool.map(lambda t: cold.embed([t])[0], texts))
    assert len(loads) == 1
    np.testing.assert_allclose(np.stack(vectors), encoder.embed(texts), atol=1e-5)


def test_embed_equals_sentence_transformers_past_max_seq_length(encoder):
    """sentence-transformers truncates at the model's max_seq_length (256 here), not the window."""
    from sentence_transformers import SentenceTransformer

    from lcrag.retrievers.encoders.encoder import resolve_model_path

    longer = " ".join([LONG] * 4)
    assert 256 < len(ids_of(encoder, longer)) < encoder.window
    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    assert np.allclose(encoder.embed([longer]), model.encode([longer], normalize_embeddings=True), atol=1e-5)


def test_prefixed_embed_equals_sentence_transformers_prompts():
    from sentence_transformers import SentenceTransformer

    from lcrag.retrievers.encoders.encoder import TransformerEncoder, resolve_model_path

    query, document = "search_query: ", "search_document: "
    prefixed = TransformerEncoder(EncoderConfig(query_prefix=query, document_prefix=document)).warm_up()
    texts = [SHORT, "Who discovered radium?", LONG]
    model = SentenceTransformer(str(resolve_model_path("all-MiniLM-L6-v2")), device="cpu")
    assert np.allclose(prefixed.embed(texts), model.encode(texts, prompt=query, normalize_embeddings=True), atol=1e-5)
    assert np.allclose(
        prefixed.embed_documents(texts), model.encode(texts, prompt=document, normalize_embeddings=True), atol=1e-5
    )
