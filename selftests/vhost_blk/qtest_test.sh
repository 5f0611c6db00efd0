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
# a line per qtest.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
dir=${VHOSTBLK_QEMU_DIR:-$top/build/qemu}
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
echo "1..$n"
exit $((failed > 0))
