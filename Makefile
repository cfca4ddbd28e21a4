# cloudcall — `make run` is the main job, `make test` the test suite.
SHELL     := /bin/bash
GO        ?= go
# The module alone decides what is built: a go.work in a parent folder swapped in other copies of dependencies.
export GOWORK := off
FUNCTIONS := $(notdir $(wildcard functions/*))
BIN       := bin

.PHONY: help build cli test test-node race vet gen-check run bench alloc-budget fuzz package gen deploy-fc deploy-aws clean screenshots

# A count, not a duration: go1.26's fuzz coordinator can fail a duration run with "context deadline exceeded"
# and no crasher when the deadline lands mid-exec (golang/go#75804, fixed in go1.27).
FUZZ_TIME    ?= 30000x
FUZZ_TARGETS := FuzzDecode:./shared/envelope FuzzDecodeInput:./shared/envelope FuzzDetect:./shared/runtime FuzzParse:./shared/callerauth FuzzCanonicalQuery:./shared/callerauth \
                FuzzParseReply:./shared/top FuzzErrorFrom:./shared/ck1 FuzzCAMSData:./shared/alicloud FuzzEnvelope:./shared/wechat \
                FuzzStream:./shared/emulator/linewriter FuzzHandleFlat:./shared/logging FuzzTriggersNeverMissAMatch:./shared/logging \
                FuzzTheOnePassFillsWhatTheLongWayFills:./shared/envelope

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: cli ## build the CLI and every function for this machine into bin/
	@for f in $(FUNCTIONS); do echo "go build functions/$$f"; $(GO) build -trimpath -tags lambda.norpc -o $(BIN)/$$f ./functions/$$f || exit 1; done

cli: ## build the CLI into bin/cloudcall
	@mkdir -p $(BIN)
	@echo "go build cmd/cloudcall (a first build compiles every dependency and lists each package: a few minutes)"
	@$(GO) build -v -o $(BIN)/cloudcall ./cmd/cloudcall 2>&1 | sed -u 's/^/  compiled /'; test $${PIPESTATUS[0]} -eq 0

vet: ## gofmt and go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

gen-check: ## fail naming each file make gen writes (descriptors, openapi.json, docs/vendors.md's tables, clients) that differs from shared/registry
	$(GO) run ./cmd/cloudcall gen --check

# REDIS_PICK exports REDIS_URL (DB 15 on the local Redis) unless it is set.
REDIS_PICK = if [ -z "$$REDIS_URL" ]; then \
	  if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then export REDIS_URL=redis://127.0.0.1:6379/15; echo "redis: using $$REDIS_URL"; \
	  else echo "redis: nothing answers on 127.0.0.1:6379; the Redis tests skip (set REDIS_URL to run them)"; fi; \
	fi;

test: vet gen-check ## the whole test suite (uses Redis on 127.0.0.1:6379 when it answers; CI=true requires it)
	@$(REDIS_PICK) $(GO) test -count=1 ./...
	@# The charge as cloudcall package builds it for a Redis records store.
	@$(REDIS_PICK) $(GO) test -count=1 -tags cloudcall_nosql ./shared/idempotency/recordstore/ ./shared/top/ ./functions/top-launch-extra-charge/
	@$(MAKE) --no-print-directory test-node

# Every package that runs goroutines: the emulator and its pool, the runtime,
# the stores, idempotency, caller auth, the CLI, the sandboxes and the token
# managers. CI fails on any race.
RACE_PKGS := ./shared/emulator/... ./shared/runtime/... ./shared/store/... ./shared/idempotency/... \
             ./shared/callerauth/... ./cmd/cloudcall/... ./shared/sandbox/... ./shared/wechat/... ./shared/ck1/... ./shared/notify/... ./shared/quotaalert/... ./functions/quota-alert/... ./shared/console/... ./clients/go/... ./shared/syncbuf/...
race: ## go test -race over every package with goroutines (uses REDIS_URL like make test)
	@$(REDIS_PICK) $(GO) test -race -count=1 $(RACE_PKGS)

NODE_TESTS := test/unit.test.mjs test/package.test.mjs test/emulator.test.mjs
test-node: ## the Node client's suites (node --test; against cloudcall local --caller-keys); CI=true requires node and npm
	@if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then \
	  cd clients/node && node --test --test-concurrency=1 $(NODE_TESTS); \
	elif [ "$$CI" = true ]; then echo "test-node: node and npm are required under CI=true (Node >= 18)"; exit 1; \
	else echo "test-node: node/npm not installed; the clients/node tests skip (install Node >= 18 to run them)"; fi

fuzz: ## run every fuzz target for FUZZ_TIME each (default 30000 inputs, a few seconds each); fails on a crash
	@for t in $(FUZZ_TARGETS); do name=$${t%%:*}; pkg=$${t#*:}; echo "fuzz $$name in $$pkg for $(FUZZ_TIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZ_TIME) $$pkg || exit 1; done

BENCH_TIME ?= 200ms
bench: ## Go benchmarks (briefly), then the full report against floors and peers (RIE, PowerWeChat) → docs/benchmarks.md
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCH_TIME) ./shared/wechat ./shared/ck1 ./shared/emulator ./shared/emulator/localstore ./shared/quotaalert ./shared/bench
	@# bench/peers replaces the main module with ../..: tidy keeps its go.sum in step with the main module's dependencies.
	cd bench/peers && $(GO) mod tidy && $(GO) run . -out ../../docs/benchmarks.md

alloc-budget: ## after a deliberate change: rewrite the allocation budgets the test suite guards (commit them)
	CLOUDCALL_UPDATE_ALLOC_BUDGET=1 $(GO) test -count=1 -run TestAllocationBudget ./shared/bench/allocbudget ./functions/quota-alert

ARGS ?=
run: cli ## every function (cloudcall local builds them) under the local emulator, against the vendor sandboxes (flags: make run ARGS="--addr 127.0.0.1:9001 ..."; Ctrl-C stops it all)
	@# @: make would echo the command line, caller secrets in ARGS included
	@$(BIN)/cloudcall local $(ARGS)

screenshots: ## regenerate the console screenshots in docs/ (browser test; needs chromium and npm ci --prefix shared/console/browsertest)
	CONSOLE_SCREENSHOTS=docs $(GO) test -count=1 -run TestConsoleInBrowser ./cmd/cloudcall

gen: ## regenerate everything shared/registry drives: s.yaml, s.vpc.yaml, template.yaml, openapi.json, docs/vendors.md's input tables, the clients' files
	$(GO) run ./cmd/cloudcall gen

package: ## reproducible zips: dist/fc/<fn>.zip (main) and dist/aws/<fn>-{x86_64,arm64}.zip (bootstrap)
	$(GO) run ./cmd/cloudcall package

package-fc: ## one function for FC (s.yaml pre-deploy): make package-fc FUNCTION=<name>
	@if [ -z "$(FUNCTION)" ]; then echo "package-fc: say which function: make package-fc FUNCTION=<name>, one of: $(FUNCTIONS)"; exit 2; fi
	$(GO) run ./cmd/cloudcall package --platform fc --function $(FUNCTION)

ARCH ?= x86_64
FC_TEMPLATE ?= s.yaml
deploy-fc: ## Serverless Devs: s deploy (FC_TEMPLATE=s.vpc.yaml for the VPC variant; needs `s` and credentials; see docs/deploy.md)
	@command -v s >/dev/null 2>&1 || { echo "deploy-fc: Serverless Devs is not installed (npm install -g @serverless-devs/s), then s config add"; exit 1; }
	@# s.yaml takes CLOUDCALL_ALLOW_ANONYMOUS from this shell: one left over from local work deployed open triggers.
	@# Only a value the functions read as false passes: they trim all surrounding white space (a CRLF .env leaves
	@# "true\r", which they read as true), so anything else not plainly false is refused too.
	@case "$$(printf %s "$$CLOUDCALL_ALLOW_ANONYMOUS" | LC_ALL=C tr -d '[:space:]' | tr A-Z a-z)" in ""|false|0|no|off) ;; \
	  true|1|yes|on) [ "$$FC_HTTP_AUTH_TYPE" = function ] || { echo "deploy-fc: CLOUDCALL_ALLOW_ANONYMOUS=$$CLOUDCALL_ALLOW_ANONYMOUS is in your environment and FC_HTTP_AUTH_TYPE is not function: the HTTP triggers would run unsigned calls, the charge's included. Unset it (and set CLOUDCALL_CALLER_KEYS), or set FC_HTTP_AUTH_TYPE=function so FC checks the callers (docs/deploy.md)"; exit 1; };; \
	  *) [ "$$FC_HTTP_AUTH_TYPE" = function ] || { echo "deploy-fc: CLOUDCALL_ALLOW_ANONYMOUS in your environment is neither true nor false as written (the functions trim white space the check cannot see, and may read it as true, the HTTP triggers then running unsigned calls): unset it or set it to false, or set FC_HTTP_AUTH_TYPE=function so FC checks the callers (docs/deploy.md)"; exit 1; };; esac
	s deploy -y -t $(FC_TEMPLATE)

deploy-aws: ## AWS SAM: sam build && sam deploy --guided (ARCH=x86_64|arm64)
	@command -v sam >/dev/null 2>&1 || { echo "deploy-aws: the AWS SAM CLI is not installed (see https://docs.aws.amazon.com/serverless-application-model/)"; exit 1; }
	ARCH=$(ARCH) sam build --parameter-overrides Architecture=$(ARCH) && sam deploy --guided --parameter-overrides Architecture=$(ARCH)

# sam build (BuildMethod: makefile) calls build-<LogicalId> with ARTIFACTS_DIR.
build-%Function:
	@test -n "$(ARTIFACTS_DIR)" || { echo "build-$*Function: sam build calls this with ARTIFACTS_DIR set; by hand: make build-$*Function ARTIFACTS_DIR=<dir>"; exit 2; }
	$(GO) run ./cmd/cloudcall package --platform aws --logical-id $*Function --arch $(ARCH) --bootstrap-to $(ARTIFACTS_DIR)

clean: ## remove build output
	rm -rf $(BIN) dist
