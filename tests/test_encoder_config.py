"""The encoder follows its model folder: pooling, length and normalisation from the
sentence-transformers modules, special tokens from the tokenizer, prefixes from the
config; late chunking refuses a model that does not mean-pool."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lcrag.pipeline.config import ChunkConfig, EncoderConfig
from lcrag.retrievers.encoders.encoder import (
    EncoderError,
    ModelProfile,
    SpecialTokens,
    TransformerEncoder,
    read_profile,
    resolve_model_path,
    special_tokens,
)

MINILM = "all-MiniLM-L6-v2"
TRANSFORMER = {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}
POOLING = {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}
NORMALIZE = {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}
DENSE = {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"}
CUSTOM = {"idx": 2, "name": "2", "path": "", "type": "my_package.MyPooling"}


def flags(**on: bool) -> dict:
    """A 1_Pooling/config.json in the legacy boolean form most published models use."""
    keys = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens")
    return {"word_embedding_dimension": 384, **{f"pooling_mode_{k}": on.get(k, False) for k in keys}}


def model_folder(root: Path, modules: list[dict] | None, pooling: dict | None = None, max_seq_length: int | None = 256) -> Path:
    """A model folder's sentence-transformers files (no weights: read_profile needs none)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text("{}", encoding="utf-8")
    if modules is not None:
        (root / "modules.json").write_text(json.dumps(modules), encoding="utf-8")
    if pooling is not None:
        (root / "1_Pooling").mkdir()
        (root / "1_Pooling" / "config.json").write_text(json.dumps(pooling), encoding="utf-8")
    if max_seq_length is not None:
        (root / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}), encoding="utf-8")
    return root


# -- pooling configuration ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "modules, pooling, expected",
    [
        ([TRANSFORMER, POOLING, NORMALIZE], flags(mean_tokens=True), ModelProfile(("mean",), True, True, 256, True)),
        ([TRANSFORMER, POOLING, NORMALIZE], flags(cls_token=True), ModelProfile(("cls",), True, True, 256, True)),
        ([TRANSFORMER, POOLING], flags(max_tokens=True), ModelProfile(("max",), True, False, 256, True)),
        ([TRANSFORMER, POOLING], flags(), ModelProfile(("mean",), True, False, 256, True)),  # no flag set: mean, as in s-t
        ([TRANSFORMER, POOLING], flags(cls_token=True, mean_tokens=True), ModelProfile(("cls", "mean"), True, False, 256, True)),
        (
            [TRANSFORMER, POOLING],
            {"embedding_dimension": 384, "pooling_mode": "lasttoken"},
            ModelProfile(("lasttoken",), True, False, 256, True),
        ),
        (
            [TRANSFORMER, POOLING],
            {"pooling_mode": "mean", "include_prompt": False},
            ModelProfile(("mean",), False, False, 256, True),
        ),
        ([TRANSFORMER, POOLING], None, ModelProfile(("mean",), True, False, 256, True)),  # Pooling listed, config missing
        ([TRANSFORMER], None, ModelProfile(("mean",), True, False, 256, True)),  # no Pooling module
        (None, None, ModelProfile()),  # a plain transformers folder: mean pooling assumed, as s-t does
    ],
    ids=[
        "mean",
        "cls",
        "max-unnormalised",
        "no-flags",
        "cls+mean",
        "new-style-key",
        "exclude-prompt",
        "pooling-config-missing",
        "no-pooling-module",
        "plain-hf-folder",
    ],
)
def test_read_profile_table(tmp_path, modules, pooling, expected):
    assert read_profile(model_folder(tmp_path / "m", modules, pooling)) == expected


def test_plain_folder_default_is_stated_as_assumed():
    assumed = ModelProfile()
    assert assumed.pooling == ("mean",) and not assumed.declared and assumed.max_seq_length is None


def test_read_profile_of_the_shipped_model():
    profile = read_profile(resolve_model_path(MINILM))
    assert profile == ModelProfile(("mean",), True, True, 256, True)
    assert profile.pooling_name == "mean"


@pytest.mark.parametrize(
    "modules, pooling, fragment",
    [
        ([TRANSFORMER, POOLING, DENSE], flags(mean_tokens=True), "Dense"),
        ([TRANSFORMER, POOLING, CUSTOM], flags(mean_tokens=True), "my_package.MyPooling"),
        ([TRANSFORMER, POOLING], {"pooling_mode": "bogus"}, "bogus"),
    ],
    ids=["dense-module", "custom-code", "unknown-mode"],
)
def test_read_profile_refuses_what_lcrag_cannot_reproduce(tmp_path, modules, pooling, fragment):
    with pytest.raises(EncoderError, match="choose") as err:
        read_profile(model_folder(tmp_path / "m", modules, pooling), "my-model")
    assert fragment in str(err.value) and "my-model" in str(err.value)


# -- special tokens -----------------------------------------------------------------------------


