#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The qtests of the vhost-blk-pci series (patches/qemu, patch 5:
# tests/qtest/vhost-blk-test.c in QEMU's qos graph), run against the
# patched QEMU of `make qemu` and the loaded module: I/O, GET_ID, read-only,
# two queues, a queue per vCPU, hot-plug and unplug, each compared byte for
# byte with the block device, a loop device over a scratch file; and online
# resize, the file grown and shrunk under a running and a not yet started
# device, with device-sync-config. Needs
# root, the loaded module and build/qemu/ (VHOSTBLK_QEMU_DIR). Prints TAP,
# a line per qtest. Then the device's poll-us, which no qtest can see: the
# busy-poll time the module reports for each queue of a device QEMU
# realized (vhostblk-setup list --json, VHOSTBLK_SETUP or the build's),
# and the value refused beyond a second.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${VHOSTBLK_QEMU_DIR:-$top/build/qemu}
helper=${VHOSTBLK_SETUP:-$top/build/helper/vhostblk-setup}
qos=$dir/qos-test
work=$(mktemp -d /tmp/qtest.XXXXXX)
loop=

cleanup() {
	[ -n "$loop" ] && losetup -d "$loop"
	rm -rf "$work"
}
trap cleanup EXIT

if [ ! -x "$qos" ] || [ ! -x "$dir/qemu-system-x86_64" ]; then
	echo "TAP version 13"
	echo "1..0 # SKIP no patched QEMU and qos-test in $dir (make qemu)"
	exit 0
fi
[ -e /dev/loop-control ] || modprobe loop
truncate -s 16M "$work/disk.img"
loop=$(losetup -f --show "$work/disk.img") || exit 1

export QTEST_QEMU_BINARY=$dir/qemu-system-x86_64 QTEST_VHOST_BLK_BACKEND=$loop
export QTEST_VHOST_BLK_BACKEND_FILE=$work/disk.img
echo "TAP version 13"
# One qos-test process per test: a failed assertion aborts the process, and
# the other tests still run. (GLib 2.74 runs a -p path only when it names a
# test exactly.)
# (No process substitution: the test VM has no /dev/fd.)
list=$("$qos" -l | grep '/vhost-blk')
paths=()
[ -n "$list" ] && mapfile -t paths <<< "$list"
n=0
failed=0
for p in "${paths[@]}"; do
	n=$((n + 1))
	if out=$(timeout 120 "$qos" -p "$p" 2>&1); then
		echo "ok $n ${p##*/vhost-blk-pci/}"
	else
		echo "not ok $n ${p##*/vhost-blk-pci/}"
		failed=$((failed + 1))
		grep -v '^# \(Start\|End\) of' <<< "$out" | tail -n 20 | sed 's/^/# /'
	fi
done
# qos-test lists eight vhost-blk tests; fewer means the series or the graph
# lost some.
n=$((n + 1))
if [ ${#paths[@]} -eq 8 ]; then
	echo "ok $n qos-test lists the 8 vhost-blk tests"
else
	echo "not ok $n qos-test lists the 8 vhost-blk tests (${#paths[@]})"
	failed=$((failed + 1))
fi

# poll_us PROPS: QEMU (not started, -S) with a two-queue vhost-blk-pci of
# PROPS realized; prints the poll_us of its module device, owned by that
# QEMU, as list --json has it, or what went wrong.
poll_us() {
	local out='' qemu_pid
	"$dir/qemu-system-x86_64" -machine q35,accel=tcg -m 256M -S -display none \
		-nodefaults -device "vhost-blk-pci,backend-path=$loop,num-queues=2${1:-}" \
		2> "$work/qemu.err" &
	qemu_pid=$!
	for _ in $(seq 600); do
		out=$("$helper" list --json | python3 -c '
import json, sys
for d in json.load(sys.stdin):
    if d["owner_pid"] == int(sys.argv[1]) and d["poll_us"]:
        print(d["poll_us"])
' "$qemu_pid")
		[ -n "$out" ] && break
		kill -0 "$qemu_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$qemu_pid" 2>/dev/null
	wait "$qemu_pid"
	echo "${out:-no device of that QEMU: $(head -c 300 "$work/qemu.err" | tr '\n' ' ')}"
}
# check DESC WANT GOT
check() {
	n=$((n + 1))
	if [ "$3" = "$2" ]; then
		echo "ok $n $1"
	else
		echo "not ok $n $1"
		echo "# got: $3"
		failed=$((failed + 1))
	fi
}
check "poll-us=50 gives each queue 50 us of busy polling" "[50, 50]" "$(poll_us ,poll-us=50)"
check "without poll-us no queue polls" "[0, 0]" "$(poll_us)"
"$dir/qemu-system-x86_64" -machine q35,accel=tcg -S -display none -nodefaults \
	-device "vhost-blk-pci,backend-path=$loop,poll-us=1000001" > /dev/null 2> "$work/qemu.err"
rc=$?
check "poll-us above a second is refused at realize" \
	"1 poll-us must be at most 1000000 (one second)" \
	"$rc $(grep -o 'poll-us must be .*' "$work/qemu.err")"

echo "1..$n"
exit $((failed > 0))
