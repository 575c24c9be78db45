#!/usr/bin/env bash
# Installs what auditrelay needs to build, test and run its demo on a fresh
# Debian bookworm machine (run as root; a no-op when everything is there).
set -euo pipefail

PKGS=(
	build-essential cmake pkg-config git ca-certificates curl
	libevent-dev libcurl4-openssl-dev libyajl-dev libmongoc-dev libbson-dev
	libgcrypt20-dev libssl-dev libprotobuf-c-dev protobuf-c-compiler libsystemd-dev
	libcmocka-dev python3 python3-pymongo python3-cryptography openssl golang-go
	prometheus jq clang-format
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing+=("$p")
done
# Go may come from elsewhere (/usr/local/go): only install it when absent.
if command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
	tmp=()
	for p in "${missing[@]}"; do [ "$p" = golang-go ] || tmp+=("$p"); done
	missing=("${tmp[@]+"${tmp[@]}"}")
fi
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup: installing ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all build and test dependencies present"