class FakeTokenizer:
    """Word ids for a probe text, wrapped as a given tokenizer family wraps it."""

    def __init__(self, head: tuple[int, ...], tail: tuple[int, ...], python: bool, claimed: int | None = None):
        self.head, self.tail, self.claimed = head, tail, claimed
        if python:
            self.build_inputs_with_special_tokens = lambda ids: [*head, *ids, *tail]

    def __call__(self, text: str, add_special_tokens: bool = True):
        ids = [1000 + len(word) for word in text.split()]
        return {"input_ids": [*self.head, *ids, *self.tail] if add_special_tokens else ids}

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return len(self.head) + len(self.tail) if self.claimed is None else self.claimed


@pytest.mark.parametrize(
    "head, tail, python",
    [
        ((0,), (2,), True),  # RoBERTa: <s> ... </s>, python tokenizer
        ((0,), (2,), False),  # the same through a fast tokenizer's post-processor
        ((), (1,), False),  # T5: </s> only
        ((1,), (), True),  # Llama: <s> only
        ((), (), False),  # many decoders: nothing
        ((5, 6), (7,), False),  # two leading specials
    ],
)
def test_special_tokens_come_from_the_tokenizer(head, tail, python):
    found = special_tokens(FakeTokenizer(head, tail, python))
    assert found == SpecialTokens(head, tail)
    assert found.count == len(head) + len(tail)
    assert found.wrap([9, 9]) == [*head, 9, 9, *tail]


def test_special_tokens_disagreeing_with_the_tokenizer_count_are_refused():
    with pytest.raises(EncoderError, match="special tokens"):
        special_tokens(FakeTokenizer((0,), (2,), True, claimed=3))


def test_special_tokens_of_the_shipped_tokenizer(encoder):
    tok = encoder.tokenizer
    assert special_tokens(tok) == SpecialTokens((tok.cls_token_id,), (tok.sep_token_id,))
    assert encoder.specials == SpecialTokens((tok.cls_token_id,), (tok.sep_token_id,))


def raw_hidden(enc, ids: list[int]) -> np.ndarray:
    import torch

    tensor = torch.tensor([ids], dtype=torch.long)
    with torch.inference_mode():
        return enc._model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).last_hidden_state[0].numpy()


def test_windows_use_the_encoders_special_tokens_not_cls_and_sep():
    """With a tokenizer that only prepends one token, windows hold no trailing token
    and one more text token each."""
    enc = TransformerEncoder(EncoderConfig(window=32, window_overlap=8, batch_tokens=32)).warm_up()
    cls = enc.tokenizer.cls_token_id
    enc.specials = SpecialTokens((cls,), ())
    text = "Marie Curie discovered polonium and radium. " * 8
    ids = enc.tokenizer(text, add_special_tokens=False)["input_ids"]
    vectors = enc.token_embeddings([text])[0].vectors
    assert vectors.shape[0] == len(ids)
    assert np.allclose(vectors[:31], raw_hidden(enc, [cls, *ids[:31]])[1:], atol=1e-4)  # 31 = 32 - one special


# -- late chunking needs mean pooling -------------------------------------------------------------


def pooled_copy(tmp_path: Path, pooling: dict) -> Path:
    """The shipped model with another 1_Pooling/config.json (weights linked, not copied)."""
    src = resolve_model_path(MINILM)
    folder = tmp_path / "minilm-variant"
    shutil.copytree(src, folder, ignore=shutil.ignore_patterns("model.safetensors", "1_Pooling"))
    (folder / "model.safetensors").symlink_to(src / "model.safetensors")
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def cls_encoder(tmp_path_factory):
    folder = pooled_copy(tmp_path_factory.mktemp("cls"), flags(cls_token=True))
    return TransformerEncoder(EncoderConfig(model=str(folder))).warm_up()


def one_unit(encoder):
    from lcrag.core.types import Document
    from lcrag.pipeline.ingest.units import build_units

    doc = Document("curie", "Marie Curie was a physicist. She discovered radium. She won two Nobel Prizes.", title="Curie")
    offsets = encoder.token_offsets([doc.text])
    units = build_units([doc], offsets, [2], 512, "none")
    return units, {"curie": doc}, {"curie": offsets[0]}


def test_late_chunking_refuses_a_cls_pooled_model(cls_encoder):
    from lcrag.pipeline.ingest.embedding import embed_units

    with pytest.raises(EncoderError) as err:
        cls_encoder.token_embeddings(["any text"])
    message = str(err.value)
    assert "late chunking needs a mean-pooling encoder" in message
    assert cls_encoder.name in message and "pools with cls" in message and "chunking.method: naive" in message
    with pytest.raises(EncoderError, match="mean-pooling"):
        embed_units(*one_unit(cls_encoder), cls_encoder, ChunkConfig(method="late", target_tokens=16))


