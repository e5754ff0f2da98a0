# dragonfly: peer-to-peer file and image distribution on libp2p.
# `make` (or `make help`) lists the targets; each documents itself with a
# `## ` comment on its rule line.

GO        ?= go
BIN       := bin
TOOLS     := $(BIN)/tools
# Every binary is a cli/cmd/<name>/main.go; directories without one yet are
# skipped.
CMDS      := $(patsubst %/main.go,./%,$(wildcard cli/cmd/*/main.go))
PROTOC_GEN_GO_VERSION := v1.36.12
# staticcheck 2026.1 (v0.7.0) understands Go 1.26.
STATICCHECK_VERSION   := v0.7.0
FUZZTIME  ?= 10s
BENCHTIME ?= 3x
SWARM_SCENARIOS ?= swarm-16 staggered-16 faults-8

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build every binary under cli/cmd into bin/
	@mkdir -p $(BIN)
	$(if $(CMDS),$(GO) build -trimpath -o $(BIN)/ $(CMDS),@echo "no cli/cmd/*/main.go yet: nothing to build")

.PHONY: test
test: ## run every test with the race detector (what .ci/run runs)
	$(GO) test -race -count=1 -timeout 30m ./...

.PHONY: test-short
test-short: ## run the fast tests only
	$(GO) test -short ./...

.PHONY: lint
lint: ## gofmt check, go vet, staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: fmt
fmt: ## format the code
	gofmt -w .

.PHONY: generate
generate: ## regenerate protocol/pb/*.pb.go (needs protoc)
	@command -v protoc >/dev/null || { echo "protoc not found (Debian: apt-get install protobuf-compiler)"; exit 1; }
	@mkdir -p $(TOOLS)
	GOBIN=$(abspath $(TOOLS)) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd protocol/pb && PATH="$(abspath $(TOOLS)):$$PATH" protoc --go_out=. --go_opt=paths=source_relative *.proto

.PHONY: bench
bench: ## run the benchmarks, BENCHTIME each (DF_BENCH_LARGE=1 for the 1 GiB figures)
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 60m ./...

.PHONY: bench-swarm
bench-swarm: build ## run the shaped swarm scenarios; results into docs/benchmarks.md (Shaped swarm runs) and docs/swarm-*.png
	@set -e; out=$$(mktemp); for s in $(SWARM_SCENARIOS); do \
	  echo "### $$s ($$(date -u +%F), $$(nproc) cores)"; echo; echo '```'; \
	  $(BIN)/dftestnet run testnet/scenarios/$$s.yaml --png docs/swarm-$$s.png 2>&1 || true; \
	  echo '```'; echo; echo "![$$s](swarm-$$s.png)"; echo; \
	done > $$out; \
	awk -v f=$$out '/<!-- bench-swarm:begin -->/ {print; while ((getline l < f) > 0) print l; skip=1; next} \
	  /<!-- bench-swarm:end -->/ {skip=0} !skip' docs/benchmarks.md > $$out.md && mv $$out.md docs/benchmarks.md; rm -f $$out

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@set -e; for pkg in $$($(GO) list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== fuzz $$pkg $$f ($(FUZZTIME))"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

.PHONY: demo
demo: build ## start a local cluster and show it distributing a file
	$(BIN)/dftestnet demo

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
