# mk/samples.mk — the sample programs and `make run`.
#
# Every samples/NAME.c is one complete program that uses only statelite.h; it
# builds to $(BUILD)/samples/NAME as part of `make`, and the tests run them
# (tests/test_samples.c). Samples are compiled the way a user compiles them:
# -Iinclude and nothing else from the library's own flags (each sample
# defines the feature-test macros it needs).
#
# `make run` is the sensor demo, samples/demo.sh: it runs the sensor_windows
# sample, kills it with SIGKILL halfway, restarts it from its checkpoint, and
# compares the result with an uninterrupted run. Its files go to
# $(BUILD)/demo.

SAMPLE_SRCS := $(sort $(wildcard samples/*.c))
SAMPLE_BINS := $(SAMPLE_SRCS:samples/%.c=$(BUILD)/samples/%)

ALL_TARGETS += $(SAMPLE_BINS)
TEST_DEPS   += $(SAMPLE_BINS)

$(BUILD)/samples/%: samples/%.c include/statelite.h $(LIB_A) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) -Iinclude $(CPPFLAGS) $(SL_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB_A) $(LIBS)

# The demo also shows how to read a snapshot with the zstd program; without
# it the demo still runs and prints the command.
DEMO_DEPS_STAMP := $(BUILD)/.deps-demo-ok

$(DEMO_DEPS_STAMP): $(DEPS_SH) | $(DEPS_STAMP)
	@if CC="$(CC)" bash $(DEPS_SH) zstd; then touch $@; else \
	  echo "make run: the zstd program is missing; the demo prints the command that reads a snapshot but cannot run it." >&2; fi

RUN_DEPS += $(SAMPLE_BINS) $(DEMO_DEPS_STAMP)
RUN_CMD  := sh samples/demo.sh $(BUILD)/samples/sensor_windows $(BUILD)/demo