def test_naive_chunking_with_a_cls_pooled_model_gives_cls_vectors(cls_encoder, encoder):
    from sentence_transformers import SentenceTransformer

    from lcrag.pipeline.ingest.embedding import embed_units

    units, docs, offsets = one_unit(cls_encoder)
    chunks, vectors = embed_units(units, docs, offsets, cls_encoder, ChunkConfig(method="naive", target_tokens=16))
    texts = [docs[c.doc_id].text[c.start : c.end] for c in chunks]
    assert len(texts) >= 2
    expected = SentenceTransformer(cls_encoder.name, device="cpu").encode(texts, normalize_embeddings=True)
    assert np.allclose(vectors, expected, atol=1e-5)
    ids = cls_encoder.tokenizer(texts[0])["input_ids"]  # with special tokens
    assert np.allclose(vectors[0], raw_hidden(cls_encoder, ids)[0] / np.linalg.norm(raw_hidden(cls_encoder, ids)[0]), atol=1e-5)
    assert not np.allclose(vectors, encoder.embed(texts), atol=1e-3)  # not the mean the old encoder made


# -- prefixes -------------------------------------------------------------------------------------

QUERY, DOCUMENT = "search_query: ", "search_document: "


@pytest.fixture(scope="module")
def prefixed():
    return TransformerEncoder(EncoderConfig(query_prefix=QUERY, document_prefix=DOCUMENT)).warm_up()


@pytest.mark.parametrize(
    "method, prefix",
    [("embed", QUERY), ("embed_queries", QUERY), ("embed_documents", DOCUMENT)],
)
def test_prefixes_go_to_queries_and_documents(prefixed, encoder, method, prefix):
    texts = ["Who discovered radium?", "Marie Curie discovered radium."]
    got = getattr(prefixed, method)(texts)
    assert np.allclose(got, encoder.embed([prefix + t for t in texts]), atol=1e-5)
    assert not np.allclose(got, encoder.embed(texts), atol=1e-3)


def test_naive_chunks_get_the_document_prefix(prefixed, encoder):
    from lcrag.pipeline.ingest.embedding import embed_units

    units, docs, offsets = one_unit(prefixed)
    chunks, vectors = embed_units(units, docs, offsets, prefixed, ChunkConfig(method="naive", target_tokens=16))
    texts = [DOCUMENT + docs[c.doc_id].text[c.start : c.end] for c in chunks]
    assert np.allclose(vectors, encoder.embed(texts), atol=1e-5)


def test_late_windows_read_the_document_prefix_but_return_only_text_tokens(prefixed, encoder):
    text = "Marie Curie discovered radium. She won two Nobel Prizes."
    tok = prefixed.tokenizer
    ids = tok(text, add_special_tokens=False)["input_ids"]
    head = tok(DOCUMENT, add_special_tokens=False)["input_ids"]
    emb = prefixed.token_embeddings([text])[0]
    assert np.array_equal(emb.offsets, encoder.token_offsets([text])[0])  # offsets stay in the text's coordinates
    expected = raw_hidden(prefixed, [tok.cls_token_id, *head, *ids, tok.sep_token_id])[1 + len(head) : -1]
    assert np.allclose(emb.vectors, expected, atol=1e-4)
    assert not np.allclose(emb.vectors, encoder.token_embeddings([text])[0].vectors, atol=1e-3)


def test_document_prefix_shortens_window_content(prefixed):
    head = len(prefixed.tokenizer(DOCUMENT, add_special_tokens=False)["input_ids"])
    assert prefixed._window_content() == 512 - 2 - head


def test_a_prefix_that_leaves_no_room_is_refused():
    enc = TransformerEncoder(EncoderConfig(window=16, window_overlap=12, batch_tokens=16, document_prefix=DOCUMENT)).warm_up()
    with pytest.raises(EncoderError, match="shorten the prefix"):
        enc.token_embeddings(["some text"])


def test_excluded_prompt_is_left_out_of_the_pooled_vector(tmp_path):
    from sentence_transformers import SentenceTransformer

    folder = pooled_copy(tmp_path, {"embedding_dimension": 384, "pooling_mode": "mean", "include_prompt": False})
    enc = TransformerEncoder(EncoderConfig(model=str(folder), query_prefix=QUERY)).warm_up()
    texts = ["Who discovered radium?", "lava"]
    expected = SentenceTransformer(str(folder), device="cpu").encode(texts, prompt=QUERY, normalize_embeddings=True)
    assert np.allclose(enc.embed(texts), expected, atol=1e-5)


@pytest.mark.parametrize("key, value", [("query_prefix", None), ("document_prefix", 3), ("query_prefix", "x" * 201)])
def test_prefix_config_is_validated(key, value):
    from lcrag.core.errors import ConfigError

    with pytest.raises(ConfigError, match=f"encoder.{key}"):
        EncoderConfig(**{key: value})


def test_importing_the_encoder_leaves_the_environment_alone():
    import subprocess
    import sys

    script = (
        "import os; before = dict(os.environ); import lcrag.retrievers.encoders.encoder; "
        "changed = sorted(set(os.environ.items()) ^ set(before.items())); assert not changed, changed"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
