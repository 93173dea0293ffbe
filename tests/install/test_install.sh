#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-only
# Install the build tree into a scratch prefix, then build and run a consumer
# against it with find_package(evpl) and with pkg-config.
# usage: test_install.sh <build-dir> <source-dir>
set -eu
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*)
test -e "$libdir/libevpl.so.0" || { echo "FAIL: no versioned SONAME libevpl.so.0"; exit 1; }
test -f "$tmp/prefix/include/evpl/evpl.h" || { echo "FAIL: headers not installed"; exit 1; }

# the sanitizer runtime (when the library was built with one) need not come first
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0:detect_leaks=0"
export LD_LIBRARY_PATH="$libdir"

cmake -S "$src/tests/install/consumer" -B "$tmp/cmake" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cmake" >/dev/null
"$tmp/cmake/consumer"
"$tmp/cmake/http_consumer"
"$tmp/cmake/rpc2_consumer"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -o "$tmp/pc-consumer" "$src/tests/install/consumer/main.c" $(pkg-config --cflags --libs evpl)
"$tmp/pc-consumer"
cc -o "$tmp/pc-http" "$src/tests/install/consumer/http.c" $(pkg-config --cflags --libs evpl_http)
"$tmp/pc-http"
# the installed generator and pkg-config evpl_rpc2
"$tmp/prefix/bin/xdrzcc" "$src/tests/install/consumer/rpc2.x" "$tmp/rpc2_xdr.c" "$tmp/rpc2_xdr.h"
cc -I"$tmp" -o "$tmp/pc-rpc2" "$src/tests/install/consumer/rpc2.c" "$tmp/rpc2_xdr.c" \
    $(pkg-config --cflags --libs evpl_rpc2)
"$tmp/pc-rpc2"

# C++ applications include the same headers
c++ -std=c++17 -Wall -Wextra -Werror -o "$tmp/cxx-consumer" "$src/tests/install/consumer/main.cpp" \
    $(pkg-config --cflags --libs evpl)
"$tmp/cxx-consumer"
# every public header compiles alone under each language mode a consumer
# may use, with warnings as errors
printf '#include <evpl/evpl.h>\n#include <evpl/evpl_http.h>\n#include <evpl/evpl_rpc2.h>\nint main(void) { return 0; }\n' \
    > "$tmp/modes.c"
for std in c99 gnu99 c11 gnu11 c17; do
    cc -std=$std -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
        -c -o "$tmp/modes.o" "$tmp/modes.c" $(pkg-config --cflags evpl_http evpl_rpc2) ||
        { echo "FAIL: headers under -std=$std"; exit 1; }
done
for std in c++11 c++14 c++17 c++20; do
    c++ -x c++ -std=$std -Wall -Wextra -Werror -c -o "$tmp/modes.o" "$tmp/modes.c" \
        $(pkg-config --cflags evpl_http evpl_rpc2) ||
        { echo "FAIL: headers under -std=$std"; exit 1; }
done
echo "PASS: find_package and pkg-config consumers built and ran; headers clean in C99-C17, C++11-20"
