#!/bin/sh
# shellcheck shell=sh
#
# The guest side of the end-to-end suite (selftests/vhost_blk/e2e_test.sh),
# run by the second-level guest's /init. /dev/vda is the served read-write
# disk (two queues), /dev/vdb the served read-only disk. Each step prints one
# line "<STEP> <result>" that the test VM's side checks; the block numbers
# here are the ones that side verifies on the backend.
#
#   e2e.sh first           properties, I/O on both queues, discard, the
#                          read-only disk; then writes until QEMU is killed
#   e2e.sh second FLUSHED  after the kill: what was flushed is intact; then
#                          writes and reads rounds while the helper is
#                          stopped once and killed three times; uses the
#                          disk as the host grows and shrinks it
#   e2e.sh hotplug [resize] [migrate]
#                          (vhost-blk-pci suite) keeps /dev/vda busy while
#                          the host hot-plugs a disk, which the guest uses,
#                          and unplugs it; with "resize", then uses vda as
#                          the host grows it from 64 to 96 MiB and shrinks
#                          it back; with "migrate", then reads into memory
#                          while the host migrates the guest live to
#                          another QEMU, and checks that memory

props() { # props NAME
	d=/sys/block/$1
	echo "PROPS $1 size=$(cat "$d/size") lbs=$(cat "$d/queue/logical_block_size")" \
		"ro=$(cat "$d/ro") serial=$(cat "$d/serial") queues=$(ls "$d/mq" | wc -l)"
}

first() {
	props vda
	props vdb
	echo "IO-START"
	# 4 MiB from each CPU: blk-mq sends each CPU's requests to its own queue.
	blkcheck -c 0 write /dev/vda 0 1024 1 & q0=$!
	blkcheck -c 1 write /dev/vda 1024 1024 1 & q1=$!
	wait $q0; echo "WRITE-Q0 $?"
	wait $q1; echo "WRITE-Q1 $?"
	blkcheck discard /dev/vda 512 1024; echo "DISCARD $?"
	echo "IO-END"
	blkcheck verify /dev/vda 0 512 1 && blkcheck zero /dev/vda 512 1024 &&
		blkcheck verify /dev/vda 1536 512 1
	echo "VERIFY $?"
	# Interrupts per request queue of vda (its MSI-X vectors "virtioN-req.Q").
	dev=$(basename "$(readlink /sys/block/vda/device)")
	awk -v d="$dev-req." 'index($NF, d) == 1 { print "IRQ", substr($NF, length(d) + 1), $2 + $3 }' \
		/proc/interrupts

	blkcheck verify /dev/vdb 0 16 7; echo "RO-READ $?"
	blkcheck write /dev/vdb 0 1 9; echo "RO-WRITE $?"
	dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct 2> /dev/null
	echo "RO-DD $?"

	# Flushed every 8 blocks, until the host kills QEMU.
	echo "STREAM-START"
	blkcheck stream /dev/vda 4096 4096 2 8
	echo "STREAM-ENDED $?"
}

# round R: one round of second(); prints "ROUND R <write 0> <write 1> <verify>".
round() {
	a=$((8192 + $1 % 4 * 128))
	blkcheck -c 0 write /dev/vda $a 64 $((3 + $1)) & w0=$!
	blkcheck -c 1 write /dev/vda $((a + 64)) 64 $((3 + $1)) & w1=$!
	v=0
	if [ "$1" -gt 0 ]; then
		blkcheck verify /dev/vda $((8192 + ($1 - 1) % 4 * 128)) 128 $((2 + $1))
		v=$?
	fi
	wait $w0; r0=$?
	wait $w1; echo "ROUND $1 $r0 $? $v"
}

second() {
	blkcheck verify /dev/vda 4096 "$1" 2; echo "FLUSHED-INTACT $?"
	# Sixteen rounds over four areas of 128 blocks, each round writing one
	# area with a new generation from both CPUs (both queues) while it
	# reads back the round before: the host stops or kills the helper and
	# starts it again four times meanwhile, with I/O in flight.
	r=0
	while [ $r -lt 16 ]; do
		round $r
		r=$((r + 1))
	done
	# Each area holds its last round's generation, 15 to 18.
	blkcheck verify /dev/vda 8192 128 15 && blkcheck verify /dev/vda 8320 128 16 &&
		blkcheck verify /dev/vda 8448 128 17 && blkcheck verify /dev/vda 8576 128 18
	echo "ROUNDS-VERIFY $?"
	# The host grows the disk from 64 to 96 MiB, then shrinks it to 48.
	echo "RESIZE-WAIT"
	wait_until 120 grep -qx 196608 /sys/block/vda/size; echo "GROWN $?"
	blkcheck write /dev/vda 24000 64 20 && blkcheck verify /dev/vda 24000 64 20
	echo "GROWN-IO $?"
	echo "SHRINK-WAIT"
	wait_until 120 grep -qx 98304 /sys/block/vda/size; echo "SHRUNK $?"
	blkcheck write /dev/vda 12288 1 21; echo "SHRUNK-BEYOND $?"
	blkcheck verify /dev/vda 8192 128 15; echo "SHRUNK-BELOW $?"
	/guest/dmesg-errors.sh
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

hotplug() {
	# Synced 64-block rounds over the first 1024 blocks, until told to stop.
	(
		r=0 errors=0
		while [ ! -e /tmp/stop ]; do
			blkcheck write /dev/vda $((r % 16 * 64)) 64 4 || errors=$((errors + 1))
			r=$((r + 1))
		done
		echo "BUSY-ROUNDS $r"
		echo "BUSY-ERRORS $errors"
		echo "$r" > /tmp/busy-rounds
	) &
	busy=$!
	echo "HOTPLUG-WAIT"
	wait_until 300 test -e /sys/block/vdb; echo "HOTPLUG-SEEN $?"
	props vdb
	blkcheck write /dev/vdb 0 256 5 && blkcheck verify /dev/vdb 0 256 5
	echo "HOTPLUG-IO $?"
	wait_until 300 test ! -e /sys/block/vdb; echo "HOTPLUG-GONE $?"
	touch /tmp/stop
	wait $busy
	# The blocks the rounds wrote: all 1024 after 16 rounds, fewer before.
	r=$(cat /tmp/busy-rounds)
	[ "$r" -gt 0 ] && blkcheck verify /dev/vda 0 $((r < 16 ? r * 64 : 1024)) 4
	echo "BUSY-VERIFY $?"
	case " $* " in *" resize "*)
		# 64 MiB is 131072 sectors, 16384 blocks; 96 MiB 196608 sectors.
		echo "RESIZE-WAIT"
		wait_until 120 grep -qx 196608 /sys/block/vda/size; echo "GROWN $?"
		blkcheck write /dev/vda 20000 64 6 && blkcheck verify /dev/vda 20000 64 6
		echo "GROWN-IO $?"
		echo "SHRINK-WAIT"
		wait_until 120 grep -qx 131072 /sys/block/vda/size; echo "SHRUNK $?"
		blkcheck write /dev/vda 16384 1 7; echo "SHRUNK-BEYOND $?"
		blkcheck verify /dev/vda 0 $((r < 16 ? r * 64 : 1024)) 4
		echo "SHRUNK-BELOW $?"
		;;
	esac
	case " $* " in *" migrate "*)
		# Until the host writes the marker block 12287 after the migration.
		echo "MIGRATE-START"
		blkcheck migrate /dev/vda 12288 16 12287; echo "MIGRATE-VERIFY $?"
		;;
	esac
	/guest/dmesg-errors.sh
}

case $1 in
first) first ;;
second) second "$2" ;;
hotplug) shift; hotplug "$@" ;;
*) echo "usage: e2e.sh first | second FLUSHED | hotplug [resize] [migrate]"; exit 2 ;;
esac
