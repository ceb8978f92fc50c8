# Makefile — builds statelite (GNU make).
#
#   make               libraries build/libstatelite.a and .so, and the tool
#                      build/statelite when tools/ has sources
#   make test          build and run every test; ends with "N passed, N failed"
#   make check         only the quick tests (names starting with quick_)
#   make asan | ubsan  the tests under AddressSanitizer+UBSan | UBSan alone
#   make valgrind      every test under valgrind
#   make torture       every test in long mode (SL_TEST_LONG=1), then a summary
#                      of what was injected and found (build/torture.log)
#   make fuzz          libFuzzer on the MANIFEST parser and snapshot loader for
#                      FUZZ_SECONDS (default 60); findings go to tests/fuzz/regressions
#   make install       PREFIX=/usr/local DESTDIR= (also: make uninstall)
#   make run           the demo        make bench   the benchmarks
#   make amalgamation  statelite.c + statelite.h in one pair
#   make clean         remove build/
#   make help          this list
#
# Variables: CC, CFLAGS (default -O2 -g), CPPFLAGS, LDFLAGS, WERROR=1 (adds
# -Werror), TEST_ARGS (passed to the runner: name substrings, --timeout SEC,
# ...), TEST_JOBS (tests run at once, default 1).
#
# Other parts of the project hook in through fragments mk/*.mk, read before
# the rules below; see "Hooks".

.DEFAULT_GOAL := all
.SUFFIXES:
.DELETE_ON_ERROR:

# ---------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------

BUILD   ?= build
CFLAGS  ?= -O2 -g
WERROR  ?= 0
AR      ?= ar
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

WARNINGS := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

# SAN_FLAGS is set by `make asan` / `make ubsan` for their own build trees.
SAN_FLAGS ?=

SL_CPPFLAGS := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Iinclude -I.
SL_CFLAGS    = -std=c11 $(WARNINGS) $(SAN_FLAGS)
LIBS        := -lsqlite3 -lzstd -lpthread -lm

COMPILE = $(CC) $(SL_CPPFLAGS) $(CPPFLAGS) $(SL_CFLAGS) $(CFLAGS) -MMD -MP
LINK    = $(CC) $(SL_CFLAGS) $(CFLAGS) $(LDFLAGS)

# The shared library exports the public sl_ interface only.
SO_CFLAGS := -fPIC -fvisibility=hidden '-DSL_API=__attribute__((visibility("default")))'

SL_VERSION := $(shell sed -n 's/^\#define SL_VERSION  *"\([0-9.]*\)".*/\1/p' include/statelite.h 2>/dev/null)
ifeq ($(SL_VERSION),)
SL_VERSION := 0.0.0
endif
SL_MAJOR := $(firstword $(subst ., ,$(SL_VERSION)))

# ---------------------------------------------------------------------------
# Sources and products
# ---------------------------------------------------------------------------

LIB_SRCS    := $(sort $(wildcard base/*.c store/*.c snapshot/*.c sdk/*.c))
TOOL_SRCS   := $(sort $(wildcard tools/*.c))
TEST_SRCS   := $(sort $(wildcard tests/test_*.c))
UTIL_SRCS   := $(sort $(wildcard tests/util*.c))
RUNNER_SRC  := tests/runner.c

LIB_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
PIC_OBJS    := $(LIB_SRCS:%.c=$(BUILD)/pic/%.o)
TOOL_OBJS   := $(TOOL_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_OBJS   := $(TEST_SRCS:%.c=$(BUILD)/obj/%.o) $(UTIL_SRCS:%.c=$(BUILD)/obj/%.o) \
               $(RUNNER_SRC:%.c=$(BUILD)/obj/%.o)

LIB_A       := $(BUILD)/libstatelite.a
LIB_SO_REAL := $(BUILD)/libstatelite.so.$(SL_VERSION)
LIB_SO_MAJ  := $(BUILD)/libstatelite.so.$(SL_MAJOR)
LIB_SO      := $(BUILD)/libstatelite.so
TOOL        := $(if $(TOOL_SRCS),$(BUILD)/statelite)
RUNNER      := $(BUILD)/test_runner
TEST_LIST   := $(BUILD)/test_list.h
PC_FILE     := $(BUILD)/statelite.pc

# Dependencies are checked (and installed where allowed) once; the stamp
# stays until `make clean`.
DEPS_STAMP  := build/.deps-ok
DEPS_SH     := scripts/deps.sh

TEST_JOBS   ?= 1
TEST_ARGS   ?=
TEST_ENV     = SL_BIN_DIR=$(abspath $(BUILD))
RUN_TESTS    = $(TEST_ENV) $(RUNNER) -j $(TEST_JOBS)

ASAN_FLAGS  := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
UBSAN_FLAGS := -fsanitize=undefined -fno-sanitize-recover=all
VALGRIND    ?= valgrind
VALGRIND_FLAGS ?= --error-exitcode=99 --leak-check=full \
                  --errors-for-leak-kinds=definite,indirect -q --trace-children=no
# Seconds per test; valgrind is slow.
VALGRIND_TIMEOUT ?= 3000
TORTURE_TIMEOUT  ?= 3600

# ---------------------------------------------------------------------------
# Hooks
# ---------------------------------------------------------------------------
# A fragment mk/NAME.mk may add to these (with +=) and define its own rules:
#   ALL_TARGETS     more things `make` builds
#   TEST_DEPS       things built before the tests run (programs they call)
#   CLEAN_FILES     more files `make clean` removes
#   INSTALL_HOOKS   targets `make install` runs after installing the rest
#   RUN_DEPS        `make run` (the demo) makes these; set RUN_CMD to a
#                   command that runs the demo
#   BENCH_DEPS, AMALGAMATION_DEPS, TORTURE_DEPS    likewise for those targets
ALL_TARGETS       :=
TEST_DEPS         :=
CLEAN_FILES       :=
INSTALL_HOOKS     :=
RUN_DEPS          :=
BENCH_DEPS        :=
AMALGAMATION_DEPS :=
TORTURE_DEPS      :=

-include $(sort $(wildcard mk/*.mk))

RUN_CMD ?= echo "make run: the statelite demo does not exist yet; it will come with the SDK (sdk/) and its sample programs." >&2; exit 1

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------

.PHONY: all lib tool test check asan ubsan valgrind torture install uninstall \
        clean run bench amalgamation help deps fuzz FORCE

all: lib $(TOOL) $(ALL_TARGETS)

lib: $(LIB_A) $(LIB_SO)

tool: $(TOOL)

deps: $(DEPS_STAMP)

$(DEPS_STAMP): $(DEPS_SH)
	@mkdir -p $(@D)
	@CC="$(CC)" bash $(DEPS_SH)
	@touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(COMPILE) $(EXTRA_CPPFLAGS) -c $< -o $@

$(BUILD)/pic/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(COMPILE) $(SO_CFLAGS) -c $< -o $@

# An empty library (no sources yet) is still a valid archive.
$(LIB_A): $(LIB_OBJS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@rm -f $@
	$(AR) rcs $@ $(LIB_OBJS)

$(LIB_SO_REAL): $(PIC_OBJS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(LINK) -shared -Wl,-soname,libstatelite.so.$(SL_MAJOR) -Wl,--no-undefined \
	  -o $@ $(if $(PIC_OBJS),$(PIC_OBJS),-x c /dev/null -x none) $(LIBS)

$(LIB_SO_MAJ): $(LIB_SO_REAL)
	ln -sf $(notdir $<) $@

$(LIB_SO): $(LIB_SO_MAJ)
	ln -sf $(notdir $<) $@

ifneq ($(TOOL),)
$(TOOL): $(TOOL_OBJS) $(LIB_A)
	$(LINK) -o $@ $(TOOL_OBJS) $(LIB_A) $(LIBS)
endif

# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

# The registry: one TEST_ENTRY(name) per line `TEST(name)` of tests/test_*.c.
# It is written every time but replaced only when it changes, so the tests are
# recompiled only when a test is added, removed or renamed. Included with no
# TEST_ENTRY defined it declares the test functions; every test file gets it
# that way (-include), so that -Wmissing-prototypes holds in tests too.
$(TEST_LIST): FORCE
	@mkdir -p $(@D)
	@{ echo '/* Generated by make from tests/test_*.c; do not edit. */'; \
	  echo '#ifndef TEST_ENTRY'; \
	  echo '#define TEST_ENTRY(name) void test_##name(void);'; \
	  echo '#define SL_TEST_LIST_DECLARE'; \
	  echo '#endif'; \
	  sed -n 's/^TEST(\([a-z0-9_][a-z0-9_]*\)).*/TEST_ENTRY(\1)/p' $(TEST_SRCS) </dev/null; \
	  echo '#ifdef SL_TEST_LIST_DECLARE'; \
	  echo '#undef TEST_ENTRY'; \
	  echo '#undef SL_TEST_LIST_DECLARE'; \
	  echo '#endif'; \
	} > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(TEST_OBJS): EXTRA_CPPFLAGS = -I$(BUILD) -Itests -include $(TEST_LIST)
$(TEST_OBJS): $(TEST_LIST)

$(RUNNER): $(TEST_OBJS) $(LIB_A)
	$(LINK) -o $@ $(TEST_OBJS) $(LIB_A) $(LIBS)

test: $(RUNNER) $(TOOL) $(TEST_DEPS)
	$(RUN_TESTS) $(TEST_ARGS)

check: $(RUNNER) $(TOOL) $(TEST_DEPS)
	$(RUN_TESTS) --quick $(TEST_ARGS)

# Sanitizer builds live in their own trees and run the whole suite.
asan: | $(DEPS_STAMP)
	@CC="$(CC)" bash $(DEPS_SH) --sanitize address,undefined
	@ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:exitcode=99} UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:exitcode=99} \
	  $(MAKE) --no-print-directory test BUILD=$(BUILD)/asan SAN_FLAGS="$(ASAN_FLAGS)"

