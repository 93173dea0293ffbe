# SPDX-License-Identifier: LGPL-2.1-only
# Thin wrapper around CMake.  The two commands a new machine needs:
#   make run    install deps, build Release, run the benchmark suite on loopback
#   make test   install deps, build Debug with ASan+UBSan, run the suite
.PHONY: all deps release debug tsan run test test-tsan test-vm install format format-check bench clean fuzz

JOBS     ?= $(shell nproc)
BUILD    ?= build
PREFIX   ?= /usr/local
CMAKE    := cmake
SOURCES  := $(shell git ls-files '*.c' '*.h' 2>/dev/null)

all: release

deps:
	@./scripts/install-deps.sh

$(BUILD)/release/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD)/release -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX)

$(BUILD)/debug/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD)/debug -DCMAKE_BUILD_TYPE=Debug -DEVPL_SANITIZE=address,undefined

$(BUILD)/tsan/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD)/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEVPL_SANITIZE=thread

release: deps $(BUILD)/release/CMakeCache.txt
	$(CMAKE) --build $(BUILD)/release -j $(JOBS)

debug: deps $(BUILD)/debug/CMakeCache.txt
	$(CMAKE) --build $(BUILD)/debug -j $(JOBS)

tsan: deps $(BUILD)/tsan/CMakeCache.txt
	$(CMAKE) --build $(BUILD)/tsan -j $(JOBS)
	cd $(BUILD)/tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp" \
		ctest --output-on-failure -j $(JOBS) -L threads

run: release
	./bench/suite.sh $(BUILD)/release/tools/evpl-bench

test: debug
	cd $(BUILD)/debug && ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
		UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
		ctest --output-on-failure -j $(JOBS)

# libFuzzer (clang): the HTTP and RPC2 parsers and the TCP-RDMA wire protocol for
# FUZZ_SECONDS each, from the seed corpora
FUZZ_SECONDS ?= 120
$(BUILD)/fuzz/CMakeCache.txt:
	CC=clang $(CMAKE) -S . -B $(BUILD)/fuzz -DCMAKE_BUILD_TYPE=Debug -DEVPL_FUZZ=ON \
		-DEVPL_SANITIZE=address,undefined -DEVPL_BUILD_BENCH=OFF

fuzz: deps $(BUILD)/fuzz/CMakeCache.txt
	$(CMAKE) --build $(BUILD)/fuzz -j $(JOBS) --target fuzz_http fuzz_rpc2 fuzz_tcp_rdma
	mkdir -p $(BUILD)/fuzz/corpus-http $(BUILD)/fuzz/corpus-rpc2 $(BUILD)/fuzz/corpus-tcp_rdma
	ASAN_OPTIONS="detect_leaks=1" $(BUILD)/fuzz/fuzz/fuzz_http -max_total_time=$(FUZZ_SECONDS) \
		-max_len=8192 -timeout=10 $(BUILD)/fuzz/corpus-http fuzz/corpus/http
	ASAN_OPTIONS="detect_leaks=1" $(BUILD)/fuzz/fuzz/fuzz_rpc2 -max_total_time=$(FUZZ_SECONDS) \
		-max_len=8192 -timeout=10 $(BUILD)/fuzz/corpus-rpc2 fuzz/corpus/rpc2
	ASAN_OPTIONS="detect_leaks=1" $(BUILD)/fuzz/fuzz/fuzz_tcp_rdma -max_total_time=$(FUZZ_SECONDS) \
		-max_len=8192 -timeout=10 $(BUILD)/fuzz/corpus-tcp_rdma fuzz/corpus/tcp_rdma

# the hardware paths (NVMe, VFIO, kTLS, RDMA over soft-RoCE) in a qemu guest
test-vm: debug
	./tests/vm/run.sh $(BUILD)/debug

install: release
	$(CMAKE) --install $(BUILD)/release
	@# refresh the loader cache so programs find libevpl.so.0 without LD_LIBRARY_PATH
	@if [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

# COMPARE_ARGS=--quick for a smoke run of the side-by-side comparison
bench: release
	$(BUILD)/release/bench/bench-loop
	$(BUILD)/release/bench/bench-mem
	EVPL_BUILD_DIR=$(BUILD)/release bench/compare.sh $(COMPARE_ARGS)

clean:
	rm -rf $(BUILD)
