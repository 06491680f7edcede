#!/usr/bin/env bash
# sdk.sh BUILD_DIR — what the device SDK (sdk/) costs: the code size of its core objects on
# x86-64 (-Os as firmware is usually built, and -O2), and the time per reading and per
# signature (bench_sdk with the SDK's own SHA-256, bench_sdk_mbedtls with mbedtls), beside
# canary's OpenSSL signer. docs/SDK.md and docs/BENCHMARKS.md record the output.
set -euo pipefail
build=${1:-build-release}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cc=${CC:-cc}
tmp=$(mktemp -d /tmp/canary-bench-sdk-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "device SDK cost: $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $($cc --version | head -1)"
echo
printf '%-44s %8s %8s\n' "code size on x86-64 (size: text+data, bytes)" "-Os" "-O2"
obj_size() { # flags... file -> text+data of the object
    "$cc" -std=c99 -c "$@" -o "$tmp/o.o" && size "$tmp/o.o" | awk 'NR==2 {print $1 + $2}'
}
row() { # label, then the compile arguments
    local label=$1; shift
    printf '%-44s %8s %8s\n' "$label" "$(obj_size -Os "$@")" "$(obj_size -O2 "$@")"
}
row "canary_device.c (readings, base64url, JWS)" "$root/sdk/canary_device.c"
row "canary_seq.c (seq blocks)" "$root/sdk/canary_seq.c"
row "canary_sha256.c, built-in SHA-256 + HMAC" "$root/sdk/canary_sha256.c"
row "canary_sha256.c, CDEV_USE_MBEDTLS (glue)" -DCDEV_USE_MBEDTLS "$root/sdk/canary_sha256.c"
total_os=0; total_o2=0
for f in canary_device canary_seq canary_sha256; do
    total_os=$((total_os + $(obj_size -Os "$root/sdk/$f.c")))
    total_o2=$((total_o2 + $(obj_size -O2 "$root/sdk/$f.c")))
done
printf '%-44s %8s %8s\n' "the core, built-in crypto" "$total_os" "$total_o2"
echo
"$root/$build/bench/bench_sdk"
echo
"$root/$build/bench/bench_sdk_mbedtls"
