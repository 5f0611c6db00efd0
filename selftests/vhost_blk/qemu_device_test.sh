#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# End to end with QEMU's own vhost-blk-pci device (patches/qemu, built by
# `make qemu`): QEMU drives /dev/vhost-blk itself, with the descriptors that
# `vhostblk-setup exec` and `send-fds` hand it, and a real guest kernel.
# Needs root, the loaded module, VHOSTBLK_SETUP, the images of `make guest`
# and the patched QEMU (VHOSTBLK_QEMU, default build/qemu/).
#
# First the device's property checks: every bad combination must stop QEMU
# at start with a message naming the property, and leave no device behind.
# Then two second-level guests, with private (not shared) guest RAM:
#   boot 1: two disks from `exec` (read-write on two queues, read-only), the
#           same checks as the vhost-user suite's first boot (guest/e2e.sh
#           first): properties, I/O on both queues served by the module's
#           worker, discard, byte-for-byte read back, the read-only disk;
#           then QEMU is killed under flushed writes, and every flushed block
#           is on the backend and no device is left in the module.
#   boot 2: a disk from `exec` kept busy by the guest while a second disk
#           is hot-plugged over QMP (send-fds --device-add), used and
#           unplugged (device_del); the module's device count follows.
#           Then the disk grows from 64 to 96 MiB, which device-sync-config
#           passes on to the guest, and shrinks back while the VM is paused
#           (the command is refused on the stopped device, and the device
#           reads the config again when the VM runs). Then the guest, on private RAM as QEMU gives it by default,
#           migrates live to a second QEMU while it reads into buffers of its
#           memory, which must hold on the destination what the device wrote
#           during the migration (migration_test has the control, several
#           hops, and both front-ends on shared RAM).
# Prints TAP.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
helper=${VHOSTBLK_SETUP:-$top/build/helper/vhostblk-setup}
qemu=${VHOSTBLK_QEMU:-$top/build/qemu/qemu-system-x86_64}
blkcheck=$top/build/guest/blkcheck
# shellcheck source=selftests/vhost_blk/guest_lib.sh
. "$top/selftests/vhost_blk/guest_lib.sh"

serial=qd-disk-serial
ro_serial=qd-ro-serial
mem=384
boot_secs=600
refcnt=/sys/module/vhost_blk/refcnt
work=$(mktemp -d /tmp/qemu-device.XXXXXX)
n=0
failed=0
rw=
image=$work/disk.img

cleanup() {
	for g in "$work"/boot*/; do
		[ -f "$g/pid" ] && guest_kill "$g"
		[ -f "$g/monitor.pid" ] && kill "$(cat "$g/monitor.pid")" 2> /dev/null
	done
	wait 2> /dev/null
	[ -n "$rw" ] && losetup -d "$rw"
	rmmod brd 2> /dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "TAP version 13"
if [ ! -x "$qemu" ]; then
	echo "1..0 # SKIP no patched QEMU at $qemu (make qemu)"
	exit 0
fi

# The devices open in the module: one per /dev/vhost-blk file.
devices() { cat "$refcnt"; }

# wait_devices COUNT: waits up to 30 s for the module to hold COUNT devices.
wait_devices() { wait_refcnt vhost_blk "$1"; }

# qmp SOCKET COMMAND...: sends each JSON command to QEMU's QMP socket, in
# order, and prints each reply (events left out) on a line of its own.
qmp() {
	timeout 120 /usr/bin/python3 - "$@" <<'PY'
import json, socket, sys

sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
f = sock.makefile("rw")

def reply():
    while True:
        line = f.readline()
        if not line:
            sys.exit("qmp: QEMU closed the connection")
        msg = json.loads(line)
        if "return" in msg or "error" in msg:
            return msg

f.readline()  # the greeting
for i, cmd in enumerate(['{"execute": "qmp_capabilities"}'] + sys.argv[2:]):
    f.write(cmd + "\n")
    f.flush()
    msg = reply()
    if i:
        print(json.dumps(msg))
PY
}

# Read-write disk: a loop device over a file in the test VM's tmpfs (it
# discards). ram0: read-only disk holding 16 blocks of generation 7; ram1:
# the hot-plugged disk.
[ -e /dev/loop-control ] || modprobe loop
truncate -s 64M "$image"
rw=$(losetup -f --show "$image")
modprobe brd rd_nr=2 rd_size=16384 max_part=0
"$blkcheck" write /dev/ram0 0 16 7
base=$(devices)

# ------------------------------------------------------ device properties
# bad_device DESC MESSAGE DEVICE_OPTIONS: QEMU must refuse to start.
bad_device() {
	local out status
	out=$(timeout 60 "$qemu" -machine pc -accel tcg \
		-nodefaults -display none -S -device "vhost-blk-pci,$3" 2>&1 < /dev/null)
	status=$?
	[ "$status" = 1 ] && grep -q -- "$2" <<< "$out"
	ok $? "$1" || echo "# status $status: $out"
}

need="vhost-blk needs exactly one of backendfd= and backend-path="
bad_device "no block device is refused" "$need" "serial=x"
bad_device "vhostfd= without a block device is refused" "$need" "vhostfd=3"
bad_device "backend-path= with backendfd= is refused" "$need" \
	"backend-path=/dev/ram1,backendfd=3"
bad_device "num-queues=0 is refused" "num-queues must be 1 to 64" \
	"backend-path=/dev/ram1,num-queues=0"
bad_device "num-queues above the module's 64 is refused" \
	"num-queues must be 1 to 64" "backend-path=/dev/ram1,num-queues=65"
bad_device "a queue-size that is no power of 2 is refused" \
	"queue-size must be a power of 2" "backend-path=/dev/ram1,queue-size=100"
bad_device "a queue-size above 1024 is refused" \
	"queue-size must be a power of 2 from 2 to 1024" "backend-path=/dev/ram1,queue-size=2048"
bad_device "a queue-size of 1 is refused" \
	"queue-size must be a power of 2 from 2 to 1024" "backend-path=/dev/ram1,queue-size=1"
bad_device "a serial longer than 20 bytes is refused" \
	"serial must be at most 20 bytes" "backend-path=/dev/ram1,serial=123456789012345678901"
bad_device "backend-path= that does not exist is refused" \
	"backend-path=$work/none: Could not open '$work/none'" "backend-path=$work/none"
bad_device "backend-path= that is no block device is refused" \
	"backend-path=$image: not a block device" "backend-path=$image"
bad_device "backendfd= that is not open is refused" \
	"backendfd=78: Bad file descriptor" "backendfd=78"
bad_device "backendfd= naming no passed descriptor is refused" \
	"backendfd=nosuch: Invalid file descriptor number 'nosuch'" "backendfd=nosuch"
bad_device "vhostfd= that is not open is refused" \
	"vhostfd is not /dev/vhost-blk: Bad file descriptor" "vhostfd=77,backend-path=/dev/ram1"
bad_device "vhostfd= naming no passed descriptor is refused" \
	"vhostfd=nosuch: Invalid file descriptor number 'nosuch'" "vhostfd=nosuch,backend-path=/dev/ram1"
bad_device "vhostfd= that is not /dev/vhost-blk is refused" \
	"vhostfd is not /dev/vhost-blk" "vhostfd=0,backend-path=/dev/ram1"
exec 6< "$image"
bad_device "backendfd= that is no block device is refused" \
	"backendfd=6: not a block device" "backendfd=6"
exec 6<&-
out=$("$helper" exec --backend /dev/ram1 -- "$qemu" \
	-machine pc -accel tcg -nodefaults -display none -S \
	-device vhost-blk-pci,vhostfd=%v,backendfd=%b,num-queues=70 2>&1 < /dev/null)
[ $? = 1 ] && grep -q "num-queues must be 1 to 64" <<< "$out"
ok $? "a bad device behind exec stops QEMU with the device's message" ||
	echo "# $out"
[ "$(devices)" = "$base" ]
ok $? "no device is left in the module after the refused ones"

# good_device DESC DEVICE_OPTIONS [fds]: QEMU starts (stopped, -S) with the
# device and keeps running; it holds one /dev/vhost-blk until it exits.
# With "fds", QEMU inherits /dev/vhost-blk as descriptor 5 and ram1 as 6,
# the latter also in the -add-fd set 2.
good_device() {
	local desc=$1 dev=$2 pid status=0
	local run=("$qemu" -machine pc -accel tcg -nodefaults -display none -S)
	if [ "${3:-}" = fds ]; then
		"${run[@]}" -add-fd fd=6,set=2 \
			-device "vhost-blk-pci,$dev" < /dev/null > "$work/good.log" 2>&1 \
			5<> /dev/vhost-blk 6<> /dev/ram1 &
	else
		"${run[@]}" -device "vhost-blk-pci,$dev" < /dev/null > "$work/good.log" 2>&1 &
	fi
	pid=$!
	wait_devices $((base + 1)) && sleep 2 && kill -0 "$pid" 2> /dev/null || status=1
	kill "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	wait_devices "$base" || status=1
	ok "$status" "$desc" || sed 's/^/# /' "$work/good.log"
}

good_device "backend-path= opens the block device, QEMU opens /dev/vhost-blk itself" \
	"backend-path=/dev/ram1,read-only=on"
good_device "vhostfd= by number and backendfd= of an -add-fd set are taken" \
	"vhostfd=5,backendfd=/dev/fdset/2" fds

# Without num-queues a disk gets a queue per vCPU, and (where the kernel
# has the worker ioctls, 6.5 on) a vhost worker per queue.
q=$work/smp4
mkdir -p "$q"
# shellcheck disable=SC2046 # monitor_start prints words
"$qemu" -machine pc -accel tcg -nodefaults -display none -S -smp 4 \
	-device vhost-blk-pci,id=d4,backend-path=/dev/ram1 $(monitor_start "$q") \
	< /dev/null > "$q/qemu.log" 2>&1 &
echo $! > "$q/pid"
wait_devices $((base + 1))
hmp "$q" "info qtree"
sleep 1
grep -q "num-queues = 4 " "$q/monitor.log"
ok $? "a disk without num-queues on 4 vCPUs gets 4 queues" ||
	grep -A30 'vhost-blk-pci' "$q/monitor.log" | sed 's/^/# /'
want=4
[ "$(printf '%s\n' 6.5 "$(uname -r)" | sort -V | head -n1)" = 6.5 ] || want=1
[ "$(vhost_workers "$(cat "$q/pid")" | wc -l)" = "$want" ]
ok $? "its queues run on $want vhost worker(s)"
guest_kill "$q"
kill "$(cat "$q/monitor.pid")" 2> /dev/null
wait_devices "$base"
ok $? "the 4-queue disk's module device goes with QEMU"

# ---------------------------------------------------------------- boot 1
g=$work/boot1
GUEST_QEMU=$qemu
GUEST_PRIVATE_MEM=1
GUEST_WRAP=("$helper" exec --backend "$rw" --ro-backend /dev/ram0 --)
guest_start "$g" "$mem" "e2e.sh first" \
	-device "vhost-blk-pci,vhostfd=%v0,backendfd=%b0,num-queues=2,serial=$serial" \
	-device "vhost-blk-pci,vhostfd=%v1,backendfd=%b1,read-only=on,serial=$ro_serial"
guest_wait "$g" '^IO-START' "$boot_secs"
ok $? "guest boots with two vhost-blk-pci disks from exec" "$g" || exit 1
[ "$(devices)" = $((base + 2)) ]
ok $? "QEMU holds one module device per disk"
worker_start=$(workers_ticks "$(guest_pid "$g")")

grep -qx "PROPS vda size=131072 lbs=512 ro=0 serial=$serial queues=2" "$g/out"
ok $? "guest sees the read-write disk's size, block size, serial and two queues" "$g"
grep -qx "PROPS vdb size=32768 lbs=512 ro=1 serial=$ro_serial queues=2" "$g/out"
ok $? "guest sees the read-only disk as read-only, with its serial and a queue per vCPU" "$g"

guest_wait "$g" '^IO-END' 300
ok $? "guest's I/O phase ends" "$g"
worker_used=$(($(workers_ticks "$(guest_pid "$g")") - worker_start))
echo "# during the I/O: vhost worker $worker_used ticks"
grep -qx "WRITE-Q0 0" "$g/out" && grep -qx "WRITE-Q1 0" "$g/out"
ok $? "guest writes 4 MiB from each CPU without error" "$g"
[ "$worker_used" -gt 0 ]
ok $? "the module's worker thread serves the I/O" "$g"
grep -qx "DISCARD 0" "$g/out"
ok $? "guest discards 4 MiB" "$g"

first_boot_checks "$g" "$rw"

guest_wait "$g" '^FLUSHED (6[4-9]|[7-9][0-9]|[0-9]{3,})$' 300
ok $? "guest streams flushed writes" "$g"
guest_kill "$g"
flushed=$(guest_value "$g" FLUSHED)
echo "# QEMU killed after $flushed blocks were flushed"
"$blkcheck" verify "$rw" 4096 "$flushed" 2
ok $? "the backend holds every block flushed before the kill"
wait_devices "$base"
ok $? "QEMU's death leaves no device in the module"

# ---------------------------------------------------------------- boot 2
g=$work/boot2
mkdir -p "$g"
GUEST_WRAP=("$helper" exec --backend "$rw" --)
# shellcheck disable=SC2046 # monitor_start prints words
guest_start "$g" "$mem" "e2e.sh hotplug resize migrate" \
	-device "vhost-blk-pci,id=disk0,vhostfd=%v,backendfd=%b,num-queues=2,serial=$serial" \
	-qmp "unix:$g/qmp.sock,server=on,wait=off" $(monitor_start "$g")
guest_wait "$g" '^HOTPLUG-WAIT' "$boot_secs"
ok $? "guest boots and keeps its disk busy" "$g" || exit 1

hmp "$g" "info qtree"
sleep 1
grep -q 'dev: vhost-blk-pci, id "disk0"' "$g/monitor.log"
ok $? "QEMU's monitor shows the vhost-blk-pci device"

"$blkcheck" write /dev/ram1 0 256 0
out=$("$helper" send-fds --qmp "$g/qmp.sock" --backend /dev/ram1 --id hp \
	--device-add --num-queues 1 --serial hp-serial 2>&1)
ok $? "send-fds passes the descriptors and adds a disk over QMP" || echo "# $out"
[ "$(devices)" = $((base + 2)) ]
ok $? "the hot-plugged disk is a second module device"
guest_wait "$g" '^HOTPLUG-IO ' 120
grep -qx "HOTPLUG-SEEN 0" "$g/out" &&
	grep -qx "PROPS vdb size=32768 lbs=512 ro=0 serial=hp-serial queues=1" "$g/out"
ok $? "guest sees the hot-plugged disk with its serial and queue count" "$g"
grep -qx "HOTPLUG-IO 0" "$g/out"
ok $? "guest writes and reads back the hot-plugged disk" "$g"
"$blkcheck" verify /dev/ram1 0 256 5
ok $? "the hot-plugged disk's backend holds the guest's data"

hmp "$g" "device_del hp"
guest_wait "$g" '^HOTPLUG-GONE ' 120 && grep -qx "HOTPLUG-GONE 0" "$g/out"
ok $? "guest lets the disk go on device_del" "$g"
wait_devices $((base + 1))
ok $? "the unplugged disk's module device is released"
guest_wait "$g" '^BUSY-VERIFY ' 300
grep -qx "BUSY-ERRORS 0" "$g/out" && grep -qx "BUSY-VERIFY 0" "$g/out"
ok $? "the busy disk saw no error and holds every round" "$g"
echo "# busy disk: $(guest_value "$g" BUSY-ROUNDS) rounds during the hot-plug"

# Online resize: the loop device's file grows (losetup -c), and
# device-sync-config has the device read its config from the module again.
sync_disk0='{"execute": "device-sync-config", "arguments": {"id": "disk0"}}'
guest_wait "$g" '^RESIZE-WAIT' 120
truncate -s 96M "$image" && losetup -c "$rw"
out=$(qmp "$g/qmp.sock" "$sync_disk0" 2>&1)
[[ $out == '{"return": {}}' ]]
ok $? "device-sync-config takes the grown disk's config" || echo "# $out"
guest_wait "$g" '^GROWN-IO ' 180
grep -qx "GROWN 0" "$g/out" && grep -qx "GROWN-IO 0" "$g/out"
ok $? "guest sees the disk grow from 64 to 96 MiB and uses the new space" "$g"
"$blkcheck" verify "$rw" 20000 64 6
ok $? "the backend holds what the guest wrote beyond 64 MiB"
# Shrunk while the VM is paused: the device is stopped, with its rings still
# in the module, and refuses the command; it reads the config when the VM
# runs again.
guest_wait "$g" '^SHRINK-WAIT' 120
truncate -s 64M "$image" && losetup -c "$rw"
out=$(qmp "$g/qmp.sock" '{"execute": "stop"}' "$sync_disk0" \
	'{"execute": "cont"}' 2>&1)
grep -q '"desc": "vhost-blk: the device is stopped (VM paused, or reset by the guest); its config is read again when it starts"' <<< "$out"
ok $? "device-sync-config on a paused VM's disk is refused with a clear error" ||
	echo "# $out"
guest_wait "$g" '^SHRUNK-BELOW ' 180
grep -qx "SHRUNK 0" "$g/out"
ok $? "guest sees the disk shrunk to 64 MiB once the VM runs again" "$g"
! grep -qx "SHRUNK-BEYOND 0" "$g/out" && grep -qx "SHRUNK-BELOW 0" "$g/out"
ok $? "guest fails a write past the new end and keeps the data below it" "$g"

# The destination, on its own descriptors for the same block device
# (--shared: the source QEMU holds it exclusively).
d=$work/boot2-dst
mkdir -p "$d"
GUEST_WRAP=("$helper" exec --shared --backend "$rw" --)
# shellcheck disable=SC2046 # monitor_start prints words
guest_start "$d" "$mem" "e2e.sh hotplug resize migrate" \
	-device "vhost-blk-pci,id=disk0,vhostfd=%v,backendfd=%b,num-queues=2,serial=$serial" \
	-incoming "unix:$work/migration.sock" $(monitor_start "$d")
wait_socket "$work/migration.sock"
guest_wait "$g" '^migrate: first pass done' 120
migrate_guest "$g" "$work/migration.sock"
ok $? "QEMU migrates the running guest to the destination" "$g"
# The guest runs on the destination now: tell it to stop and check.
"$blkcheck" write "$rw" 12287 1 1
hmp "$g" quit
wait_devices $((base + 1))
ok $? "the source's module device is released when it quits"
g=$d

guest_end "$g" 300
ok $? "guest finishes" "$g"
guest_value "$g" migrate: | sed 's/^/# /'
grep -qx "MIGRATE-VERIFY 0" "$g/out"
ok $? "memory the device wrote during the migration reached the destination" "$g"
grep -qx "DMESG-ERRORS 0" "$g/out"
ok $? "guest kernel log has no error" "$g"
wait_devices "$base"
ok $? "no device is left in the module once QEMU exits"

echo "1..$n"
exit $((failed > 0))
