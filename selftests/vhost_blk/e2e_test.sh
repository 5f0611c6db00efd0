#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# End to end: stock QEMU (-device vhost-user-blk-pci) against
# `vhostblk-setup serve`, with a real guest kernel. Needs root, the loaded
# module, VHOSTBLK_SETUP and the images of `make guest`.
#
# A second-level guest boots in about a minute under double emulation, so
# this suite boots two and checks much in each (the guest side is
# guest/e2e.sh):
#   boot 1: the disks' properties; 4 MiB written from each of two CPUs, so on
#           both queues, while the helper's CPU time is watched; a discard; a
#           byte-for-byte read back in the guest and on the backend; a
#           read-only disk that the guest cannot write, on a chardev without
#           reconnect (QEMU 9 and later reset the device at each driver
#           probe: the disk must start on its first connection); then a
#           stream of flushed writes until QEMU is killed with I/O in flight.
#   boot 2: a new QEMU on the same, surviving helper: every block flushed
#           before the kill is intact; the helper is stopped (SIGTERM) and
#           started again under the writing and reading guest, then killed
#           (SIGKILL) and started again three times: the guest sees no
#           error, and every area holds its last generation, none stale;
#           then the disk grows and shrinks under it (online resize).
#           (Live migration is migration_test's.)
# Prints TAP.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
helper=${VHOSTBLK_SETUP:-$top/build/helper/vhostblk-setup}
blkcheck=$top/build/guest/blkcheck
# shellcheck source=selftests/vhost_blk/guest_lib.sh
. "$top/selftests/vhost_blk/guest_lib.sh"

serial=e2e-disk-serial
ro_serial=e2e-ro-serial
mem=384
boot_secs=600
# In the test VM's tmpfs: unix sockets cannot live on 9p, nor loop devices.
work=$(mktemp -d /tmp/e2e.XXXXXX)
n=0
failed=0
rw_pid=
ro_pid=
rw=
image=$work/disk.img

