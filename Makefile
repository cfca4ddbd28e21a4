# cloudcall — `make run` is the main job, `make test` the test suite.
GO        ?= go
FUNCTIONS := $(notdir $(wildcard functions/*))
BIN       := bin

.PHONY: help build test vet run bench fuzz package gen deploy-fc deploy-aws clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the CLI and every function for this machine into bin/
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/cloudcall ./cmd/cloudcall
	@for f in $(FUNCTIONS); do echo "go build functions/$$f"; $(GO) build -trimpath -tags lambda.norpc -o $(BIN)/$$f ./functions/$$f || exit 1; done

vet: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

test: vet ## the whole test suite (Redis tests skip without REDIS_URL unless CI=true)
	$(GO) test -count=1 ./...

run: build ## every function under the local emulator, against the vendor sandboxes (Ctrl-C stops it all)
	$(BIN)/cloudcall local

clean: ## remove build output
	rm -rf $(BIN) dist
