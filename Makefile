# comfy-papa: the README's commands.
PY := .host/venv/bin/python
PORT ?= 8188
HOST_STAMP := .host/venv/.papa-stamp

.PHONY: host demo test lint format bench clean-host

host:
	@bash scripts/provision_host.sh

demo: host
	@bash scripts/demo.sh $(PORT)

lint: host
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: host
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: host
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest tests -q -rs --durations=15

bench: host
	$(PY) -m bench.finetune_speed
	$(PY) -m bench.learning_margin
	$(PY) -m bench.digits --jobs 2
	$(PY) -m bench.digits --backend diffusers --jobs 2

clean-host:
	rm -rf .host