cleanup() {
	for g in "$work"/boot*/; do
		[ -f "$g/pid" ] && guest_kill "$g"
	done
	kill "$rw_pid" "$ro_pid" 2> /dev/null
	wait 2> /dev/null
	[ -n "$rw" ] && losetup -d "$rw"
	rmmod brd 2> /dev/null
	if [ "$failed" -gt 0 ]; then
		sed 's/^/# helper: /' "$work"/helper-*.log 2> /dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# start_helper NAME BACKEND SERVE_OPTION...: serve BACKEND at $work/NAME.sock;
# sets helper_pid.
start_helper() {
	local name=$1 backend=$2
	shift 2
	rm -f "$work/$name.sock"
	"$helper" serve --backend "$backend" --socket "$work/$name.sock" "$@" \
		2>> "$work/helper-$name.log" &
	helper_pid=$!
	wait_socket "$work/$name.sock" && return 0
	kill "$helper_pid" 2> /dev/null
	return 1
}

# qemu_disk NAME [QEMU_ARGS_OPTION...]: the options of the disk served at
# $work/NAME.sock from the helper's qemu-args, without the shared memory (its
# first four words), which guest_start gives every guest.
qemu_disk() {
	local name=$1
	shift
	"$helper" qemu-args --socket "$work/$name.sock" "$@" | cut -d' ' -f5-
}

echo "TAP version 13"

# Read-write disk: a loop device over a file in the test VM's tmpfs, which
# discards by punching holes (brd cannot discard in 6.1). Read-only disk: a
# brd ramdisk holding 16 blocks of generation 7.
[ -e /dev/loop-control ] || modprobe loop
truncate -s 64M "$image"
rw=$(losetup -f --show "$image")
modprobe brd rd_nr=1 rd_size=16384 max_part=0
"$blkcheck" write /dev/ram0 0 16 7
start_helper rw "$rw" --num-queues 2 --serial "$serial"
ok $? "helper serves the read-write disk" || exit 1
rw_pid=$helper_pid
start_helper ro /dev/ram0 --read-only --serial "$ro_serial"
ok $? "helper serves the read-only disk" || exit 1
ro_pid=$helper_pid

# ---------------------------------------------------------------- boot 1
g=$work/boot1
# shellcheck disable=SC2046 # qemu-args prints words
guest_start "$g" "$mem" "e2e.sh first" $(qemu_disk rw --num-queues 2) \
	$(qemu_disk ro --id ro | sed 's/,reconnect-ms=[0-9]*//')
guest_wait "$g" '^IO-START' "$boot_secs"
ok $? "guest boots with two vhost-user-blk disks" "$g" || exit 1
helper_start=$(own_ticks "$rw_pid")
worker_start=$(workers_ticks "$rw_pid")

# 2 x 64 MiB = 131072 sectors; 16 MiB = 32768.
grep -qx "PROPS vda size=131072 lbs=512 ro=0 serial=$serial queues=2" "$g/out"
ok $? "guest sees the read-write disk's size, block size, serial and two queues" "$g"
grep -qx "PROPS vdb size=32768 lbs=512 ro=1 serial=$ro_serial queues=1" "$g/out"
ok $? "guest sees the read-only disk as read-only, with its serial" "$g"
[ "$(grep -c "front-end connected" "$work/helper-ro.log")" = 1 ] &&
	! grep -q "SET_\|GET_\|RESET" "$work/helper-ro.log"
ok $? "the disk without reconnect started on its only connection, no request refused" ||
	sed 's/^/# helper-ro: /' "$work/helper-ro.log"

guest_wait "$g" '^IO-END' 300
ok $? "guest's I/O phase ends" "$g"
helper_used=$(($(own_ticks "$rw_pid") - helper_start))
worker_used=$(($(workers_ticks "$rw_pid") - worker_start))
echo "# during the I/O: helper $helper_used ticks, vhost worker $worker_used ticks"
grep -qx "WRITE-Q0 0" "$g/out" && grep -qx "WRITE-Q1 0" "$g/out"
ok $? "guest writes 4 MiB from each CPU without error" "$g"
[ "$worker_used" -gt 0 ] && [ "$helper_used" -le 2 ]
ok $? "the helper sleeps while the kernel worker serves the I/O" "$g"
grep -qx "DISCARD 0" "$g/out"
ok $? "guest discards 4 MiB" "$g"

first_boot_checks "$g" "$rw"

# Kill QEMU while the guest writes; all blocks flushed before are durable.
guest_wait "$g" '^FLUSHED (6[4-9]|[7-9][0-9]|[0-9]{3,})$' 300
ok $? "guest streams flushed writes" "$g"
guest_kill "$g"
flushed=$(guest_value "$g" FLUSHED)
echo "# QEMU killed after $flushed blocks were flushed"
sleep 1
kill -0 "$rw_pid" 2> /dev/null && kill -0 "$ro_pid" 2> /dev/null
ok $? "both helpers survive QEMU's death"
grep -q "front-end disconnected" "$work/helper-rw.log"
ok $? "the helper saw the disconnect and reset the device"
"$blkcheck" verify "$rw" 4096 "$flushed" 2
ok $? "the backend holds every block flushed before the kill"

# ---------------------------------------------------------------- boot 2
# Only the read-write disk.
g=$work/boot2
# shellcheck disable=SC2046 # qemu-args prints words
guest_start "$g" "$mem" "e2e.sh second $flushed" $(qemu_disk rw --num-queues 2)
guest_wait "$g" '^FLUSHED-INTACT ' "$boot_secs"
ok $? "a new QEMU boots on the same helper" "$g"
grep -qx "FLUSHED-INTACT 0" "$g/out"
ok $? "the new guest reads every block flushed before the kill" "$g"

# restart_helper: serve the read-write disk again, once the last one is gone.
restart_helper() {
	wait "$rw_pid"
	start_helper rw "$rw" --num-queues 2 --serial "$serial" || return 1
	rw_pid=$helper_pid
}

# The helper ends as systemd would restart it: once stopped, then killed
# three times, each right after a round, as the next one is in flight.
guest_wait "$g" '^ROUND 2 ' 300
kill -TERM "$rw_pid"
wait "$rw_pid"
ok $? "helper exits with 0 on SIGTERM under a writing guest"
start_helper rw "$rw" --num-queues 2 --serial "$serial"
ok $? "helper starts again on the same socket"
rw_pid=$helper_pid
kills=0
for r in 5 8 11; do
	guest_wait "$g" "^ROUND $r " 300 || break
	kill -KILL "$rw_pid" && restart_helper || break
	kills=$((kills + 1))
done
[ "$kills" = 3 ]
ok $? "helper killed (SIGKILL) under I/O and started again, three times" "$g"
guest_wait "$g" '^ROUNDS-VERIFY ' 600
ok $? "guest writes its rounds" "$g"
! grep -Eq '^ROUND [0-9]+ .*[^0 ]' "$g/out" && [ "$(grep -c '^ROUND ' "$g/out")" = 16 ]
ok $? "guest saw no I/O error and no bad block while the helper was killed" "$g"
grep -qx "ROUNDS-VERIFY 0" "$g/out"
ok $? "guest reads back every area at its last round's generation" "$g"
[ "$(grep -c "front-end connected" "$work/helper-rw.log")" -ge 6 ]
ok $? "QEMU reconnected to each restarted helper"
"$blkcheck" verify "$rw" 8192 128 15 && "$blkcheck" verify "$rw" 8320 128 16 &&
	"$blkcheck" verify "$rw" 8448 128 17 && "$blkcheck" verify "$rw" 8576 128 18
ok $? "the backend holds every area at its last generation"

# Online resize: the loop device's file grows, then shrinks (losetup -c).
guest_wait "$g" '^RESIZE-WAIT' 120
truncate -s 96M "$image" && losetup -c "$rw"
ok $? "the backend grows from 64 to 96 MiB"
guest_wait "$g" '^GROWN-IO ' 180
grep -qx "GROWN 0" "$g/out" && grep -qx "GROWN-IO 0" "$g/out"
ok $? "guest sees the disk grow and uses the new space" "$g"
"$blkcheck" verify "$rw" 24000 64 20
ok $? "the backend holds what the guest wrote there"
guest_wait "$g" '^SHRINK-WAIT' 120
truncate -s 48M "$image" && losetup -c "$rw"
guest_wait "$g" '^SHRUNK-BELOW ' 180
grep -qx "SHRUNK 0" "$g/out" && grep -qx "SHRUNK-BEYOND 1" "$g/out" &&
	grep -qx "SHRUNK-BELOW 0" "$g/out"
ok $? "guest sees the disk shrink to 48 MiB; a write past the end fails, below it reads" "$g"
[ "$(grep -c "sectors, was" "$work/helper-rw.log")" = 2 ]
ok $? "the helper announced both new sizes to QEMU"

guest_end "$g" 120
ok $? "guest finishes" "$g"
grep -qx "DMESG-ERRORS 0" "$g/out"
ok $? "guest kernel log has no error" "$g"

echo "1..$n"
exit $((failed > 0))