ubsan: | $(DEPS_STAMP)
	@CC="$(CC)" bash $(DEPS_SH) --sanitize undefined
	@UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:exitcode=99} \
	  $(MAKE) --no-print-directory test BUILD=$(BUILD)/ubsan SAN_FLAGS="$(UBSAN_FLAGS)"

# Each test runs as `valgrind ... test_runner --one NAME` in its own directory.
valgrind: $(RUNNER) $(TOOL) $(TEST_DEPS) $(BUILD)/.deps-valgrind-ok
	$(RUN_TESTS) --timeout $(VALGRIND_TIMEOUT) --wrap "$(VALGRIND) $(VALGRIND_FLAGS)" $(TEST_ARGS)

$(BUILD)/.deps-valgrind-ok: $(DEPS_SH) | $(DEPS_STAMP)
	@CC="$(CC)" bash $(DEPS_SH) valgrind
	@touch $@

# Every test in long mode; the output also goes to $(TORTURE_LOG), and
# tests/torture_summary.sh closes it with the figures the tests printed (kill
# cycles, kill points hit, faults injected, violations). When no TEST_ARGS
# narrow the run, every kill point of the library must have been hit. Not
# part of CI (.ci/run): it takes long.
TORTURE_LOG := $(BUILD)/torture.log

torture: $(RUNNER) $(TOOL) $(TEST_DEPS) $(TORTURE_DEPS)
	@rm -f $(TORTURE_LOG) $(TORTURE_LOG).status
	@{ SL_TEST_LONG=1 $(RUN_TESTS) --timeout $(TORTURE_TIMEOUT) $(TEST_ARGS) 2>&1; \
	  echo $$? > $(TORTURE_LOG).status; } | tee $(TORTURE_LOG)
	@sh tests/torture_summary.sh $(TORTURE_LOG) "$$(cat $(TORTURE_LOG).status)" \
	  $(if $(strip $(TEST_ARGS)),,--all) $(LIB_SRCS) | tee -a $(TORTURE_LOG); \
	  exit $$(tail -n 1 $(TORTURE_LOG) | grep -q 'passed$$' && echo 0 || echo 1)

# libFuzzer (clang; its runtime comes with libclang-rt-14-dev). The target is
# built from the library sources with the fuzzer's instrumentation, runs on a
# copy of the seed corpus (so tests/fuzz/corpus stays as committed) and
# writes any finding into tests/fuzz/regressions/, which `make test` replays.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS   := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined
FUZZ_BIN     := $(BUILD)/fuzz/fuzz_snapshot

$(BUILD)/.deps-fuzz-ok: $(DEPS_SH) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	@CC="$(FUZZ_CC)" bash $(DEPS_SH) --sanitize address,undefined libclang-rt-14-dev
	@touch $@

