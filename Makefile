# tern — the front door. `make demo` and `make test` on a fresh Debian 12 machine do everything.
BUILD     ?= build
JOBS      ?= 2
CMAKE_ARGS ?=
SAN_BUILD ?= build-asan

.PHONY: all deps configure build test test-unit test-sanitize demo bench clean help

all: build

help:
	@echo "make demo           install deps, build, train a small model on a public corpus"
	@echo "make test           install deps, build, run the whole ctest suite"
	@echo "make test-sanitize  unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench          performance benchmarks against the PyTorch peer"
	@echo "make clean          remove build folders"

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 1500

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -L 'unit|faults'

test-sanitize: deps
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_SANITIZE=address,undefined -DTERN_BUILD_BENCH=OFF
	cmake --build $(SAN_BUILD) -j$(JOBS)
	cd $(SAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -L 'unit|faults'

demo: build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash experiments/bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
