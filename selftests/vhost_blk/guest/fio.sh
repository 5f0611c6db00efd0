#!/bin/sh
# shellcheck shell=sh
#
# fio jobs on /dev/vda in a second-level guest, for `make demo` and the
# guest-level benchmarks. Each argument is one job, NAME:RW:BS:DEPTH:SECONDS
# (RW as fio's --rw; no spaces). One fio process runs them one after the
# other (loading fio costs seconds at this depth of emulation); its JSON
# report, one entry per job, is printed between "FIO-BEGIN" and
# "FIO-END <status>". Before its I/O a job prints "JOB-START NAME", after
# it "JOB-END NAME", so that the host can measure each job on its side;
# fio's own lines may come between them and the JSON report.
echo "PROPS vda size=$(cat /sys/block/vda/size) queues=$(ls /sys/block/vda/mq | wc -l)"
echo "UPTIME $(cut -d' ' -f1 /proc/uptime)"
jobs=
for job in "$@"; do
	IFS=: read -r name rw bs depth secs <<JOB
$job
JOB
	# fio keeps what these print: they write to this script's output (3).
	printf '#!/bin/sh\necho JOB-START %s >&3\n' "$name" > "/tmp/start-$name"
	printf '#!/bin/sh\necho JOB-END %s >&3\n' "$name" > "/tmp/end-$name"
	chmod +x "/tmp/start-$name" "/tmp/end-$name"
	jobs="$jobs --name=$name --rw=$rw --bs=$bs --iodepth=$depth --runtime=$secs --stonewall"
	jobs="$jobs --exec_prerun=/tmp/start-$name --exec_postrun=/tmp/end-$name"
done
echo "FIO-BEGIN"
exec 3>&1
# shellcheck disable=SC2086 # the job options are words
fio --filename=/dev/vda --direct=1 --ioengine=io_uring --time_based \
	--ramp_time=1 --randrepeat=0 --lat_percentiles=1 --output-format=json $jobs
echo "FIO-END $?"
echo "UPTIME $(cut -d' ' -f1 /proc/uptime)"
# The host samples its threads' CPU time at FIO-END: keep the disk a moment.
sleep 2
