#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Install the Debian 12 packages the build, tests and benchmarks need.
# Idempotent: a quick no-op when everything is present.
set -eu

PKGS="build-essential cmake pkg-config clang clang-format libssl-dev openssl curl liburing-dev libaio-dev fio time strace librdmacm-dev libibverbs-dev ibverbs-providers libuv1-dev sockperf iperf3 gnuplot-nox python3 libnghttp2-dev nghttp2-client nghttp2-server uthash-dev libtirpc-dev"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing
