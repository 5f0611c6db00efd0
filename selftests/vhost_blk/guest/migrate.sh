#!/bin/sh
# shellcheck shell=sh
#
# The guest side of the live-migration tests (selftests/vhost_blk/
# migration_test.sh, scripts/migration-matrix), run by the second-level
# guest's /init:
#
#   migrate.sh HOPS DEV...
#
# For each of HOPS migrations, every DEV (vda, vdb, ...) runs `blkcheck
# migrate` over its blocks 12288-12303 at once, reading into buffers that
# only the device writes, until the host writes the hop's marker block
# (12287 for the first hop, 12286 for the second, ...) on every backend once
# the guest runs on the destination. Lines for the host:
#   MIGRATE-READY <hop>            every device has done a first pass: migrate
#   MIGRATE <hop> <dev> <line>     blkcheck's report of the hop
#   MIGRATE-VERIFY <hop> <dev> <status>
#                                  0: every buffer held what the device read
# and at the end the kernel's error lines (dmesg-errors.sh).

hops=$1
shift
hop=0
while [ "$hop" -lt "$hops" ]; do
	marker=$((12287 - hop))
	for dev in "$@"; do
		(blkcheck migrate "/dev/$dev" 12288 16 "$marker" > "/tmp/$dev.out"
		 echo $? > "/tmp/$dev.status") &
	done
	for dev in "$@"; do
		until grep -q "first pass done" "/tmp/$dev.out" 2> /dev/null ||
			[ -e "/tmp/$dev.status" ]; do
			sleep 0.1
		done
	done
	echo "MIGRATE-READY $hop"
	wait
	for dev in "$@"; do
		sed "s|^|MIGRATE $hop $dev |" "/tmp/$dev.out"
		echo "MIGRATE-VERIFY $hop $dev $(cat "/tmp/$dev.status")"
		rm -f "/tmp/$dev.out" "/tmp/$dev.status"
	done
	hop=$((hop + 1))
done
/guest/dmesg-errors.sh
