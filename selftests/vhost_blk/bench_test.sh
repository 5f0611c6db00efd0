#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The benchmark driver's bare mode (build/bench/vhostblk-bench --bare, the
# reference of `make bench`), as a function, never as a speed: on a loop
# device it must complete, print the JSON of the virtio modes (the same
# keys), and have done the I/O it counts on that device (the block layer's
# own sector counts); bad input must fail with one line. Needs root,
# /dev/vhost-blk (for the --device run whose keys are compared) and jq.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
bench=${VHOSTBLK_BENCH:-$top/build/bench/vhostblk-bench}
n=0
failed=0

# ok STATUS DESC: one TAP line for a status; the status again.
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n $2"
		return 0
	fi
	echo "not ok $n $2"
	failed=$((failed + 1))
	return 1
}

# skip DESC REASON: a test that cannot run here.
skip() {
	n=$((n + 1))
	echo "ok $n $1 # SKIP $2"
}

# show FILE: a file's lines as TAP comments.
show() {
	sed 's/^/# /' "$1"
}

# check_fail DESC STATUS STDERR_REGEX ARGS...: vhostblk-bench ARGS exits
# with STATUS, prints nothing on stdout and one line on stderr, matching.
check_fail() {
	local desc=$1 want=$2 re=$3 rc
	shift 3
	"$bench" "$@" > "$work/out" 2> "$work/err"
	rc=$?
	[ "$rc" -eq "$want" ] && [ ! -s "$work/out" ] &&
		[ "$(wc -l < "$work/err")" -eq 1 ] && grep -qE "$re" "$work/err"
	ok $? "$desc" || { echo "# status $rc (want $want)"; show "$work/err"; show "$work/out"; }
}

# sectors DEV RW: the sectors the block layer has read (RW read) or
# written (write) on DEV so far.
sectors() {
	local f
	read -ra f < "/sys/block/${1#/dev/}/stat"
	if [ "$2" = read ]; then echo "${f[2]}"; else echo "${f[6]}"; fi
}

work=$(mktemp -d /tmp/bench_test.XXXXXX)
truncate -s 64M "$work/disk.img"
truncate -s 1M "$work/plain"
[ -e /dev/loop-control ] || modprobe loop
loop=$(losetup -f --show "$work/disk.img")
loop4k=$(losetup -f --show --sector-size 4096 "$work/disk.img")
io_uring_disabled=
cleanup() {
	[ -n "$io_uring_disabled" ] && sysctl -qw kernel.io_uring_disabled="$io_uring_disabled"
	losetup -d "$loop" "$loop4k"
	rm -rf "$work"
}
trap cleanup EXIT

keys='["cpu_daemon_s","cpu_device_s","cpu_driver_s","dev_interrupts","dev_kicks","dev_polled","dev_requests","dev_used_batches","ios","iops","lat_mean_us","lat_p99_us","mib_s","seconds","workers"]'

# run_bare DESC RW BS ARGS...: a one-second --bare run of BS-byte I/O on
# the loop device: it
# must exit 0 with one JSON object of the expected keys, ios > 0, no device
# side (cpu_device_s 0, cpu_daemon_s and dev_* null, no worker), and the
# loop device must have moved at least ios blocks in that direction.
run_bare() {
	local desc=$1 rw=$2 bs=$3 dir=read before after
	shift 3
	[[ $rw == *write ]] && dir="write"
	before=$(sectors "$loop" "$dir")
	"$bench" --bare "$loop" --rw "$rw" --bs "$bs" --seconds 1 "$@" > "$work/out" 2> "$work/err"
	ok $? "$desc: exits 0" || show "$work/err"
	after=$(sectors "$loop" "$dir")
	jq -e --argjson keys "$keys" 'keys == ($keys | sort)' "$work/out" > /dev/null
	ok $? "$desc: the JSON has the virtio modes' keys" || show "$work/out"
	jq -e '.ios > 0 and .iops > 0 and .lat_mean_us > 0 and .cpu_driver_s >= 0' \
		"$work/out" > /dev/null
	ok $? "$desc: did I/O (ios > 0)" || show "$work/out"
	jq -e '.cpu_device_s == 0 and .cpu_daemon_s == null and .workers == 0 and
		.dev_requests == null and .dev_used_batches == null and
		.dev_interrupts == null and .dev_kicks == null and .dev_polled == null' \
		"$work/out" > /dev/null
	ok $? "$desc: no device side (cpu_device_s 0, daemon and dev_* null)" ||
		show "$work/out"
	local ios
	ios=$(jq .ios "$work/out" 2> /dev/null)
	[ -n "$ios" ] && [ $((after - before)) -ge $((ios * bs / 512)) ] && [ "$ios" -gt 0 ]
	ok $? "$desc: the device ${dir}s what it counts" ||
		echo "# $((after - before)) sectors ${dir}, ${ios:-?} I/Os of $bs bytes"
}

