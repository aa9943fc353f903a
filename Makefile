# ipsync — build, test and tooling. `make help` lists the targets.
#
# The two set-up commands of the README:
#   make demo   run both roles against a built-in loopback mail server
#   make test   the whole test suite (what CI runs)

# The Go release that builds and tests ipsync. A machine's own go command
# downloads it through the module proxy on first use; it is exported rather
# than left to go.mod because a go command set to GOTOOLCHAIN=local (as
# packaged Go often is) ignores a toolchain line there. `make GOTOOLCHAIN=...` overrides.
export GOTOOLCHAIN = go1.27.3

GO        ?= go
BIN       ?= bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
# Tools are built by (and for) GOTOOLCHAIN: an analyser built by an older
# Go cannot type-check code for a newer one.
TOOLS     := $(CURDIR)/$(BIN)/tools/$(GOTOOLCHAIN)
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(TOOLS)/staticcheck
GOVULNCHECK_VERSION := v1.9.0
GOVULNCHECK := $(TOOLS)/govulncheck
# golang.org/x/vulndb's cmd/indexdb turns the module's OSV reports into the
# database govulncheck reads, where vuln.go.dev is unreachable (.ci/vulncheck.sh).
INDEXDB_VERSION := v0.0.0-20261105234957-e22db6528018
INDEXDB   := $(TOOLS)/indexdb
FUZZTIME  ?= 60s
# Packages with fuzz targets, and their targets.
FUZZ_TARGETS := ./codec:FuzzOpen ./codec:FuzzLegacyDecode ./config:FuzzParse ./fetcher:FuzzDecodeMail ./publisher/discover:FuzzParseAddrText ./loopmail:FuzzParseBearer ./mailconn:FuzzTokenAuthNext

.PHONY: help build demo test test-race test-desktop fmt-check vet lint staticcheck vulncheck fuzz bench cross tidy-check \
        screenshots wine-test clean

help:
	@echo "make demo         run the product against a built-in loopback mail server (no account needed)"
	@echo "make test         fmt-check, vet, staticcheck, vulncheck, go test -race ./..., cross builds, tray in xfce4-panel and under Wine, dist-check"
	@echo "make vulncheck    govulncheck: fail on any reachable known vulnerability (offline database when vuln.go.dev is unreachable)"
	@echo "make build        build $(BIN)/ipsync (stripped)"
	@echo "make lint         fmt-check, vet, staticcheck, tidy-check"
	@echo "make fuzz         run every fuzz target for FUZZTIME (default 60s) each"
	@echo "make bench        run the benchmarks"
	@echo "make cross        build for linux/amd64, linux/arm64, windows/amd64"
	@echo "make screenshots  tray screenshots under Xvfb (docs/)"
	@echo "make wine-test    the Windows tray under Wine"
	@echo "make dist         release archives, .deb and .msi packages and checksums.txt in dist/"
	@echo "make dist-check   build one artifact of each type and install it (dpkg root, Wine)"

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ipsync .

demo: build
	$(BIN)/ipsync demo

test: lint vulncheck test-race cross test-desktop dist-check

# The real desktops: the Linux tray in xfce4-panel (the screenshot script)
# and the Windows tray under Wine. Always in CI, which installs what they
# need; on a developer machine when Xvfb / Wine are there; otherwise say why
# they are skipped. Pictures go under bin/, not over the committed ones.
test-desktop: build
	@if [ -n "$$CI" ] || command -v xfce4-panel >/dev/null 2>&1; then \
		IPSYNC_OPTIONAL=1 SCREENSHOTS_OUT=$(CURDIR)/$(BIN)/screenshots bash .ci/screenshots.sh; \
	else \
		echo "screenshots skipped: xfce4-panel is not installed (make screenshots installs it, as root)"; \
	fi
	@if [ -n "$$CI" ] || command -v wine >/dev/null 2>&1; then \
		IPSYNC_OPTIONAL=1 SCREENSHOTS_OUT=$(CURDIR)/$(BIN)/screenshots bash .ci/wine-test.sh; \
	else \
		echo "wine-test skipped: Wine is not installed (make wine-test installs it, as root)"; \
	fi

# go test ./... hides a passing package's output, so the tests that skip for
# lack of a service are announced here (with CI set they fail instead).
test-race:
	@command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || \
		echo "interop tests will be skipped: Dovecot is not installed (apt-get install dovecot-imapd)"
	@command -v dbus-daemon >/dev/null 2>&1 || \
		echo "tray and notification tests will be skipped: dbus-daemon is not installed (apt-get install dbus)"
	@command -v Xvfb >/dev/null 2>&1 && command -v xdotool >/dev/null 2>&1 && command -v zenity >/dev/null 2>&1 || \
		echo "desktop dialog tests will be skipped: Xvfb, xdotool or zenity is not installed (apt-get install xvfb xdotool zenity)"
	$(GO) test -race -count=1 -timeout 20m ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	GOOS=windows $(GO) vet ./...

$(STATICCHECK):
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) ./...
	GOOS=windows $(STATICCHECK) ./...

$(GOVULNCHECK):
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

$(INDEXDB):
	GOBIN=$(TOOLS) $(GO) install golang.org/x/vulndb/cmd/indexdb@$(INDEXDB_VERSION)

vulncheck: $(GOVULNCHECK) $(INDEXDB)
	GO=$(GO) GOVULNCHECK=$(GOVULNCHECK) INDEXDB=$(INDEXDB) VULNDB_CACHE=$(CURDIR)/$(BIN)/vulndb bash .ci/vulncheck.sh

lint: fmt-check vet staticcheck tidy-check

tidy-check:
	$(GO) mod tidy -diff

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$pkg; \
	done

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

cross:
	GOOS=linux   GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ipsync-linux-amd64 .
	GOOS=linux   GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ipsync-linux-arm64 .
	GOOS=windows GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS) -H windowsgui' -o $(BIN)/ipsync-windows-amd64.exe .

# Release artifacts (packaging/dist.sh): archives for every target, .deb for
# Linux, .msi for Windows, checksums.txt; the version comes from git tags.
.PHONY: dist dist-check
DIST_TARGETS := linux/amd64 linux/arm64 windows/amd64 darwin/amd64 darwin/arm64
dist:
	bash packaging/dist.sh dist '$(VERSION)' $(DIST_TARGETS)

# One artifact of each type, built and installed: the .deb into a throwaway
# dpkg root, the .msi under Wine. Always in CI, which installs what it needs;
# elsewhere when wixl and Wine are there.
dist-check:
	@if [ -n "$$CI" ] || { command -v wixl && command -v wine; } >/dev/null 2>&1; then \
		VERSION='$(VERSION)' IPSYNC_OPTIONAL=1 bash .ci/dist-check.sh; \
	else \
		echo "dist-check skipped: wixl or Wine is not installed (apt-get install wixl wine wine64, or run .ci/dist-check.sh as root)"; \
	fi

screenshots: build
	bash .ci/screenshots.sh

wine-test:
	bash .ci/wine-test.sh

clean:
	rm -rf $(BIN)
