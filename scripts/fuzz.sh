#!/usr/bin/env bash
# Builds every libFuzzer target in tests/fuzz with clang
# (-fsanitize=fuzzer,address,undefined) and runs each for FUZZ_SECONDS
# (default 20) from the seeds in tests/data/google/samples (the project's
# own Google-shaped fixtures). Exit non-zero on
# any crash. Needs a configured build tree (for the generated protobuf-c).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-20}
if ! command -v clang-14 >/dev/null; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null
fi
[ -f build/proto/ipc.pb-c.c ] || { cmake -S . -B build >/dev/null; cmake --build build --target arproto >/dev/null; }
OUT=build/fuzz
mkdir -p "$OUT"
CFLAGS=(-std=gnu11 -D_GNU_SOURCE -DAR_VERSION=\"fuzz\" -g -O1
	-fsanitize=fuzzer,address,undefined -I. -Ibuild/proto
	$(pkg-config --cflags libevent yajl libgcrypt libprotobuf-c))
LIBS=($(pkg-config --libs libevent yajl libgcrypt libprotobuf-c) -lm)
declare -A SRCS=(
	[fuzz_normalize]="lib/json.c lib/normalize.c lib/util.c"
	[fuzz_pkcs8]="lib/crypto.c lib/pkcs8.c lib/jwt.c lib/webhook.c lib/json.c lib/util.c"
	[fuzz_ipc]="lib/ipc.c lib/config.c lib/util.c build/proto/ipc.pb-c.c"
)
status=0
for t in "${!SRCS[@]}"; do
	[ -f "tests/fuzz/$t.c" ] || continue
	echo "fuzz: building $t"
	clang-14 "${CFLAGS[@]}" "tests/fuzz/$t.c" ${SRCS[$t]} "${LIBS[@]}" -o "$OUT/$t"
	mkdir -p "$OUT/corpus-$t"
	echo "fuzz: running $t for ${SECS}s"
	if ! "$OUT/$t" -max_total_time="$SECS" -print_final_stats=1 "$OUT/corpus-$t" \
		tests/data/google/samples >"$OUT/$t.log" 2>&1; then
		echo "fuzz: $t FAILED"; tail -40 "$OUT/$t.log"; status=1
	else
		grep -E "stat::number_of_executed_units" "$OUT/$t.log" | sed "s/^/fuzz: $t /"
	fi
done
exit $status
