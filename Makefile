# dragonfly: peer-to-peer file and image distribution on libp2p.
# `make help` lists the targets.

GO        ?= go
BIN       := bin
CMDS      := $(notdir $(wildcard cli/cmd/*))
PROTOC_GEN_GO_VERSION := v1.36.12
STATICCHECK_VERSION   := v0.7.0
FUZZTIME  ?= 10s

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build every binary into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ $(addprefix ./cli/cmd/,$(CMDS))

.PHONY: test
test: ## run every test with the race detector (what .ci/run runs)
	$(GO) test -race -count=1 -timeout 30m ./...

.PHONY: test-short
test-short: ## run the fast tests only
	$(GO) test -short -count=1 ./...

.PHONY: lint
lint: ## gofmt, go vet, staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

.PHONY: fmt
fmt: ## format the code
	gofmt -w .

.PHONY: generate
generate: ## regenerate protobuf code (needs protoc)
	@mkdir -p $(BIN)/tools
	GOBIN=$(abspath $(BIN)/tools) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	cd protocol/pb && PATH=$(abspath $(BIN)/tools):$$PATH protoc --go_out=. --go_opt=paths=source_relative *.proto

.PHONY: bench
bench: ## run the benchmarks (DF_BENCH_LARGE=1 for the 1 GiB figures)
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

.PHONY: demo
demo: build ## start a local cluster and show it distributing a file
	$(BIN)/dftestnet demo

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
