#!/bin/sh
# The shipped alert rules: valid (promtool check rules), their unit tests
# pass (promtool test rules), and every metric they use is one that
# apid/metrics.c exports. Run by ctest as unit.prometheus_rules.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
rules=$top/packaging/prometheus/auditrelay.rules.yml
promtool check rules "$rules"
cd "$top/tests/prometheus"
promtool test rules auditrelay.rules.test.yml
missing=0
for m in $(grep -o 'auditrelay_[a-z_]*' "$rules" | sort -u); do
	grep -q "\"$m\"" "$top/apid/metrics.c" || {
		echo "prometheus: $m is used by the rules but apid/metrics.c does not export it" >&2
		missing=1
	}
done
[ "$missing" -eq 0 ]
echo "prometheus: rules valid, tested, every metric exported"