run_bare "randread 4k depth 16" randread 4096 --depth 16
run_bare "randwrite 4k depth 1" randwrite 4096
run_bare "read 64k depth 128, 2 queues" read 65536 --depth 128 --queues 2

# The same keys from the virtio mode it stands beside in the tables.
if [ -c /dev/vhost-blk ]; then
	"$bench" --device "$loop" --rw randread --depth 4 --seconds 1 > "$work/dev.out" 2>&1 &&
		jq -e --argjson keys "$keys" 'keys == ($keys | sort) and .ios > 0' "$work/dev.out" > /dev/null
	ok $? "--device prints the same keys as --bare" || show "$work/dev.out"
	"$bench" --device "$loop" --poll-us 50 --rw randwrite --seconds 1 > "$work/poll.out" 2>&1 &&
		jq -e '.ios > 0 and .dev_requests == .ios and .dev_polled == 0' \
			"$work/poll.out" > /dev/null
	ok $? "--device --poll-us 50: the polling device serves every request, none polled on a loop device" ||
		show "$work/poll.out"
else
	skip "--device prints the same keys as --bare" "no /dev/vhost-blk"
	skip "--device --poll-us 50: the polling device serves every request, none polled on a loop device" "no /dev/vhost-blk"
fi

check_fail "--bare on a regular file: not a block device" 1 \
	"^vhostblk-bench: $work/plain: not a block device$" --bare "$work/plain" --seconds 1
check_fail "--bare on a missing path" 1 \
	"^vhostblk-bench: $work/missing: open: No such file or directory$" \
	--bare "$work/missing" --seconds 1
check_fail "--bare with --device" 2 \
	"^vhostblk-bench: --device, --vhost-user and --bare exclude each other$" \
	--bare "$loop" --device "$loop"
check_fail "--bare with --vhost-user" 2 \
	"^vhostblk-bench: --device, --vhost-user and --bare exclude each other$" \
	--bare "$loop" --vhost-user "$work/sock"
check_fail "no device at all" 2 "^vhostblk-bench: no device: " --rw randread
check_fail "--bare with --watch" 2 "^vhostblk-bench: --watch: not with --bare" \
	--bare "$loop" --watch 1
check_fail "--bare with --queue-workers" 2 "^vhostblk-bench: --queue-workers: only with --device" \
	--bare "$loop" --queue-workers
check_fail "--poll-us with --bare" 2 "^vhostblk-bench: --poll-us: only with --device" \
	--bare "$loop" --poll-us 50
check_fail "--poll-us past a second" 2 \
	"^vhostblk-bench: --poll-us: '1000001' is not a number from 0 to 1000000$" \
	--device "$loop" --poll-us 1000001
check_fail "--bs below the device's logical block" 1 \
	"^vhostblk-bench: $loop4k: --bs 512 is not a multiple of its 4096-byte logical blocks$" \
	--bare "$loop4k" --bs 512 --seconds 1

# io_uring refused (kernel.io_uring_disabled, Linux 6.6): the setup's error.
if [ -w /proc/sys/kernel/io_uring_disabled ]; then
	io_uring_disabled=$(cat /proc/sys/kernel/io_uring_disabled)
	sysctl -qw kernel.io_uring_disabled=2
	check_fail "io_uring disabled: the setup says so" 1 \
		"^vhostblk-bench: $loop: io_uring_queue_init: Operation not permitted$" \
		--bare "$loop" --seconds 1
	sysctl -qw kernel.io_uring_disabled="$io_uring_disabled"
	io_uring_disabled=
else
	# Not a test here: a skip counts as a failure in make check.
	echo "# io_uring disabled: not checked, no kernel.io_uring_disabled before 6.6"
fi

# The plan last: TAP allows it, and the count is known only now.
echo "1..$n"
exit $((failed > 0))
