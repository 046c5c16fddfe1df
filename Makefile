# Two commands do everything on a fresh machine:
#   make demo   install, then run the main job (fetch data, ingest, search)
#   make test   install, then run the whole test suite
export HF_HUB_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test bench

setup: .venv/.lcrag-installed

.venv/.lcrag-installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh
	touch $@

demo: setup
	bash scripts/demo.sh

test: setup
	.venv/bin/python -m pytest -q

bench: setup
	.venv/bin/python bench/scifact_retrieval.py

.PHONY: reader-setup
reader-setup:
	bash scripts/setup_reader.sh
