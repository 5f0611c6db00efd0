#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Live migration, end to end, for both front-ends at once: one second-level
# guest with a vhost-user-blk-pci disk (vda, served by `vhostblk-setup
# serve`) and a vhost-blk-pci disk (vdb, QEMU's own device of patches/qemu,
# from `vhostblk-setup exec`) migrates live from QEMU to QEMU while it reads
# into buffers of its memory that only the devices write
# (guest/migrate.sh). After each hop the guest checks on the destination
# that every buffer holds what its device read: a page the device wrote
# during the migration and the dirty log missed arrives stale.
#
# The first hop is the control: the guest boots on the module built without
# dirty logging of data pages (vhost_blk_nolog.ko, /dev/vhost-blk-nolog,
# scripts/build-module --control), bind-mounted over /dev/vhost-blk in the
# source's mount namespaces, and that hop must find stale buffers on both
# disks; a test that passed there would prove nothing. The next hops run on
# the real module, one helper per side (the helper of the QEMU that just
# quit serves the next destination), and must find none.
#
# Needs root, the loaded module, VHOSTBLK_SETUP, the images of `make guest`,
# the patched QEMU (VHOSTBLK_QEMU, default build/qemu/) and the control
# module (VHOST_BLK_CONTROL_KO, default build/kmod-control/<kernel>/).
# Prints TAP.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
helper=${VHOSTBLK_SETUP:-$top/build/helper/vhostblk-setup}
qemu=${VHOSTBLK_QEMU:-$top/build/qemu/qemu-system-x86_64}
control_ko=${VHOST_BLK_CONTROL_KO:-$top/build/kmod-control/$(uname -r)/kernel/vhost_blk_nolog.ko}
blkcheck=$top/build/guest/blkcheck
# shellcheck source=selftests/vhost_blk/guest_lib.sh
. "$top/selftests/vhost_blk/guest_lib.sh"

# Hops on the real module after the control's; the issue asks for three.
hops=3
mem=384
boot_secs=600
work=$(mktemp -d /tmp/migration.XXXXXX)
n=0
failed=0
loops=()
helpers=()
control_loaded=

