"""Plugins: every pluggable role is an entry point group (``lcrag.core.plugins``), lcrag's
own built-ins registered in its pyproject exactly as a plugin's are.

(a) The registry contract, for every group, against a stand-in for the installed
    metadata: the built-ins are there, loaded once; a name claimed twice, an object of
    the wrong kind and an entry point that fails to load are refused naming it; a
    plugin's name is a valid config value and the config's error lists it.
(b) A real plugin: tests/plugin_example, its own distribution with the first-passage
    strategy, pip-installed into this venv for the module and uninstalled after, then
    used by ``lcrag ask``, ``lcrag eval`` and ``lcrag report``.
(c) ``lcrag.testing``: importable, with the fake reader and the contract mixins, and
    shipped in the wheel.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lcrag.core import plugins
from lcrag.core.errors import ConfigError
from lcrag.core.plugins import PluginError
from lcrag.pipeline.strategies.registry import strategy_classes
from lcrag.readers.registry import reader_backends
from lcrag.retrievers.registry import encoder_models, store_backends

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugin_example"
EXAMPLE_DIST = "lcrag-plugin-example"

BUILTINS = {
    "lcrag.strategies": {"rag", "longrag", "lc", "reorder", "op-rag", "attention-sort", "self-route", "auto", "coa",
                         "closed-book", "oracle"},
    "lcrag.readers": {"vllm", "fake"},
    "lcrag.stores": {"qdrant-local", "qdrant-server", "qdrant-edge"},
    "lcrag.encoders": {"all-MiniLM-L6-v2", "nomic-embed-text-v1.5"},
}
LOADERS = {
    "lcrag.strategies": strategy_classes,
    "lcrag.readers": reader_backends,
    "lcrag.stores": store_backends,
    "lcrag.encoders": encoder_models,
}
GROUPS = list(BUILTINS)


@pytest.fixture(autouse=True)
def fresh_registries():
    plugins.clear_cache()
    yield
    plugins.clear_cache()


@pytest.fixture
def metadata(monkeypatch):
    """Stands in for the installed metadata: ``add(group, name, value)`` lists one more
    entry point (of no distribution) after the installed ones; ``calls`` counts reads."""
    real = importlib.metadata.entry_points
    added: list[EntryPoint] = []
    calls: list[str] = []

    def entry_points(**params):
        calls.append(params.get("group"))
        return [*real(**params), *(ep for ep in added if ep.group == params.get("group"))]

    def add(group: str, name: str, value: str) -> None:
        added.append(EntryPoint(name, value, group))
        plugins.clear_cache()

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    add.calls = calls
    return add


# ------------------------------------------------------------------ (a) the registry contract


@pytest.mark.parametrize("group", GROUPS)
def test_the_built_ins_are_lcrag_s_own_entry_points(group):
    ours = {ep.name for ep in importlib.metadata.entry_points(group=group) if ep.dist is not None and ep.dist.name == "lcrag"}
    assert ours == BUILTINS[group]  # registered in pyproject, nowhere else
    loaded = LOADERS[group]()
    assert BUILTINS[group] <= set(loaded)
    assert all(callable(obj) for obj in loaded.values())


@pytest.mark.parametrize("group", GROUPS)
def test_a_group_is_read_once_and_kept(group, metadata):
    first = LOADERS[group]()
    second = LOADERS[group]()
    assert metadata.calls.count(group) == 1 and first == second
    second.clear()  # a caller's copy: the registry is untouched
    assert set(LOADERS[group]()) == set(first)
    plugins.clear_cache(group)
    LOADERS[group]()
    assert metadata.calls.count(group) == 2


@pytest.mark.parametrize("group", GROUPS)
def test_a_name_claimed_twice_is_refused(group, metadata):
    builtin = next(ep for ep in importlib.metadata.entry_points(group=group) if ep.name in BUILTINS[group])
    metadata(group, builtin.name, builtin.value)
    with pytest.raises(PluginError, match=rf"two .* plugins are named '{builtin.name}'.*uninstall one"):
        LOADERS[group]()


@pytest.mark.parametrize("group", GROUPS)
def test_an_entry_point_that_does_not_import_is_named(group, metadata):
    metadata(group, "broken-plugin", "lcrag_no_such_plugin_module:Thing")
    with pytest.raises(PluginError) as err:
        LOADERS[group]()
    message = str(err.value)
    assert "'broken-plugin'" in message and "lcrag_no_such_plugin_module:Thing" in message and "failed to load" in message
    assert isinstance(err.value.__cause__, ImportError)


@pytest.mark.parametrize("group", GROUPS)
def test_a_plugin_that_raises_on_import_is_named(group, metadata, monkeypatch, tmp_path):
    (tmp_path / "lcrag_exploding_plugin.py").write_text("raise RuntimeError('boom at import')\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lcrag_exploding_plugin", raising=False)
    metadata(group, "exploding", "lcrag_exploding_plugin:thing")
    with pytest.raises(PluginError, match=r"plugin 'exploding' \(lcrag_exploding_plugin:thing.*RuntimeError: boom at import"):
        LOADERS[group]()


@pytest.mark.parametrize("group", GROUPS)
def test_an_object_of_the_wrong_kind_is_refused(group, metadata):
    metadata(group, "not-a-plugin", "lcrag.core.plugins:BUILTIN")  # a string
    with pytest.raises(PluginError, match=r"plugin 'not-a-plugin' \(lcrag.core.plugins:BUILTIN.*\) must name"):
        LOADERS[group]()


@pytest.mark.parametrize("group", GROUPS)
def test_missing_built_ins_mean_stale_metadata(group, monkeypatch):
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **params: [ep for ep in real(**params) if ep.dist is None or ep.dist.name != "lcrag"])
    with pytest.raises(PluginError, match=rf"missing from the group '{group}'.*reinstall"):
        LOADERS[group]()


def test_a_strategy_entry_point_must_carry_its_own_name(metadata):
    metadata("lcrag.strategies", "renamed", "lcrag.pipeline.strategies.retrieval:RagStrategy")
    with pytest.raises(PluginError, match=r"must name a class with name = 'renamed'"):
        strategy_classes()


def test_config_choices_come_from_the_registries():
    from lcrag.pipeline.config import config_from_dict

    for section, key, bad, group in [("reader", "backend", "llamacpp", "lcrag.readers"),
                                     ("store", "backend", "faiss", "lcrag.stores")]:
        with pytest.raises(ConfigError) as err:
            config_from_dict({section: {key: bad}})
        message = str(err.value)
        assert f"{section}.{key} must be one of " in message and repr(bad) in message
        assert all(name in message for name in LOADERS[group]())
    with pytest.raises(ConfigError) as err:
        config_from_dict({"encoder": {"model": ""}})
    assert "encoder.model must name a model (one of " in str(err.value)
    assert all(name in str(err.value) for name in encoder_models())
    # the defaults stand; encoder.model may be any name or folder until the encoder loads
    # (a config travels with its index; bench/scale.py hands in a stand-in encoder by name)
    config = config_from_dict({"encoder": {"model": "bench-scale-fake"}})
    assert (config.reader.backend, config.store.backend, config.encoder.model) == ("vllm", "qdrant-edge", "bench-scale-fake")


def test_a_plugin_reader_backend_is_a_valid_config_value_and_builds_the_reader(metadata, tmp_path):
    from lcrag.readers import make_reader
    from lcrag.readers.config import ReaderConfig
    from lcrag.testing import FakeReader

    metadata("lcrag.readers", "echo", "lcrag.readers.fake:FakeReader.from_config")
    assert isinstance(make_reader(ReaderConfig(backend="echo"), tmp_path), FakeReader)
    with pytest.raises(ConfigError, match=r"reader.backend must be one of .*echo.*got 'nope'"):
        ReaderConfig(backend="nope")


def test_a_plugin_store_backend_is_opened_by_open_store(metadata, tmp_path):
    from lcrag.retrievers.config import StoreConfig
    from lcrag.retrievers.stores import open_store

    metadata("lcrag.stores", "local-again", "lcrag.retrievers.stores.openers:qdrant_client_store")
    store = open_store(StoreConfig(backend="local-again"), tmp_path / "vectors")
    try:
        assert store.count() == 0
    finally:
        store.close()
    with pytest.raises(ConfigError, match=r"store.backend must be one of .*local-again.*got 'nope'"):
        StoreConfig(backend="nope")


def test_a_plugin_encoder_name_resolves_through_its_locator(metadata):
    from lcrag.retrievers.config import EncoderConfig
    from lcrag.retrievers.encoders.encoder import EncoderError, resolve_model_path

    metadata("lcrag.encoders", "minilm-alias", "lcrag.retrievers.encoders.encoder:minilm_path")
    assert resolve_model_path("minilm-alias") == resolve_model_path("all-MiniLM-L6-v2")
    with pytest.raises(EncoderError, match=r"unknown encoder 'nope': use one of .*minilm-alias.* or a local folder"):
        resolve_model_path("nope")
    with pytest.raises(ConfigError, match=r"encoder.model must name a model \(one of .*minilm-alias"):
        EncoderConfig(model="")


def test_the_registries_load_lazily():
    """Importing a registry (or the config that validates against it) imports no plugin module."""
    probe = ("import sys, lcrag.core.plugins, lcrag.readers.registry, lcrag.retrievers.registry, "
             "lcrag.pipeline.strategies.registry, lcrag.readers.config, lcrag.retrievers.config, lcrag.retrievers.stores; "
             "print(sorted(m for m in sys.modules if m in {'lcrag.readers.fake', 'lcrag.readers.vllm', "
             "'lcrag.retrievers.stores.openers', 'lcrag.retrievers.stores.edge', 'lcrag.retrievers.stores.qdrant', "
             "'lcrag.retrievers.encoders.encoder', 'lcrag.pipeline.strategies.retrieval', 'lcrag.pipeline.routing.strategies'}))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ (b) a real plugin, installed


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def example_plugin():
    """tests/plugin_example pip-installed (editable) into this venv while this module runs,
    uninstalled after. This process did not start with its .pth, so it is read now, as
    interpreter start-up would; the registry caches are cleared both ways."""
    egg_info = EXAMPLE / "lcrag_plugin_example.egg-info"
    had_egg_info = egg_info.exists()
    saved_path, saved_meta_path = list(sys.path), list(sys.meta_path)
    result = _pip("install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", str(EXAMPLE))
    assert result.returncode == 0, result.stdout + result.stderr
    try:
        purelib = Path(sysconfig.get_paths()["purelib"])
        for pth in purelib.glob("__editable__*lcrag_plugin_example*.pth"):
            site.addpackage(str(purelib), pth.name, None)
        importlib.invalidate_caches()
        plugins.clear_cache()
        yield
    finally:
        result = _pip("uninstall", "-y", EXAMPLE_DIST)
        sys.path[:], sys.meta_path[:] = saved_path, saved_meta_path
        for name in [m for m in sys.modules if m == "lcrag_plugin_example" or m.startswith("lcrag_plugin_example.")]:
            del sys.modules[name]
        if not had_egg_info:
            shutil.rmtree(egg_info, ignore_errors=True)
        shutil.rmtree(EXAMPLE / "build", ignore_errors=True)
        importlib.invalidate_caches()
        plugins.clear_cache()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def plugin_index(tmp_path_factory, encoder) -> Path:
    from tests.service_support import build_index

    return build_index(tmp_path_factory.mktemp("plugin-index"), encoder)


@pytest.fixture
def fake_config(tmp_path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"reader": {"backend": "fake"}}), encoding="utf-8")
    return path


def test_an_installed_plugin_joins_the_registry(example_plugin):
    classes = strategy_classes()
    assert list(classes)[-1] == "first-passage"  # no rank: after the built-ins
    assert classes["first-passage"].__module__ == "lcrag_plugin_example"
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="lcrag.strategies") if ep.name == "first-passage"]
    assert ep.dist.name == EXAMPLE_DIST
    # a fresh interpreter finds it the way every lcrag command does
    probe = "import json; from lcrag.pipeline.strategies import ALL; print(json.dumps(ALL))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "first-passage" in json.loads(result.stdout)


def test_ask_answers_with_the_plugin_strategy(example_plugin, plugin_index, fake_config, tmp_path):
    from lcrag.app.cli.app import app
    from lcrag.pipeline.ledger import Ledger

    ledger = tmp_path / "ledger.duckdb"
    result = CliRunner().invoke(app, ["ask", "Why do cats purr?", "--index", str(plugin_index), "--strategy", "rag,first-passage",
                                      "--config", str(fake_config), "--ledger", str(ledger), "--run-id", "ask", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row.strategy: row for row in Ledger(ledger).rows("ask")}
    assert set(rows) == {"rag", "first-passage"}
    first, rag = rows["first-passage"], rows["rag"]
    assert first.route == "first-passage" and first.answer
    assert first.used_ids == first.retrieved_ids[:1] == rag.used_ids[:1]  # the top-ranked chunk alone
    assert len(rag.used_ids) > 1 and first.context_tokens < rag.context_tokens


def test_eval_and_report_carry_the_plugin_strategy(example_plugin, plugin_index, fake_config, tmp_path):
    from lcrag.app.cli.app import app
    from lcrag.pipeline.ledger import Ledger

    questions = ["Why do cats purr?", "Which volcano in Sicily is active?", "What replaces commercial yeast?"]
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answers": ["x"]}) + "\n" for i, q in enumerate(questions)),
                    encoding="utf-8")
    ledger = tmp_path / "ledger.duckdb"
    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--dataset", f"qa-jsonl:{data}", "--index", str(plugin_index),
                                 "--strategies", "rag,first-passage", "--run-id", "ev", "--config", str(fake_config),
                                 "--ledger", str(ledger), "--work", str(tmp_path / "work")])
    assert result.exit_code == 0, result.output
    assert "strategy=first-passage" in result.output
    rows = Ledger(ledger).rows("ev")
    assert sorted(r.strategy for r in rows) == ["first-passage"] * 3 + ["rag"] * 3
    assert all(len(r.used_ids) == 1 for r in rows if r.strategy == "first-passage")

    out = tmp_path / "report"
    result = runner.invoke(app, ["report", "--out", str(out), "--ledger", str(ledger), "--run-id", "ev"])
    assert result.exit_code == 0, result.output
    assert "first-passage" in (out / "report.md").read_text(encoding="utf-8")
    assert "first-passage" in (out / "report.html").read_text(encoding="utf-8")


# ------------------------------------------------------------------ (c) lcrag.testing


def test_lcrag_testing_ships_the_fake_reader_and_the_contracts():
    import lcrag.testing
    from lcrag.readers.fake import FakeReader
    from lcrag.testing.contracts import ReaderContract, RetrieverContract, VectorStoreContract

    assert lcrag.testing.FakeReader is FakeReader  # the runtime's fake backend, one class
    for mixin in (ReaderContract, RetrieverContract, VectorStoreContract):
        assert getattr(lcrag.testing, mixin.__name__) is mixin
        assert any(name.startswith("test_") for name in vars(mixin))
        assert not mixin.__name__.startswith("Test")  # a mixin: collected only through a backend's class
    assert reader_backends()["fake"](None, Path(".")).model == FakeReader.model


@pytest.mark.slow
def test_the_wheel_ships_lcrag_testing_and_the_entry_point_groups(tmp_path):
    from tests.test_packaging import copy_sources

    sources = copy_sources(tmp_path / "src")  # a copy: the build writes build/ and *.egg-info where it runs
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                             "-w", str(tmp_path / "dist"), "."], cwd=sources, capture_output=True, text=True, timeout=900,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "dist").glob("lcrag-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        declared = archive.read(entry_points).decode()
    assert {"lcrag/testing/__init__.py", "lcrag/testing/contracts.py"} <= names
    assert not any(n.startswith("lcrag_plugin_example") for n in names)
    for group, names_of_group in BUILTINS.items():
        assert f"[{group}]" in declared
        assert all(f"\n{name} = " in declared for name in names_of_group)
