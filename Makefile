# Thin wrapper over scripts/. `make demo` and `make test` set everything up themselves.
.PHONY: setup models demo demo-loop test test-fast soak lint proto docs bench bench-offload bench-peers images clean

setup:
	scripts/bootstrap

models: setup

demo: setup
	scripts/demo

# Joint inference and the incremental-learning loop: cycles of hard examples, retrain, canary.
demo-loop: setup
	scripts/demo-loop

test: setup
	scripts/test

# The unit tier alone: no broker, no model file, no edgecore; seconds, after a Python-only setup.
test-fast:
	scripts/bootstrap --python-only
	scripts/test tests/unit

# The long fault, delivery and fuzzing runs, with the table of figures the README shows.
soak: setup
	scripts/soak

lint: setup
	scripts/check

proto: setup
	scripts/gen-proto

# docs/configuration.md and docs/metrics.md from the runtime's declarations (a test checks them).
docs: setup
	.venv/bin/python scripts/gen_docs.py

bench: setup
	.venv/bin/python -m bench

# Joint inference: accuracy against offload rate per policy, the edge's p99 per cloud state.
bench-offload: setup
	.venv/bin/python -m bench.offload

# MLServer and PyTriton in their own environments (.state/peers) for make bench's comparison.
bench-peers: setup
	scripts/bench-peers

# Multi-arch images: docker buildx, or buildah without a daemon (see scripts/images).
images:
	scripts/images

clean:
	rm -rf .venv models .state .mypy_cache .ruff_cache .pytest_cache demo-output