cleanup() {
	local g
	for g in "$work"/g*/; do
		[ -f "$g/pid" ] && guest_kill "$g"
		[ -f "$g/monitor.pid" ] && kill "$(cat "$g/monitor.pid")" 2> /dev/null
	done
	[ ${#helpers[@]} -gt 0 ] && kill "${helpers[@]}" 2> /dev/null
	wait 2> /dev/null
	if [ "$failed" -gt 0 ]; then
		sed 's/^/# helper: /' "$work"/helper-*.log 2> /dev/null
	fi
	[ ${#loops[@]} -gt 0 ] && losetup -d "${loops[@]}"
	[ -n "$control_loaded" ] && rmmod vhost_blk_nolog
	rm -rf "$work"
}
trap cleanup EXIT

echo "TAP version 13"
if [ ! -x "$qemu" ]; then
	echo "1..0 # SKIP no patched QEMU at $qemu (make qemu)"
	exit 0
fi

# quit_guest DIR: quits the guest's QEMU over the monitor (killing it after
# 10 s) and reaps it.
quit_guest() {
	local i
	hmp "$1" quit
	for ((i = 0; i < 100; i++)); do
		guest_running "$1" || break
		sleep 0.1
	done
	guest_kill "$1"
}

# control_ns COMMAND...: runs COMMAND with the control module's device
# as /dev/vhost-blk, in a mount namespace of its own.
control_ns=(unshare -m -- sh -c
	'mount --bind /dev/vhost-blk-nolog /dev/vhost-blk && exec "$@"' control-ns)

# start_helper NAME CONTROL SERVE_OPTION...: serves the vhost-user disk at
# $work/NAME.sock (on the control module when CONTROL is "control").
start_helper() {
	local name=$1 wrap=()
	[ "$2" = control ] && wrap=("${control_ns[@]}")
	shift 2
	"${wrap[@]}" "$helper" serve --backend "${loops[0]}" --socket "$work/$name.sock" \
		--num-queues 2 --serial mig-vu "$@" 2>> "$work/helper-$name.log" &
	helpers+=($!)
	wait_socket "$work/$name.sock"
}

# start_guest DIR SOCKET_NAME CONTROL [QEMU_ARG...]: a guest whose vda is the
# vhost-user disk served at $work/SOCKET_NAME.sock and vdb the vhost-blk-pci
# disk, both backends shared with the other side of a migration; on the
# control module when CONTROL is "control".
start_guest() {
	local dir=$1 sock=$2 control=$3
	shift 3
	GUEST_WRAP=("$helper" exec --shared --backend "${loops[1]}" --)
	[ "$control" = control ] && GUEST_WRAP=("${control_ns[@]}" "${GUEST_WRAP[@]}")
	mkdir -p "$dir"
	# shellcheck disable=SC2046 # qemu-args and monitor_start print words
	guest_start "$dir" "$mem" "migrate.sh $((hops + 1)) vda vdb" \
		$("$helper" qemu-args --socket "$work/$sock.sock" --num-queues 2 --id vhostblk0 --no-mem) \
		-device "vhost-blk-pci,addr=0x8,vhostfd=%v,backendfd=%b,num-queues=2,serial=mig-pci" \
		$(monitor_start "$dir") "$@"
}

# hop FROM TO SOCKET_NAME HOP: migrates the live guest FROM to a new QEMU TO
# on the real module, served at $work/SOCKET_NAME.sock; then writes the hop's
# marker on both backends and quits the source. Two TAP lines: the migration
# and the guest's report on each disk are the caller's.
hop() {
	local from=$1 to=$2 sock=$3 hop=$4 loop
	rm -f "$work/migration.sock"
	start_guest "$to" "$sock" real -incoming "unix:$work/migration.sock"
	wait_socket "$work/migration.sock" 60
	guest_wait "$from" "^MIGRATE-READY $hop\$" 300
	ok $? "hop $hop: the guest reads on both disks" "$from" || return 1
	migrate_guest "$from" "$work/migration.sock"
	ok $? "hop $hop: QEMU migrates the running guest" "$from" || return 1
	# The guest runs on the destination now: tell it the hop is over.
	for loop in "${loops[@]}"; do
		"$blkcheck" write "$loop" $((12287 - hop)) 1 1
	done
	quit_guest "$from"
	guest_wait "$to" "^MIGRATE-VERIFY $hop vdb " 300
	ok $? "hop $hop: the guest checks its buffers on the destination" "$to"
}

# verified DIR HOP DISK: the guest found every buffer of DISK intact.
verified() {
	grep -qx "MIGRATE-VERIFY $2 $3 0" "$1/out"
}

# stale DIR HOP DISK: the guest found stale buffers of DISK (not an I/O
# error: blkcheck counted them).
stale() {
	grep -Eq "^MIGRATE $2 $3 migrate: [0-9]+ passes, [1-9][0-9]* of " "$1/out" &&
		grep -qx "MIGRATE-VERIFY $2 $3 1" "$1/out"
}

# report DIR HOP: blkcheck's summary lines of the hop, as TAP comments.
report() {
	grep -E "^MIGRATE $2 " "$1/out" | sed 's/^/# /'
}

# Two 64 MiB loop devices over files in the test VM's tmpfs: vda's, vdb's.
[ -e /dev/loop-control ] || modprobe loop
for disk in vu pci; do
	truncate -s 64M "$work/$disk.img"
	loops+=("$(losetup -f --show "$work/$disk.img")")
done

insmod "$control_ko" && control_loaded=1
for ((i = 0; i < 50; i++)); do
	[ -c /dev/vhost-blk-nolog ] && break
	sleep 0.1
done
[ -c /dev/vhost-blk-nolog ]
ok $? "the control module (no dirty logging of data pages) loads beside vhost_blk" || exit 1
base=$(cat /sys/module/vhost_blk/refcnt)

# Helpers on the real module: a (holds the backend exclusively), b.
start_helper a real && start_helper b real --shared && start_helper c control --shared
ok $? "three helpers serve the vhost-user disk, one of them on the control module" || exit 1

# ------------------------------------------------- the control's hop: 0
GUEST_QEMU=$qemu
start_guest "$work/g0" c control
guest_wait "$work/g0" '^MIGRATE-READY 0$' "$boot_secs"
ok $? "a guest boots on the control module with a vhost-user and a vhost-blk-pci disk" \
	"$work/g0" || exit 1
wait_refcnt vhost_blk_nolog 2 && [ "$(cat /sys/module/vhost_blk/refcnt)" = "$base" ]
ok $? "both disks of the source run on the control module"

hop "$work/g0" "$work/g1" a 0 || exit 1
report "$work/g1" 0
stale "$work/g1" 0 vda
ok $? "control: without the log the vhost-user disk's buffers arrive stale, so the test can fail" \
	"$work/g1"
stale "$work/g1" 0 vdb
ok $? "control: without the log the vhost-blk-pci disk's buffers arrive stale, so the test can fail" \
	"$work/g1"
wait_refcnt vhost_blk_nolog 0
ok $? "the control module's devices go with the source"

# ------------------------------------------- hops on the real module
from=$work/g1
for ((h = 1; h <= hops; h++)); do
	sock=b
	[ $((h % 2)) = 0 ] && sock=a
	to=$work/g$((h + 1))
	hop "$from" "$to" "$sock" "$h" || exit 1
	report "$to" "$h"
	verified "$to" "$h" vda
	ok $? "hop $h: every buffer the vhost-user disk's device wrote during the migration arrived" "$to"
	verified "$to" "$h" vdb
	ok $? "hop $h: every buffer the vhost-blk-pci disk's device wrote during the migration arrived" "$to"
	from=$to
done

guest_end "$from" 120
ok $? "the guest finishes on its last destination" "$from"
grep -qx "DMESG-ERRORS 0" "$from/out"
ok $? "guest kernel log has no error after $((hops + 1)) migrations" "$from"
for name in a b; do
	[ "$(grep -c "front-end connected" "$work/helper-$name.log")" -ge 2 ] || break
done
ok $? "both helpers on the real module served a destination, then a source"
kill "${helpers[@]}" 2> /dev/null
wait "${helpers[@]}" 2> /dev/null
helpers=()
wait_refcnt vhost_blk "$base"
ok $? "no device is left in the module"

echo "1..$n"
exit $((failed > 0))
