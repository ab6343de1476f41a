# Makefile -- build, test, fuzz and benchmark rewind. Plain GNU make.
#
#   make deps      install missing Debian packages (apt-get, as root)
#   make           build bin/rewind (+ bin/rewind-core), bin/rewindd, bin/trafficgen
#   make test      deps + build + unit, e2e and differential tests
#   make SAN=1 test   the same under ASan+UBSan (separate build dir)
#   make fuzz      build the libFuzzer targets (clang) into build-fuzz/ and run each
#                  FUZZ_SECONDS (60), printing its coverage
#   make bench     optimised build + benchmark against tcpdump (BENCH_GB=2)
#   make run       deps + build + start rewindd on the default-route interface
#   make install   install binaries and man pages under PREFIX (/usr/local) and create
#                  the group 'rewind', whose members may read archives root writes

CC ?= cc
PREFIX ?= /usr/local
SAN ?= 0

CFLAGS_BASE := -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -I. -pthread
ifeq ($(SAN),1)
BUILD := build-san
CFLAGS_OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS_SAN := -fsanitize=address,undefined
else
BUILD := build
CFLAGS_OPT := -O2
LDFLAGS_SAN :=
endif
CFLAGS += $(CFLAGS_BASE) $(CFLAGS_OPT)
LIBS := -lpcap -lrocksdb -lmicrohttpd -lgnutls -lroaring -llz4 -lcrypto -ljansson -ldl -lpthread -lm
# libcurl is dlopen()ed (common/curl_dl.c), only when --url is used. The
# release binaries link RocksDB, its compressors, libcrypto (SHA-1 of the
# Community ID) and the C++ runtime statically when the archives are
# installed: a short query is mostly process start-up, and resolving those
# libraries' symbols at every start was a large part of it. (SAN=1 and the unit tests keep the shared libraries.)
# The flow export (export/) of rewindd uses libcurl (ClickHouse's HTTP
# interface, common/curl_dl.c) and libfixbuf (IPFIX, with GLib): both are
# dlopen()ed when an export is configured, not linked (3.6 MiB less
# resident in a capturing rewindd); their headers are needed to build.
EXPORT_CFLAGS := $(shell pkg-config --cflags libfixbuf 2>/dev/null)
BIN_LIBS := $(LIBS)
REWIND_LIBS := $(LIBS)
REWIND_EXTRA :=
REWIND_LDFLAGS :=
ifeq ($(SAN),0)
ifneq ($(shell $(CC) -print-file-name=librocksdb.a),librocksdb.a)
STATIC_DB := -Wl,-Bstatic -lrocksdb -lsnappy -lz -lbz2 -lzstd -llz4 -lcrypto -lstdc++ -Wl,-Bdynamic
BIN_LIBS := -lpcap $(STATIC_DB) -lmicrohttpd -lgnutls -lroaring -ljansson -ldl -lpthread -lm -static-libgcc
REWIND_LIBS := $(BIN_LIBS)
# bin/rewind-core is a short-lived client whose needle query is mostly process
# start-up, so it goes further: libpcap (with libdbus, which needs the two
# libsystemd stand-ins of cli/sd_none.c) and libjansson are static too, which
# leaves libc, libm and libroaring to load (and the stubs of libdl and
# libpthread); it is not position-independent, which saves the ~36,000
# relocations (and the page faults they cause) of the static RocksDB; and
# its heap starts on huge pages (cli/heap_thp.c). The
# network-facing rewindd keeps PIE and the shared libpcap. (Without PIE only
# the executable's own code sits at a fixed address; its libraries, heap and
# stack are still randomised.) The static libpcap link follows Debian 12's
# libpcap.a, which needs libdbus and nothing else.
HAVE_STATIC_PCAP := $(foreach l,libpcap.a libdbus-1.a libjansson.a,\
  $(if $(filter-out $(l),$(shell $(CC) -print-file-name=$(l))),,missing))
ifeq ($(strip $(HAVE_STATIC_PCAP)),)
REWIND_LIBS := -Wl,-Bstatic -lpcap -ldbus-1 -ljansson $(STATIC_DB) -lroaring -ldl -lpthread -lm \
  -static-libgcc
REWIND_EXTRA := $(BUILD)/cli/sd_none.o
endif
REWIND_EXTRA += $(BUILD)/cli/heap_thp.o
REWIND_LDFLAGS := -no-pie
endif
endif

LIB_SRC := $(wildcard common/*.c index/*.c archive/*.c capture/*.c query/*.c analytics/*.c \
  intercept/*.c evidence/*.c export/*.c auth/*.c ctl/*.c httpd/*.c)
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
UNIT_SRC := $(wildcard tests/unit/*/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Programs the end-to-end tests run (damaging an archive, say); not installed.
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)

BINS := bin/rewind bin/rewind-core bin/rewindd bin/trafficgen
# bin/rewind is a small front end (libc only) that asks the rewindd owning
# --dir to answer a query and otherwise runs bin/rewind-core, the client
# proper (cli/front.c says why).
FRONT_OBJ := $(BUILD)/cli/front.o $(BUILD)/cli/qargs.o $(BUILD)/ctl/client.o $(BUILD)/ctl/proto.o \
  $(BUILD)/common/rw.o

