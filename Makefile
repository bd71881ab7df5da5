# tickforge — the only build system. Plain GNU make.
#   make                 build/tickforge
#   make test            every test (unit, lua, integration); last line "N passed, N failed"
#   make run             deps, build, private PostgreSQL, migrate, serve on 127.0.0.1:8080
#   make SAN=address,undefined test    the same under sanitizers (objects in build/san)
#   make fuzz            libFuzzer targets in build/fuzz (clang); make fuzz-short runs each briefly
#   make soak            10 minutes of mixed load, reloads and a database restart (bench/soak.lua)
#   make bench | deps | fmt | lint | clean

PKGS    := lua5.4 libmicrohttpd libpq libcjson
SAN     ?=
WERROR  ?= $(if $(CI),1,0)
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

BUILD   := $(if $(SAN),build/san,build)

# Warnings: everything that catches real bugs; unused parameters are normal
# in callbacks (MHD, Lua), so they stay quiet.
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-unused-parameter -Wvla \
           $(if $(filter 1,$(WERROR)),-Werror)
OPT     ?= -O2
# pkg-config runs when a rule first needs its answer, not when make reads
# this file: on a fresh machine the -dev packages it describes are only
# there once `make deps` has run (each is evaluated once, then cached).
PKG_CFLAGS = $(eval PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS   = $(eval PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null))$(PKG_LIBS)
CFLAGS   = -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -MMD -MP -iquote core \
           -DTF_VERSION='"$(VERSION)"' $(PKG_CFLAGS) \
           $(if $(SAN),-fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all)
LDFLAGS := $(if $(SAN),-fsanitize=$(SAN)) -rdynamic
LDLIBS   = $(PKG_LIBS) -lm -lpthread

CORE_SRC := $(filter-out core/main.c,$(wildcard core/*.c core/ind/*.c))
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/*.c tests/unit/*/*.c)
UNIT_SRC := $(filter-out tests/unit/unit.c,$(UNIT_SRC))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)

.PHONY: all test unit run serve deps pg migrate bench soak fmt lint clean check-compose fuzz fuzz-short
all: $(BUILD)/tickforge

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtfcore.a: $(CORE_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/tickforge: $(BUILD)/core/main.o $(BUILD)/libtfcore.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/unit.c $(BUILD)/libtfcore.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< tests/unit/unit.c $(BUILD)/libtfcore.a -o $@ $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BIN)

# Fuzzing (tests/fuzz/, docs/fuzzing.md): the core again, built by clang with
# libFuzzer's coverage and ASan+UBSan, and one binary per fuzz_*.c.
# FUZZ_SECONDS per target in fuzz-short (make test runs each for 10 s); corpora grow in
# build/fuzz/corpus/<target>, seeded from tests/fuzz/corpus/<target>.
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -Wno-format-nonliteral -iquote core -DTF_VERSION='"fuzz"' $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_SECONDS ?= 25
FUZZ_BIN     := $(patsubst tests/fuzz/%.c,build/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_OBJ     := $(CORE_SRC:%.c=build/fuzz/%.o)

build/fuzz/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

build/fuzz/libtfcore.a: $(FUZZ_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c build/fuzz/libtfcore.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< build/fuzz/libtfcore.a -o $@ $(LDLIBS)

fuzz: deps
	@$(MAKE) --no-print-directory $(FUZZ_BIN)

fuzz-short: fuzz
	@for t in $(FUZZ_BIN); do \
	  n=$${t##*/fuzz_}; mkdir -p build/fuzz/corpus/$$n build/fuzz/crashes/$$n; \
	  echo "== fuzz $$n ($(FUZZ_SECONDS) s)"; \
	  $$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz/crashes/$$n/ build/fuzz/corpus/$$n tests/fuzz/corpus/$$n \
	    >build/fuzz/$$n.log 2>&1 || { tail -40 build/fuzz/$$n.log; echo "fuzz $$n: FAILED (input in build/fuzz/crashes/$$n/)"; exit 1; }; \
	  grep -E '^stat::number_of_executed_units|^stat::new_units_added' build/fuzz/$$n.log | tr '\n' ' '; echo; \
	done

deps:
	@scripts/deps.sh

pg: deps
	@scripts/pg.sh start

# Targets that need the packages run deps first, then build in a second make
# (never `deps all` as prerequisites: with -j they would run side by side).
migrate: pg
	@$(MAKE) --no-print-directory all
	DATABASE_URL="$${DATABASE_URL:-$$(scripts/pg.sh url)}" $(BUILD)/tickforge migrate

# `make run`: the embedded default when DATABASE_URL is unset, and
# development keys when none are set (printed, never used in production).
run: deps
	@$(MAKE) --no-print-directory all
	@if [ -z "$$DATABASE_URL" ]; then scripts/pg.sh start; fi
	DATABASE_URL="$${DATABASE_URL:-$$(scripts/pg.sh url)}" $(BUILD)/tickforge migrate
	@if [ -z "$$TICKFORGE_API_KEY$$API_KEY" ]; then echo "make run: development keys: ingest+read 'dev-ingest-key', admin 'dev-admin-key'"; fi
	DATABASE_URL="$${DATABASE_URL:-$$(scripts/pg.sh url)}" \
	TICKFORGE_API_KEY="$${TICKFORGE_API_KEY:-$${API_KEY:-dev-ingest-key}}" \
	TICKFORGE_ADMIN_KEY="$${TICKFORGE_ADMIN_KEY:-dev-admin-key}" \
	exec $(BUILD)/tickforge serve

# scripts/test.sh starts the private cluster (fsync off) unless DATABASE_URL
# is set, stops it again if it started it, and says so in its last lines.
test: deps
	@scripts/deps.sh --browser
	@$(MAKE) --no-print-directory all unit
	@BUILD=$(BUILD) scripts/test.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@scripts/pg.sh start
	@BUILD=$(BUILD) bench/run.sh

# The soak (bench/soak.lua; not in CI): SOAK_SECONDS (600) of mixed load with
# reloads and a database restart; a markdown report on stdout.
soak: deps
	@$(MAKE) --no-print-directory all
	@TF_BIN=$(PWD)/$(BUILD)/tickforge $(BUILD)/tickforge run bench/soak.lua

check-compose:
	@TEST_ONLY=compose scripts/test.sh

fmt:
	clang-format -i $(wildcard core/*.[ch] core/ind/*.[ch] tests/unit/*.[ch] tests/unit/*/*.[ch])

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr --std=c11 -Icore $$(pkg-config --cflags-only-I $(PKGS)) core

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
