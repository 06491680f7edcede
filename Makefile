# canary — top-level commands. CMake builds, CTest runs the tests; this file only strings
# them together and makes sure the Debian packages are there first (scripts/install-deps.sh).
#
#   make demo    install what is missing, build, run canaryd with a simulated fleet
#   make test    install what is missing, build (normal + ASan/UBSan), run every test
#   make bench   build optimised and print the benchmark tables (bench/)
#   make bench-iforest   only the Isolation Forest part (against scikit-learn, ~2 min)
#   make bench-nab       canary's detectors on the Numenta Anomaly Benchmark (~1 s)
#   make bench-gas       the gas classifier against scikit-learn's stack (~1 min)
#   make bench-gas-windows  the gas classifier with and without window features (~5 min)
#   make bench-dashboard the dashboard in headless Chromium and a stream client's ingest cost (~3 min)
#   make bench-security  what canaryd refuses of a network attacker's and a compromised device's attacks
#   make bench-sdk       the device SDK: code size of its core, time per signed reading (~10 s)

BUILD      ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-release
JOBS       ?= $(shell nproc)

.PHONY: all deps bench-deps build asan test test-fast demo bench bench-build bench-iforest \
        bench-nab docs format clean

all: build

deps:
	@bash scripts/install-deps.sh

# What the benchmarks need on top (scikit-learn, the Isolation Forest peer); CI never asks.
bench-deps:
	@bash scripts/install-deps.sh --bench

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS) -- --no-print-directory

asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCANARY_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS) -- --no-print-directory

# Every test, in the normal and in the sanitizer build. Non-zero exit on any failure.
test: build asan
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

# The normal build's tests only (for quick iterations).
test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: build
	@bash scripts/demo.sh

bench: bench-build
	@bash bench/run.sh $(BENCH_BUILD)

bench-build: bench-deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) -- --no-print-directory

bench-iforest: bench-build
	@bash bench/iforest.sh $(BENCH_BUILD)

# The gas classifier against scikit-learn's StackingClassifier on ../shared/data/gas, same rows,
# same run: accuracy and macro F1 on the time and random splits, fit and predict times
# (docs/BENCHMARKS.md, "Gas classifier"; ~1 min).
.PHONY: bench-gas
bench-gas: bench-build
	@bash bench/gas.sh $(BENCH_BUILD)

.PHONY: bench-gas-windows
bench-gas-windows: bench-build
	@bash bench/gas_windows.sh $(BENCH_BUILD)

# Replays ../shared/data/nab through the detectors, scores it as NAB does, prints it beside the
# published scoreboard and writes NAB-format results to bench/out/nab/ (docs/BENCHMARKS.md).
# Needs none of the benchmark peers, so only the base packages.
bench-nab: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_nab -- --no-print-directory
	@$(BENCH_BUILD)/bench/bench_nab

# The device SDK (sdk/, docs/SDK.md): its core's code size on x86-64 and the time to build and
# sign a reading, with its own SHA-256 and with mbedtls, beside canary's OpenSSL signer.
.PHONY: bench-sdk
bench-sdk: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_sdk bench_sdk_mbedtls -- --no-print-directory
	@bash bench/sdk.sh $(BENCH_BUILD)

# The dashboard in headless Chromium (overview with 1,000 devices, 1,000 updates/s, a chart of
# 100,000 points, each beside a small peer) and what one live-stream client costs HTTP ingest
# (docs/BENCHMARKS.md, "Dashboard"). Needs the base packages only (node, chromium, wrk).
.PHONY: bench-dashboard
bench-dashboard: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target canaryd browser_test_deps -- --no-print-directory
	@bash bench/dashboard.sh $(BENCH_BUILD)

# Compromised devices (canary attack device) against canaryd's tamper checks: every attack kind
# on 64 devices of a signed fleet of 336 for one simulated hour, detection within 10
# readings and false flags on the clean devices (docs/ATTACK.md; ~5 min). Part of
# make bench-security.
.PHONY: bench-security-device
bench-security-device: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target canaryd canary_cli bench_security_device -- --no-print-directory
	@bash bench/security_device.sh $(BENCH_BUILD)

# The tamper checks' false findings over a day: the compromised-device benchmark's clean fleet
# (336 devices, seeds 1 and 2) for 24 simulated hours through tamper_reading() and the
# neighbours check, offline (bench/bench_tamper_day.c; docs/BENCHMARKS.md; ~1.5 min).
.PHONY: bench-tamper-day
bench-tamper-day: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_tamper_day -- --no-print-directory
	@$(BENCH_BUILD)/bench/bench_tamper_day 24 1 2

# The security benchmark (issue 7): a network attacker (canary attack mitm-mqtt and mitm-http)
# against a real canaryd and Mosquitto, one run per attack kind and transport, scored from the
# attacker's ground truth and canaryd's API; then the compromised-device part above when
# bench/security_device.sh is there (docs/BENCHMARKS.md, "Security: network attacker";
# ~4 min plus that part).
.PHONY: bench-security
bench-security: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target canaryd canary_cli bench_security_device -- --no-print-directory
	@bash bench/security.sh $(BENCH_BUILD)

# What a rate-limit check costs (bench/bench_limiter.c; docs/BENCHMARKS.md, "Rate limits"; ~10 s).
.PHONY: bench-limits
bench-limits: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target bench_limiter -- --no-print-directory
	@$(BENCH_BUILD)/bench/bench_limiter

# What access control costs a request: API token, session cookie, admin token and refusals
# against a canaryd without users, and logins end to end (bench/access.sh; docs/BENCHMARKS.md,
# "Access control"; ~1 min).
.PHONY: bench-access
bench-access: deps
	@cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BENCH_BUILD) -j$(JOBS) --target canaryd -- --no-print-directory
	@bash bench/access.sh $(BENCH_BUILD)

# Regenerates the configuration reference from the key table (a test checks they agree).
docs: build
	@$(BUILD)/canaryd --print-config --defaults > etc/canary.conf.example
	@bash scripts/gen-config-doc.sh $(BUILD)/canaryd > docs/CONFIGURATION.md

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	@rm -rf $(BUILD) $(ASAN_BUILD) $(BENCH_BUILD)