# The web console (web/, served by rewindd at /) is plain HTML, CSS and
# JavaScript; its one library, Chart.js, comes from Debian's libjs-chart.js
# (make deps) and is copied beside it, so the console needs no network.
CHARTJS := /usr/share/javascript/chart.js/chart.min.js
WEB_VENDOR := web/vendor/chart.min.js
.PHONY: all deps test unit e2e fuzz fuzz-build bench run install clean
all: $(BINS) $(WEB_VENDOR)

$(WEB_VENDOR): $(wildcard $(CHARTJS))
	@mkdir -p web/vendor
	@if [ -f $(CHARTJS) ]; then cp $(CHARTJS) $@; else \
	  echo "web: $(CHARTJS) is missing (make deps): the console's timeline will not draw" >&2; fi


deps:
	@sh tools/deps.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/export/%.o: CFLAGS += $(EXPORT_CFLAGS)

$(BUILD)/librewind.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

bin/rewind: $(FRONT_OBJ)
	@mkdir -p bin
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lm

# Each command of rewind beyond the first few has a file of its own,
# cli/cmd_NAME.c, declared in cli/cmds.h.
CMD_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/cmd_*.c))
bin/rewind-core: $(BUILD)/cli/rewind.o $(BUILD)/cli/qargs.o $(BUILD)/cli/httpc.o $(CMD_OBJ) \
  $(REWIND_EXTRA) $(BUILD)/librewind.a
	@mkdir -p bin
	$(CC) $(LDFLAGS_SAN) $(REWIND_LDFLAGS) -o $@ $^ $(REWIND_LIBS)

bin/rewindd: $(BUILD)/cli/rewindd.o $(BUILD)/cli/qargs.o $(BUILD)/librewind.a
	@mkdir -p bin
	$(CC) $(LDFLAGS_SAN) -o $@ $^ $(BIN_LIBS)

# The traffic generator is a tool of its own: it writes pcap files with
# libc alone and links nothing of rewind's.
bin/trafficgen: $(BUILD)/tools/trafficgen.o
	@mkdir -p bin
	$(CC) $(LDFLAGS_SAN) -o $@ $^ -lm

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/librewind.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/librewind.a $(LIBS) -lcmocka

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/librewind.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/librewind.a $(LIBS)

# Binaries are rebuilt when SAN changes: remember which flavour bin/ holds.
bin/.flavour-$(SAN):
	@mkdir -p bin && rm -f bin/.flavour-* $(BINS) && touch $@
$(BINS): bin/.flavour-$(SAN)

unit: $(UNIT_BIN)
	@sh tests/run-unit.sh $(UNIT_BIN)

e2e: $(BINS) $(WEB_VENDOR) $(TOOL_BIN)
	@sh tests/run-all.sh

test: deps
	@$(MAKE) --no-print-directory all $(UNIT_BIN) $(TOOL_BIN)
	@sh tests/run-all.sh $(UNIT_BIN)

# The fuzz targets: the library built once with clang's coverage and
# sanitizers (build-fuzz/obj), one binary per fuzz/fuzz_NAME.c. `make fuzz`
# builds them and runs each for FUZZ_SECONDS (default 60) from its seeds
# (fuzz/corpus/NAME/, copied: the finds stay in build-fuzz/corpus) with its
# dictionary (fuzz/NAME.dict), printing each target's last libFuzzer "cov:"
# line; tests/e2e/test_fuzz_smoke.sh does the same for a few seconds each.
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
FUZZ_OBJ := $(LIB_SRC:%.c=build-fuzz/obj/%.o)
FUZZ_CFLAGS := $(CFLAGS_BASE) $(EXPORT_CFLAGS) -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
FUZZ_SECONDS ?= 60

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

build-fuzz/librewind.a: $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

build-fuzz/fuzz_%: fuzz/fuzz_%.c build-fuzz/librewind.a
	clang $(CFLAGS_BASE) -O1 -fsanitize=fuzzer,address,undefined -o $@ $< build-fuzz/librewind.a $(LIBS)

fuzz-build: $(FUZZ_BIN)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@sh tools/fuzz-run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

bench: deps
	@$(MAKE) --no-print-directory SAN=0 all
	@sh bench/bench.sh

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/run.sh

install: all
	getent group rewind >/dev/null || groupadd --system rewind
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8
	install -d $(DESTDIR)$(PREFIX)/libexec/rewind
	install -m 755 bin/rewind $(DESTDIR)$(PREFIX)/bin/rewind
	install -m 755 bin/rewind-core $(DESTDIR)$(PREFIX)/libexec/rewind/rewind-core
	install -m 755 bin/rewindd $(DESTDIR)$(PREFIX)/sbin/rewindd
	install -m 644 man/rewind.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/rewind-archive.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 644 man/rewindd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -d $(DESTDIR)$(PREFIX)/share/rewind/web/vendor
	install -m 644 web/*.html web/*.js web/*.css web/*.svg $(DESTDIR)$(PREFIX)/share/rewind/web/
	if [ -f $(WEB_VENDOR) ]; then install -m 644 $(WEB_VENDOR) $(DESTDIR)$(PREFIX)/share/rewind/web/vendor/; fi

clean:
	rm -rf build build-san build-fuzz bin

-include $(wildcard $(BUILD)/*/*.d $(BUILD)/tests/*/*.d build-fuzz/obj/*/*.d)
