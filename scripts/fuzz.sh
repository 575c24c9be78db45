#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for FUZZ_SECONDS
# (default 30) from its seeds (tests/fuzz/seeds/<name>, plus the Google
# samples of tests/data/google for the normalizer). Exits non-zero on any
# crash; the crashing input is left in build/fuzz/<target>/ (turn it into
# a unit test). Needs a configured build tree (for the generated
# protobuf-c). FUZZ_TARGETS="fuzz_url fuzz_redact" runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
CC=clang-14
if ! command -v $CC >/dev/null; then
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
fi
[ -f build/proto/ipc.pb-c.c ] || { cmake -S . -B build >/dev/null; cmake --build build --target arproto >/dev/null; }
OUT=build/fuzz
mkdir -p "$OUT/obj"
PKGS="libevent libcurl yajl libmongoc-1.0 libgcrypt libcrypto libprotobuf-c libsystemd"
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -DAR_VERSION=\"fuzz\" -DAR_LIBEXECDIR=\"/nonexistent\"
	-DAR_SYSCONFDIR=\"/nonexistent\" -g -O1 -fno-omit-frame-pointer
	-I. -Ibuild/proto $(pkg-config --cflags $PKGS))
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
LIBS=($(pkg-config --libs $PKGS) -lm -lpthread)

# The library code once, instrumented for coverage, into one archive.
objs=()
for src in lib/*/*.c apid/validate.c build/proto/ipc.pb-c.c; do
	o="$OUT/obj/$(echo "$src" | tr / _).o"
	if [ ! -f "$o" ] || [ "$src" -nt "$o" ]; then
		$CC "${CFLAGS[@]}" "${SAN[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$o"
	fi
	objs+=("$o")
done
rm -f "$OUT/libfuzzar.a"
ar rcs "$OUT/libfuzzar.a" "${objs[@]}"

targets=${FUZZ_TARGETS:-$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')}
status=0
for t in $targets; do
	echo "fuzz: building $t"
	$CC "${CFLAGS[@]}" "${SAN[@]}" -fsanitize=fuzzer "tests/fuzz/$t.c" \
		"$OUT/libfuzzar.a" "${LIBS[@]}" -o "$OUT/$t"
	name=${t#fuzz_}
	corpus="$OUT/corpus-$t"
	mkdir -p "$corpus" "$OUT/$t.artifacts"
	seeds=()
	[ -d "tests/fuzz/seeds/$name" ] && seeds+=("tests/fuzz/seeds/$name")
	[ "$name" = normalize ] && seeds+=(tests/data/google/samples)
	echo "fuzz: running $t for ${SECS}s"
	if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
		"$OUT/$t" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
		-max_len=262144 -print_final_stats=1 \
		-artifact_prefix="$OUT/$t.artifacts/" "$corpus" "${seeds[@]}" \
		>"$OUT/$t.log" 2>&1; then
		echo "fuzz: $t FAILED (inputs in $OUT/$t.artifacts/)"
		tail -40 "$OUT/$t.log"
		status=1
	else
		grep -E "stat::number_of_executed_units" "$OUT/$t.log" | sed "s/^/fuzz: $t /"
	fi
done
exit $status
