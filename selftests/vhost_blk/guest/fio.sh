#!/bin/sh
# shellcheck shell=sh
#
# fio jobs on /dev/vda in a second-level guest, for `make demo` and the
# guest-level benchmarks. Each argument is one job, NAME:RW:BS:DEPTH:SECONDS
# (RW as fio's --rw); the jobs run one after the other, each printing
#   FIO-BEGIN NAME
#   <fio's JSON report>
#   FIO-END NAME <fio's status>
echo "PROPS vda size=$(cat /sys/block/vda/size) queues=$(ls /sys/block/vda/mq | wc -l)"
for job in "$@"; do
	IFS=: read -r name rw bs depth secs <<JOB
$job
JOB
	echo "FIO-BEGIN $name"
	fio --name="$name" --filename=/dev/vda --direct=1 --ioengine=io_uring \
		--rw="$rw" --bs="$bs" --iodepth="$depth" --runtime="$secs" \
		--time_based --ramp_time=1 --randrepeat=0 --output-format=json
	echo "FIO-END $name $?"
done
