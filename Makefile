# Campaign Manager: a plain Makefile.
#   make            build every tool into bin/
#   make test       unit tests, tool tests, then both again under ASan+UBSan
#                   (installs the packages it needs first: packaging/deps.sh)
#   make unit-check the cmocka unit tests alone (no servers; the Dockerfile)
#   make lint       warnings as errors, cppcheck, clang-format check
#   make fmt        clang-format in place
#   make bench      benchmarks against jq and Miller (reports, never fails)
#   make fuzz       libFuzzer harnesses, bounded time (FUZZ_SECONDS)
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        a binary Debian package under build/deb
#   make deb-test   build it, install it, test it installed, purge it (root)
#   make completions  bash completions from each tool's --help
#   make demo       the whole system on this machine, from nothing, then stopped
#                   (packaging/demo.sh); KEEP=1 leaves it running, make demo-stop
#                   stops it
# O=DIR puts every build product under DIR (O=build/asan for the sanitizer
# build), so several builds can share one tree.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DATADIR ?= $(PREFIX)/share/campaign-manager
COMPDIR ?= $(PREFIX)/share/bash-completion/completions
O ?= .
OBJ := $(O)/build
OUTBIN := $(O)/bin

CC ?= cc
CFLAGS ?= -O2 -g
WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wformat=2 -Wvla -Wno-unused-parameter
PKGS := hiredis libpq libpcre2-8 libmicrohttpd libjwt libsodium
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CPPFLAGS += -Isrc/lib -D_GNU_SOURCE -DCM_DATADIR=\"$(DATADIR)\" $(PKG_CFLAGS)
LDLIBS := -Wl,--as-needed $(PKG_LIBS) -ljq -lcsv -lm -lpthread
ifdef SAN
CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif

LIB_SRC := $(sort $(wildcard src/lib/*.c))
LIB_OBJ := $(patsubst src/lib/%.c,$(OBJ)/lib/%.o,$(LIB_SRC))
LIBCM := $(OBJ)/libcm.a
CMD_SRC := $(sort $(wildcard src/cmd/cm-*.c))
# The tools' side of the line (messages, shared options): tool_*.c, linked
# into every tool but never into the library or its tests.
TOOL_SRC := $(sort $(wildcard src/tool/tool_*.c))
TOOL_OBJ := $(patsubst src/tool/%.c,$(OBJ)/tool/%.o,$(TOOL_SRC))
LIBTOOL := $(OBJ)/libcmtool.a
TOOLS := $(patsubst src/cmd/%.c,$(OUTBIN)/%,$(CMD_SRC))
SCRIPTS := $(filter-out $(patsubst src/cmd/%.c,bin/%,$(CMD_SRC)),$(wildcard bin/cm-*))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(patsubst tests/unit/%.c,$(OBJ)/tests/%,$(UNIT_SRC))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
REPLAY_BIN := $(patsubst tests/fuzz/%.c,$(OBJ)/fuzz/replay_%,$(FUZZ_SRC))
GEN := $(OBJ)/tests/cm-gen
TESTTOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TESTTOOLS := $(patsubst tests/tools/%.c,$(OBJ)/tests/tools/%,$(TESTTOOL_SRC))
# Files cm-httpd serves, embedded into libcm by src/lib/assets.sh.
ASSETS := share/openapi.json $(sort $(wildcard share/docs/*))
ASSET_OBJ := $(OBJ)/gen/assets_data.o
# One bash completion per tool, C or shell.
COMPLETIONS := $(addprefix $(OBJ)/completions/,$(sort $(notdir $(TOOLS) $(SCRIPTS))))
# The npm linters and validators of tests/packaging.bats, and the OpenAPI
# validator of tests/openapi.bats (test-only tools, npm ci from the lock files).
NODE_PKG := tests/node-pkg/node_modules/.package-lock.json
NODE_API := tests/node/node_modules/.package-lock.json
# Every shell script of the project, for shellcheck.
SHELL_SCRIPTS := $(SCRIPTS) $(wildcard packaging/*.sh packaging/docker/cm-* examples/cron/*.sh \
	tests/packaging/*.sh) \
	.ci/run tests/run.sh tests/fuzz/run.sh tests/bench/run.sh

# Shell tools live in bin/; other build dirs get a copy next to their binaries
# so that they run their own build's stages. A static pattern rule: a plain
# pattern rule would also copy bin/'s compiled tools of the default build
# into the other build dirs instead of building them.
ifneq ($(abspath $(OUTBIN)),$(abspath bin))
SCRIPT_COPIES := $(patsubst bin/%,$(OUTBIN)/%,$(SCRIPTS))
TOOLS += $(SCRIPT_COPIES)
$(SCRIPT_COPIES): $(OUTBIN)/%: bin/%
	@mkdir -p $(@D)
	cp $< $@
endif

all: $(TOOLS)

$(OBJ)/lib/%.o: src/lib/%.c $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(OBJ)/gen/assets_data.c: src/lib/assets.sh $(ASSETS)
	@mkdir -p $(@D)
	sh src/lib/assets.sh $(ASSETS) >$@

$(ASSET_OBJ): $(OBJ)/gen/assets_data.c src/lib/assets.h
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -c -o $@ $<

$(LIBCM): $(LIB_OBJ) $(ASSET_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(OBJ)/tool/%.o: src/tool/%.c src/tool/tool.h $(wildcard src/lib/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc/tool $(CFLAGS) $(WARN) -c -o $@ $<

$(LIBTOOL): $(TOOL_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(OUTBIN)/%: src/cmd/%.c src/tool/tool.h $(LIBTOOL) $(LIBCM)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Isrc/tool $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIBTOOL) $(LIBCM) $(LDLIBS)

$(OBJ)/tests/test_%: tests/unit/test_%.c $(wildcard tests/unit/*.h) $(LIBCM)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(LIBCM) -lcmocka $(LDLIBS)

# Test-only programs (tests/tools), never installed.
$(OBJ)/tests/tools/%: tests/tools/%.c $(LIBCM)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< $(LIBCM) $(LDLIBS)

$(GEN): tests/bench/cm-gen.c $(LIBCM)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) $(LDFLAGS) -o $@ $< $(LIBCM) $(LDLIBS)

# The fuzz harnesses, linked with a driver that replays a corpus (for make test).
$(OBJ)/fuzz/replay_%: tests/fuzz/%.c tests/fuzz/replay.c $(wildcard tests/fuzz/*.h) $(LIBCM)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Wno-missing-prototypes $(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIBCM) $(LDLIBS)

# A tool's completion, generated from its --help (so it cannot drift).
$(OBJ)/completions/%: $(OUTBIN)/% packaging/completion.sh
	@mkdir -p $(@D)
	packaging/completion.sh $< >$@

unit: $(UNIT_BIN)
completions: $(COMPLETIONS)
replay: $(REPLAY_BIN)
gen: $(GEN)
testtools: $(TESTTOOLS)
testbins: all unit replay gen testtools

# Everything the suites need, in the normal and the sanitizer build.
test:
	@packaging/deps.sh build test
	@$(MAKE) --no-print-directory $(NODE_PKG) $(NODE_API) testbins
	@$(MAKE) --no-print-directory O=build/asan SAN=1 testbins
	@tests/run.sh

check: test

# The unit tests and the fuzz corpus replay alone, with the throwaway Redis
# some unit tests use (the container build runs them).
unit-check: unit replay
	@TESTS_BUILDS=plain BATS_FILTER=no-bats-suite tests/run.sh

$(NODE_PKG): tests/node-pkg/package.json tests/node-pkg/package-lock.json
	cd tests/node-pkg && npm ci --no-audit --no-fund --loglevel=error
$(NODE_API): tests/node/package.json tests/node/package-lock.json
	cd tests/node && npm ci --no-audit --no-fund --loglevel=error

lint:
	@$(MAKE) --no-print-directory all unit testtools
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -Isrc/lib -Isrc/tool src tests/unit tests/fuzz tests/bench tests/tools
	clang-format --dry-run --Werror src/lib/*.[ch] src/tool/*.[ch] src/cmd/*.c tests/unit/*.c tests/fuzz/*.c tests/bench/*.c tests/tools/*.c
	mandoc -Tlint -Werror man/* >/dev/null
	@if grep -nE '^[[:space:]]*! ' tests/*.bats; then \
		echo "lint: a bare '! cmd' never fails a bats test: write 'run ! cmd'" >&2; exit 1; fi
	shellcheck -x -P SCRIPTDIR $(SHELL_SCRIPTS) tests/lib/*.bash packaging/debian/*.postinst \
		packaging/debian/*.prerm packaging/debian/*.postrm tests/cron.bats tests/demo.bats tests/packaging.bats tests/packaging/*.bats

fmt:
	clang-format -i src/lib/*.[ch] src/tool/*.[ch] src/cmd/*.c tests/unit/*.c tests/fuzz/*.c tests/bench/*.c tests/tools/*.c

bench: all gen
	@tests/bench/run.sh

FUZZ_SECONDS ?= 60
fuzz:
	@tests/fuzz/run.sh $(FUZZ_SECONDS)

install: all completions
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 \
		$(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(COMPDIR)
	install -m 755 $(TOOLS) $(SCRIPTS) $(DESTDIR)$(BINDIR)
	install -m 644 $(wildcard man/*.1) $(DESTDIR)$(MANDIR)/man1
	install -m 644 $(wildcard man/*.7) $(DESTDIR)$(MANDIR)/man7
	$(if $(wildcard man/*.8),install -d $(DESTDIR)$(MANDIR)/man8 && install -m 644 $(wildcard man/*.8) $(DESTDIR)$(MANDIR)/man8)
	install -m 644 $(COMPLETIONS) $(DESTDIR)$(COMPDIR)
	$(if $(wildcard share/sql/*.sql),install -m 644 $(wildcard share/sql/*.sql) $(DESTDIR)$(DATADIR)/sql)

VERSION := $(shell sed -n 's/^\#define CM_VERSION "\(.*\)"/\1/p' src/lib/version.h)
DEBSRC := $(OBJ)/deb/campaign-manager-$(VERSION)

# A binary Debian package of the work tree, under $(OBJ)/deb (needs
# debhelper): the tree is copied there with packaging/debian as debian/.
deb:
	rm -rf $(OBJ)/deb && mkdir -p $(DEBSRC)
	git ls-files -z --cached --others --exclude-standard | \
		tar --null --ignore-failed-read -T - -c | tar -x -C $(DEBSRC)
	cp -r packaging/debian $(DEBSRC)/debian
	cd $(DEBSRC) && dpkg-buildpackage -us -uc -b
	@ls $(OBJ)/deb/*.deb

# The package built, installed, tested from its installed paths, and purged
# (tests/packaging/deb.bats): it needs root, and says so loudly otherwise.
deb-test:
	@packaging/deps.sh build test pkg
	@tests/packaging/deb-test.sh

# packaging/demo.sh installs its packages, builds (a make of its own, which
# gets O= and SAN= through MAKEFLAGS), runs the demo and stops it; make
# demo-stop stops a demo of this tree and build that KEEP=1 left running. (No $(MAKE)
# here: make -n would run the recipe.)
demo:
	@packaging/demo.sh --bin $(OUTBIN) $(if $(filter-out 0,$(KEEP)),--keep)

demo-stop:
	@packaging/demo.sh stop --bin $(OUTBIN)

clean:
	rm -rf build $(patsubst src/cmd/%.c,bin/%,$(CMD_SRC))

.PHONY: all unit replay gen testtools testbins test check unit-check completions lint fmt bench fuzz install deb deb-test demo demo-stop clean
.DELETE_ON_ERROR:
