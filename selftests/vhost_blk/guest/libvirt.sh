#!/bin/sh
# shellcheck shell=sh
#
# The guest side of the libvirt suite (selftests/vhost_blk/libvirt_test.sh),
# run by the second-level guest's /init in a domain that libvirt started.
# /dev/vda is the disk of the domain's XML; the host hot-plugs a second disk
# (/dev/vdb) with `virsh attach-device` and unplugs it with `virsh
# detach-device`. Each step prints one line "<STEP> <result>" that the test
# VM's side checks.
#
#   libvirt.sh MARKER   after the unplug, waits for block MARKER of /dev/vda
#                       to hold a blkcheck block of generation 9 (the host
#                       writes it on the backend once it has checked its
#                       side), then ends, and the guest powers off

props() { # props NAME
	d=/sys/block/$1
	echo "PROPS $1 size=$(cat "$d/size") lbs=$(cat "$d/queue/logical_block_size")" \
		"ro=$(cat "$d/ro") serial=$(cat "$d/serial") queues=$(ls "$d/mq" | wc -l)"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_until() {
	n=$(($1 * 5))
	shift
	while [ $n -gt 0 ]; do
		"$@" && return 0
		sleep 0.2
		n=$((n - 1))
	done
	return 1
}

marker_written() {
	blkcheck verify /dev/vda "$1" 1 9 2> /dev/null
}

[ $# = 1 ] || { echo "usage: libvirt.sh MARKER"; exit 2; }
props vda
blkcheck write /dev/vda 0 256 1 && blkcheck verify /dev/vda 0 256 1
echo "DISK-IO $?"

echo "HOTPLUG-WAIT"
wait_until 300 test -e /sys/block/vdb; echo "HOTPLUG-SEEN $?"
props vdb
blkcheck write /dev/vdb 0 256 2 && blkcheck verify /dev/vdb 0 256 2
echo "HOTPLUG-IO $?"
wait_until 300 test ! -e /sys/block/vdb; echo "HOTPLUG-GONE $?"

wait_until 300 marker_written "$1"; echo "MARKER $?"
/guest/dmesg-errors.sh