$(FUZZ_BIN): tests/fuzz/fuzz_snapshot.c $(LIB_SRCS) $(wildcard include/*.h base/*.h store/*.h snapshot/*.h sdk/*.h) $(BUILD)/.deps-fuzz-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(SL_CPPFLAGS) -std=c11 -O1 -g $(FUZZ_FLAGS) -DSL_FUZZ_LIBFUZZER \
	  -o $@ tests/fuzz/fuzz_snapshot.c $(LIB_SRCS) $(LIBS)

fuzz: $(FUZZ_BIN)
	@rm -rf $(BUILD)/fuzz/corpus && mkdir -p $(BUILD)/fuzz/corpus tests/fuzz/regressions
	@cp tests/fuzz/corpus/* $(BUILD)/fuzz/corpus/
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1} $(FUZZ_BIN) -max_total_time=$(FUZZ_SECONDS) \
	  -timeout=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	  -artifact_prefix=tests/fuzz/regressions/ $(BUILD)/fuzz/corpus tests/fuzz/corpus

# ---------------------------------------------------------------------------
# Demo, benchmarks, amalgamation
# ---------------------------------------------------------------------------

run: $(DEPS_STAMP) $(RUN_DEPS)
	@$(RUN_CMD)

bench: lib $(BENCH_DEPS)
	@if [ -f bench/Makefile ]; then \
	  $(MAKE) -C bench; \
	else \
	  echo "make bench: no benchmarks yet (bench/Makefile does not exist)." >&2; exit 1; \
	fi

amalgamation: $(AMALGAMATION_DEPS)
	@if [ -f amalgamation/Makefile ]; then \
	  $(MAKE) -C amalgamation; \
	elif [ -z "$(AMALGAMATION_DEPS)" ]; then \
	  echo "make amalgamation: the amalgamation generator does not exist yet (amalgamation/)." >&2; exit 1; \
	fi

# ---------------------------------------------------------------------------
# Install
# ---------------------------------------------------------------------------

$(PC_FILE): FORCE
	@mkdir -p $(@D)
	@{ echo 'prefix=$(PREFIX)'; \
	  echo 'exec_prefix=$${prefix}'; \
	  echo 'libdir=$(patsubst $(PREFIX)%,$${exec_prefix}%,$(LIBDIR))'; \
	  echo 'includedir=$(patsubst $(PREFIX)%,$${prefix}%,$(INCLUDEDIR))'; \
	  echo; \
	  echo 'Name: statelite'; \
	  echo 'Description: Stream-operator state in one SQLite file per operator instance'; \
	  echo 'Version: $(SL_VERSION)'; \
	  echo 'Requires.private: sqlite3 libzstd'; \
	  echo 'Cflags: -I$${includedir}'; \
	  echo 'Libs: -L$${libdir} -lstatelite'; \
	  echo 'Libs.private: -lpthread -lm'; \
	} > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

install: all $(PC_FILE)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/statelite.h $(DESTDIR)$(INCLUDEDIR)/statelite.h
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libstatelite.a
	install -m 755 $(LIB_SO_REAL) $(DESTDIR)$(LIBDIR)/libstatelite.so.$(SL_VERSION)
	ln -sf libstatelite.so.$(SL_VERSION) $(DESTDIR)$(LIBDIR)/libstatelite.so.$(SL_MAJOR)
	ln -sf libstatelite.so.$(SL_MAJOR) $(DESTDIR)$(LIBDIR)/libstatelite.so
	install -m 644 $(PC_FILE) $(DESTDIR)$(PKGCONFIGDIR)/statelite.pc
ifneq ($(TOOL),)
	install -d $(DESTDIR)$(BINDIR)
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/statelite
endif
ifneq ($(strip $(INSTALL_HOOKS)),)
	@$(MAKE) --no-print-directory $(INSTALL_HOOKS)
endif

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/statelite.h $(DESTDIR)$(LIBDIR)/libstatelite.a \
	  $(DESTDIR)$(LIBDIR)/libstatelite.so.$(SL_VERSION) \
	  $(DESTDIR)$(LIBDIR)/libstatelite.so.$(SL_MAJOR) \
	  $(DESTDIR)$(LIBDIR)/libstatelite.so $(DESTDIR)$(PKGCONFIGDIR)/statelite.pc \
	  $(DESTDIR)$(BINDIR)/statelite

# ---------------------------------------------------------------------------
# Housekeeping
# ---------------------------------------------------------------------------

clean:
	rm -rf $(BUILD) $(CLEAN_FILES)

help:
	@sed -n '3,18s/^# \{0,1\}//p' $(firstword $(MAKEFILE_LIST))

FORCE:

-include $(LIB_OBJS:.o=.d) $(PIC_OBJS:.o=.d) $(TOOL_OBJS:.o=.d) $(TEST_OBJS:.o=.d)
