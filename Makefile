# Thin wrapper over scripts/. `make demo` and `make test` set everything up themselves.
.PHONY: setup models demo test lint proto bench images clean

setup:
	scripts/bootstrap

models: setup

demo: setup
	scripts/demo

test: setup
	scripts/test

lint: setup
	scripts/check

proto: setup
	scripts/gen-proto

bench: setup
	.venv/bin/python -m bench

# Multi-arch images (needs docker buildx; PLATFORMS=linux/amd64 for a local single-arch build).
PLATFORMS ?= linux/amd64,linux/arm64
TAG ?= 0.1.0
images:
	for target in edge trainer; do \
		docker buildx build --platform $(PLATFORMS) -f deploy/docker/Dockerfile \
			--target $$target -t kubeedge-edge-service/$$target:$(TAG) . || exit 1; \
	done

clean:
	rm -rf .venv models .state .mypy_cache .ruff_cache .pytest_cache demo-output
