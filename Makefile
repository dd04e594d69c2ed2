# ftbox — the two commands of the README's quick start, and helpers.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
STATICCHECK ?= v0.8.2

.PHONY: all deps build demo test guests check-guests bench clean

all: build

deps:
	tools/deps.sh

build: deps
	$(GO) build -o bin/ftbox ./cmd/ftbox

# The demo: a guest on a TAP in a network namespace, answering ping and UDP.
demo: build
	tools/demo.sh

# Every test; in CI (CI=true) nothing skips.
test: deps
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) test -count=1 -timeout 40m ./...

guests:
	$(MAKE) -C tools/guests

bench: build
	bin/ftbox bench emu
	$(GO) test -run XXX -bench . -benchtime 2x ./guestvm/...

clean:
	rm -rf bin
