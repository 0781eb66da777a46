# signet build, test and CI entry points. See .ci/run for what CI does.

SHELL := /bin/bash
GO ?= go
TOOLS_BIN := $(CURDIR)/.tools/bin

# Tests find notary, notary-server (and benchstat) here; see internal/testenv.
export SIGNET_TOOLS := $(TOOLS_BIN)

.PHONY: all build test lint tools ci demo bench fuzz check-deploy release image cross

all: lint build test

# YubiKey support needs libpcsclite (pkg-config, libpcsclite-dev); without
# it the binary is built with -tags nopcsc and says so when asked.
PCSC_TAGS := $(shell pkg-config --exists libpcsclite 2>/dev/null || echo -tags nopcsc)

build:
	$(GO) build $(PCSC_TAGS) -o signet ./cmd/signet

test:
	PATH="$(TOOLS_BIN):$$PATH" $(GO) test -race -count=1 -timeout 25m ./...

# gofmt -l must print nothing; then go vet.
lint:
	@files="$$(find . -name '*.go' -not -path './.git/*' -not -path './.tools/*' -print0 | xargs -0 -r gofmt -l)"; \
	if [ -n "$$files" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags nopcsc ./...
	$(GO) vet -tags sqlite_mattn ./internal/sqlitedb ./trust/...
	$(GO) vet -tags sqlite_ncruces ./internal/sqlitedb ./trust/...

# A short run of every fuzz target of untrusted input (FUZZTIME each); CI
# runs it. The corpora found are kept under testdata/fuzz and replayed
# by make test.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	./trust/verify:FuzzUpdate \
	./registry/proxy:FuzzLoadFile \
	./registry/proxy:FuzzParseRequest \
	./registry/proxy:FuzzCheckRequest \
	./registry/proxy:FuzzNextPage \
	./registry/proxy:FuzzParseRange \
	./registry/blobcache:FuzzCheckDigest \
	./trust/server:FuzzParseRoute \
	./trust/server:FuzzReadUpdate \
	./trust/server:FuzzReadImport \
	./trust/mirror:FuzzFileFor \
	./trust/server/auth:FuzzBearerToken \
	./trust/server/auth:FuzzTokenAuthorize \
	./trust/server/auth:FuzzParseHtpasswd

# signet without cgo for linux, darwin and windows on amd64 and arm64, with
# the sizes (scripts/cross-build.sh; YubiKey support on windows only).
cross:
	bash scripts/cross-build.sh

# Release downloads into dist/: static builds for linux, darwin and windows
# (amd64, arm64), the linux/amd64 YubiKey build, SBOMs, CHANGELOG.md,
# SHA256SUMS (scripts/release.sh; docs/release.md).
release:
	bash scripts/release.sh

# The container image signet:<version>, built by the docker daemon of
# DOCKER_HOST from a static binary (Dockerfile; docs/release.md).
image:
	bash scripts/release.sh image

# deploy/'s Kubernetes manifests: kustomize renders them, kubeconform -strict
# checks them against the pinned Kubernetes release's schemas, and signet
# checks their flags and policy (scripts/check-deploy.sh; needs make tools).
check-deploy:
	bash scripts/check-deploy.sh

fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash scripts/fuzz.sh $(FUZZ_TARGETS)

tools:
	bash scripts/install-tools.sh

ci:
	bash .ci/run

demo:
	bash scripts/demo.sh

bench:
	PATH="$(TOOLS_BIN):$$PATH" bash bench/run.sh
