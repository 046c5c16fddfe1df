"""Config: YAML files load, unknown keys and bad values are rejected by name,
and the index fingerprint tracks exactly the settings that shape an index."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from lcrag.pipeline.config import (
    ChunkConfig,
    Config,
    ConfigError,
    EncoderConfig,
    RetrievalConfig,
    UnitConfig,
    config_from_dict,
    load_config,
)
from lcrag.readers.config import ReaderConfig, choose_reader

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"

# Every section Config declares, read from the dataclass itself so a new section
# is covered (and must appear in configs/default.yaml) without editing this file.
SECTION_CLASSES = {f.name: f.default_factory for f in dataclasses.fields(Config)}


def write_yaml(tmp_path: Path, data, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_default_yaml_equals_defaults():
    assert config_from_dict(yaml.safe_load((CONFIGS / "default.yaml").read_text())) == Config()
    assert load_config(CONFIGS / "default.yaml") == load_config(None) == Config()  # loading probes nothing


@pytest.mark.parametrize("flags, converted, chosen", [
    ({"avx2", "avx512_bf16"}, {"qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"}, "qwen2.5-coder-1.5b-instruct"),
    ({"avx2", "amx_bf16"}, {"qwen2.5-coder-1.5b-instruct"}, "qwen2.5-coder-1.5b-instruct"),
    ({"avx2"}, {"qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"}, "qwen2.5-coder-0.5b-instruct"),
    ({"avx512_bf16"}, {"qwen2.5-coder-0.5b-instruct"}, "qwen2.5-coder-0.5b-instruct"),  # 1.5B not converted
])
def test_auto_reader_is_the_15b_only_with_native_bfloat16_and_its_weights(flags, converted, chosen):
    assert choose_reader(frozenset(flags), converted.__contains__) == chosen


def test_resolved_reader_fills_the_model_folder_and_keeps_a_named_model(tmp_path):
    (tmp_path / "models" / "qwen2.5-coder-1.5b-instruct").mkdir(parents=True)
    (tmp_path / "models" / "qwen2.5-coder-1.5b-instruct" / "config.json").write_text("{}")
    auto = ReaderConfig().resolved(tmp_path, frozenset({"avx512_bf16"}))
    assert (auto.model, auto.model_dir) == ("qwen2.5-coder-1.5b-instruct", "models/qwen2.5-coder-1.5b-instruct")
    named = ReaderConfig(model="smollm2-135m-instruct").resolved(tmp_path, frozenset({"avx512_bf16"}))
    assert (named.model, named.model_dir) == ("smollm2-135m-instruct", "models/smollm2-135m-instruct")


def test_default_yaml_spells_out_every_key():
    data = yaml.safe_load((CONFIGS / "default.yaml").read_text(encoding="utf-8"))
    assert set(data) == set(SECTION_CLASSES)
    for section, cls in SECTION_CLASSES.items():
        assert set(data[section]) == {f.name for f in dataclasses.fields(cls)}, section


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.yaml")) + sorted(CONFIGS.rglob("*.yml")), ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    assert isinstance(load_config(path), Config)


def test_none_path_and_empty_file_give_defaults(tmp_path):
    assert load_config(None) == Config() and load_config(None).reader.model == "auto"  # made concrete where served
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert load_config(empty) == load_config(None)


def test_partial_config_overrides_only_given_keys(tmp_path):
    cfg = load_config(write_yaml(tmp_path, {"units": {"max_tokens": 1024}, "retrieval": {"mode": "bm25"}}))
    assert cfg.units == UnitConfig(max_tokens=1024)
    assert cfg.retrieval == RetrievalConfig(mode="bm25")
    assert cfg.encoder == EncoderConfig() and cfg.chunking == ChunkConfig()


def test_unknown_top_level_key_is_named_with_valid_keys(tmp_path):
    path = write_yaml(tmp_path, {"unitz": {"max_tokens": 100}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "unitz" in message
    assert str(path) in message
    for section in SECTION_CLASSES:
        assert section in message


@pytest.mark.parametrize("section", sorted(SECTION_CLASSES))
def test_unknown_key_inside_section_is_named_with_valid_keys(section):
    with pytest.raises(ConfigError) as err:
        config_from_dict({section: {"no_such_key": 1}})
    message = str(err.value)
    assert f"{section}.no_such_key" in message
    for field in dataclasses.fields(SECTION_CLASSES[section]):
        assert field.name in message


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("units", "max_tokens", 0),
        ("units", "max_tokens", 31),
        ("units", "group_by", "chapters"),
        ("units", "group_by", "meta:"),
        ("units", "neighbours", 0),
        ("chunking", "method", "fancy"),
        ("chunking", "context", "page"),
        ("chunking", "target_tokens", 7),
        ("retrieval", "mode", "x"),
        ("retrieval", "rrf_k", 0),
        ("retrieval", "fusion", "rank"),
        ("retrieval", "candidates", 0),
        ("encoder", "window", 15),
        ("encoder", "window_overlap", 510),  # window - 2 for the default window 512
        ("encoder", "window_overlap", 600),
        ("encoder", "window_overlap", -1),
        ("encoder", "batch_tokens", 511),
        ("encoder", "threads", -1),
        ("encoder", "model", ""),
        ("bm25", "k1", -0.1),
        ("bm25", "b", 1.5),
        ("bm25", "epsilon", -1),
        ("store", "qdrant_url", "ftp://x"),
        ("store", "collection", ""),
        ("ingest", "commit_tokens", 0),
    ],
)
def test_invalid_values_raise_naming_the_key(section, key, value):
    with pytest.raises(ConfigError) as err:
        config_from_dict({section: {key: value}})
    assert f"{section}.{key}" in str(err.value)


@pytest.mark.parametrize(
    "section, values",
    [
        ("encoder", {"window": 64, "window_overlap": 61, "batch_tokens": 64}),  # overlap == window - 3: the largest valid
        ("units", {"group_by": "meta:lang"}),
        ("store", {"qdrant_url": "https://q.example:6333"}),
        ("bm25", {"k1": 0, "b": 0, "epsilon": 0}),
    ],
)
def test_boundary_values_are_accepted(section, values):
    cfg = config_from_dict({section: values})
    for key, value in values.items():
        assert getattr(getattr(cfg, section), key) == value


def test_window_overlap_at_window_minus_two_is_rejected():
    with pytest.raises(ConfigError, match="window_overlap"):
        EncoderConfig(window=64, window_overlap=62, batch_tokens=64)


def test_invalid_value_in_file_names_file_and_key(tmp_path):
    path = write_yaml(tmp_path, {"chunking": {"method": "fancy"}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value) and "chunking.method" in str(err.value)


@pytest.mark.parametrize("data", [[1, 2], {"units": 5}, {"units": "big"}])
def test_non_mapping_raises_config_error(data):
    with pytest.raises(ConfigError, match="mapping"):
        config_from_dict(data)


def test_wrong_type_value_names_the_key():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"units": {"max_tokens": "big"}})
    assert "max_tokens" in str(err.value)


def test_wrong_type_value_still_raises_config_error():
    with pytest.raises(ConfigError, match="units"):
        config_from_dict({"units": {"max_tokens": "big"}})


def test_missing_config_file_gives_clear_error(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as err:
        load_config(missing)
    assert str(missing) in str(err.value)
    assert "does not exist" in str(err.value)


def test_invalid_yaml_gives_config_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("units: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


@pytest.mark.parametrize(
    "changes",
    [
        {"chunking": {"method": "naive"}},
        {"chunking": {"context": "unit"}},
        {"chunking": {"target_tokens": 100}},
        {"units": {"max_tokens": 2048}},
        {"units": {"group_by": "title"}},
        {"encoder": {"window": 256, "window_overlap": 64}},
        {"encoder": {"window_overlap": 64}},
        {"bm25": {"k1": 1.2}},
        {"bm25": {"stem": False}},
    ],
)
def test_fingerprint_changes_with_index_shaping_settings(changes):
    assert config_from_dict(changes).index_fingerprint() != Config().index_fingerprint()


@pytest.mark.parametrize(
    "changes",
    [
        {"retrieval": {"rrf_k": 10}},
        {"retrieval": {"mode": "dense", "candidates": 50, "dense_weight": 2.0}},
        {"ingest": {"commit_tokens": 1024}},
        {"encoder": {"batch_tokens": 4096, "threads": 2}},
        {"store": {"qdrant_url": "http://localhost:6333", "collection": "other"}},
    ],
)
def test_fingerprint_ignores_search_and_runtime_settings(changes):
    assert config_from_dict(changes).index_fingerprint() == Config().index_fingerprint()


def test_fingerprint_is_deterministic():
    assert Config().index_fingerprint() == Config().index_fingerprint()
    assert load_config(CONFIGS / "default.yaml").index_fingerprint() == Config().index_fingerprint()


def test_encoder_prefixes_shape_the_index_fingerprint_only_when_set():
    import dataclasses
    import hashlib

    plain = Config()
    shaping = {
        "encoder": {"model": plain.encoder.model, "window": plain.encoder.window, "window_overlap": plain.encoder.window_overlap},
        "units": dataclasses.asdict(plain.units),
        "chunking": dataclasses.asdict(plain.chunking),
        "bm25": dataclasses.asdict(plain.bm25),
    }
    # an index built before prefixes existed keeps its fingerprint
    assert plain.index_fingerprint() == hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]
    prefixed = config_from_dict({"encoder": {"document_prefix": "search_document: "}})
    queried = config_from_dict({"encoder": {"query_prefix": "search_query: "}})
    assert len({plain.index_fingerprint(), prefixed.index_fingerprint(), queried.index_fingerprint()}) == 3
