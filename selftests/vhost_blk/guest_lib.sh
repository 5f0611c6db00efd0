# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash
#
# guest_lib.sh: start and watch second-level guests, the QEMU guests that the
# end-to-end suite, `make demo` and the guest-level benchmarks boot inside the
# test VM. Sourced; needs $top (the project directory).
#
# A guest boots Debian's kernel with build/guest/initramfs.cpio, or with
# GUEST_IMAGE=fio initramfs-fio.cpio, the image that has fio (both made by
# scripts/guest-image), runs one script of selftests/vhost_blk/guest/ and
# powers off. Its guest RAM is a shared memfd, as vhost-user needs, whatever
# its disks are. Each guest has a directory: console (kernel log), out (the
# script's output, then "GUEST-EXIT <status>"), qemu.log, pid.
#
# For the suites that drive guests, it also has their TAP line (ok, which
# counts in the globals n and failed), the wait for a socket or for the
# module's device count, a process's CPU time, the human monitor over a
# FIFO and a migration through it.

# Kernel options that take a third off a boot under double emulation: no
# crypto self-tests, no speculation mitigations, no LSMs, no clocksource
# watchdog, no zeroing of every allocation. None of them changes how the
# guest drives a virtio-blk device.
GUEST_FAST_BOOT="cryptomgr.notests mitigations=off tsc=reliable no_timer_check
audit=0 apparmor=0 security=none init_on_alloc=0 rcupdate.rcu_expedited=1"

# The kernel the guest image was made for (scripts/guest-image writes it
# next to the image), else the running one.
guest_kernel() {
	local kver image=$top/build/guest/initramfs${GUEST_IMAGE:+-$GUEST_IMAGE}.cpio
	kver=$(cat "$image.kver" 2> /dev/null || uname -r)
	if [ -f "$top/build/vm/vmlinux-$kver" ]; then
		echo "$top/build/vm/vmlinux-$kver"
	else
		echo "/boot/vmlinuz-$kver"
	fi
}

# Which QEMU guest_start runs, and how: GUEST_QEMU is the binary (the
# patched one of `make qemu` for vhost-blk-pci); the words of the array
# GUEST_WRAP go before it (vhostblk-setup exec ... --); GUEST_PRIVATE_MEM=1
# gives the guest private RAM instead of the shared memfd vhost-user needs.
GUEST_QEMU=${GUEST_QEMU:-qemu-system-x86_64}
GUEST_WRAP=()

# guest_start DIR MEM_MB "SCRIPT ARGS..." QEMU_ARG...: boots a guest in the
# background that runs /guest/SCRIPT ARGS.
guest_start() {
	local dir=$1 mem=$2 run=$3 args='' memory
	shift 3
	[[ $run == *" "* ]] && args=${run#* }
	memory=(-object "memory-backend-memfd,id=mem,size=${mem}M,share=on"
		-machine memory-backend=mem)
	[ -n "${GUEST_PRIVATE_MEM:-}" ] && memory=()
	mkdir -p "$dir"
	: > "$dir/out"
	setpriv --pdeathsig KILL -- "${GUEST_WRAP[@]}" "$GUEST_QEMU" \
		-accel tcg -cpu max -smp 2 -machine pc -nodefaults -no-user-config \
		-display none -no-reboot \
		"${memory[@]}" -m "${mem}M" \
		-kernel "$(guest_kernel)" -initrd "$top/build/guest/initramfs${GUEST_IMAGE:+-$GUEST_IMAGE}.cpio" \
		-append "console=ttyS0 quiet panic=-1 ${GUEST_FAST_BOOT//$'\n'/ } ${GUEST_APPEND:-} GUEST_SCRIPT=${run%% *} GUEST_ARGS=$(printf '%s' "$args" | base64 -w0)" \
		-serial "file:$dir/console" -serial "file:$dir/out" \
		"$@" < /dev/null 2> "$dir/qemu.log" &
	echo $! > "$dir/pid"
}

guest_pid() { cat "$1/pid"; }

# guest_running DIR: QEMU has not exited (a zombie, not reaped yet, has).
guest_running() {
	local stat
	stat=$(cat "/proc/$(guest_pid "$1")/stat" 2> /dev/null) && [[ ${stat##*) } != Z* ]]
}

# guest_wait DIR REGEX SECONDS: waits for an output line matching REGEX
# (grep -E); fails when the guest ends or the time runs out first.
guest_wait() {
	local dir=$1 regex=$2 i
	for ((i = 0; i < $3 * 10; i++)); do
		grep -Eq "$regex" "$dir/out" && return 0
		guest_running "$dir" || break
		sleep 0.1
	done
	grep -Eq "$regex" "$dir/out"
}

# guest_value DIR KEY: the rest of the last output line "KEY rest".
guest_value() {
	awk -v k="$2" '$1 == k { sub(/^[^ ]* /, ""); v = $0 } END { print v }' "$1/out"
}

# guest_end DIR SECONDS: waits for the guest to power off (killing it after
# SECONDS) and returns its script's status; 124 on timeout, 125 when the
# guest ended without one.
guest_end() {
	local dir=$1 pid status
	pid=$(guest_pid "$dir")
	if ! guest_wait "$dir" '^GUEST-EXIT ' "$2"; then
		kill -KILL "$pid" 2> /dev/null && status=124
	fi
	wait "$pid" 2> /dev/null
	[ -n "${status:-}" ] && return "$status"
	status=$(guest_value "$dir" GUEST-EXIT)
	return "${status:-125}"
}

# guest_kill DIR: kills the guest's QEMU at once (SIGKILL) and reaps it.
guest_kill() {
	local pid
	pid=$(guest_pid "$1")
	kill -KILL "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	return 0
}

# guest_report DIR: the guest's output and the end of its logs, as TAP
# comments, for a failed test.
guest_report() {
	sed 's/^/# out: /' "$1/out"
	tail -n 20 "$1/console" | tr -d '\r' | sed 's/^/# console: /'
	sed 's/^/# qemu: /' "$1/qemu.log"
}

# ok STATUS DESC [GUEST_DIR]: one TAP line; a failure shows the guest.
ok() {
	n=$((n + 1))
	if [ "$1" = 0 ]; then
		echo "ok $n $2"
		return 0
	fi
	echo "not ok $n $2"
	failed=$((failed + 1))
	[ -n "${3:-}" ] && guest_report "$3"
	return 1
}

# wait_socket PATH [SECONDS]: waits until a unix socket exists (default 10 s).
wait_socket() {
	local i
	for ((i = 0; i < ${2:-10} * 10; i++)); do
		[ -S "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

# wait_refcnt MODULE COUNT: waits up to 30 s for MODULE (vhost_blk, or the
# migration test's control) to hold COUNT devices: its reference count is
# one per open /dev/vhost-blk file.
wait_refcnt() {
	local i
	for ((i = 0; i < 300; i++)); do
		[ "$(cat "/sys/module/$1/refcnt")" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# cpu_ticks PID: CPU time (user + system, in clock ticks) of a process, or
# with PID/task/TID of one of its threads.
cpu_ticks() {
	awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"
}

# vhost_workers OWNER: the vhost workers of the devices OWNER owns, one per
# line, as cpu_ticks takes them: kernel threads (PID) before Linux 6.4,
# threads of OWNER (OWNER/task/TID) since.
vhost_workers() {
	grep -lx "vhost-$1" /proc/[0-9]*/comm /proc/"$1"/task/*/comm 2> /dev/null |
		sed 's|^/proc/||; s|/comm$||'
}

# workers_ticks OWNER: the CPU ticks of OWNER's vhost workers together.
workers_ticks() {
	local w total=0
	for w in $(vhost_workers "$1"); do
		total=$((total + $(cpu_ticks "$w")))
	done
	echo "$total"
}

# own_ticks PID: the CPU ticks of a process without its vhost workers.
own_ticks() {
	local w total
	total=$(cpu_ticks "$1")
	for w in $(vhost_workers "$1"); do
		[[ $w == "$1"/task/* ]] && total=$((total - $(cpu_ticks "$w")))
	done
	echo "$total"
}

# monitor_start DIR: the QEMU options of a human monitor on FIFOs in DIR,
# whose answers collect in DIR/monitor.log; the reader's pid in DIR/monitor.pid.
monitor_start() {
	mkfifo "$1/monitor.in" "$1/monitor.out"
	cat "$1/monitor.out" > "$1/monitor.log" &
	echo $! > "$1/monitor.pid"
	echo "-chardev pipe,id=hmp,path=$1/monitor -mon chardev=hmp,mode=readline"
}

# hmp DIR COMMAND: a human monitor command to the guest's QEMU.
hmp() {
	# Bounded: writing to the FIFO would block if QEMU were gone.
	timeout 5 bash -c 'echo "$2" > "$1"' hmp "$1/monitor.in" "$2"
}

# migration_status DIR: asks the source QEMU and prints the last status seen:
# QEMU 10 prints "Status: S", QEMU 7.2 "Migration status: S".
migration_status() {
	hmp "$1" "info migrate"
	sleep 1
	tr -d '\r' < "$1/monitor.log" |
		awk '/^(Migration status|Status):/ { sub(/^[^:]*:[ \t]*/, ""); s = $1 } END { print s }'
}

# migrate_guest DIR SOCKET: migrates DIR's running guest live to the QEMU
# waiting with -incoming on the unix SOCKET and prints the outcome as a TAP
# comment; fails unless the migration completed. At 16 MiB/s the guest's
# memory takes seconds to copy while its devices keep writing into it (the
# dirty log's test).
migrate_guest() {
	local g=$1 status i
	hmp "$g" "migrate_set_parameter max-bandwidth 16M"
	sleep 2
	hmp "$g" "migrate -d unix:$2"
	for ((i = 0; i < 120; i++)); do
		status=$(migration_status "$g")
		[[ $status == @(completed|failed|cancelled) ]] && break
	done
	echo "# live migration: $status"
	[ "$status" = completed ]
}

# fio_json DIR: the JSON report of guest/fio.sh in DIR's output (from the
# line "{" to the line "}"; fio's other lines and the job marks around it
# are left out).
fio_json() {
	awk '$1 == "FIO-BEGIN" { on = 1 } on && $0 == "{" { json = 1 }
		json { print } $0 == "}" { json = 0 } $1 == "FIO-END" { on = 0 }' "$1/out"
}

# first_boot_checks DIR RW: the checks of guest/e2e.sh first's results once
# its I/O phase is over, in the guest and on the backends: RW, the read-write
# disk's, and /dev/ram0, the read-only disk's (16 blocks of generation 7).
first_boot_checks() {
	local g=$1 rw=$2 blkcheck=$top/build/guest/blkcheck q irqs
	guest_wait "$g" '^RO-DD ' 120
	ok $? "guest finishes its checks" "$g"
	grep -qx "VERIFY 0" "$g/out"
	ok $? "guest reads back what it wrote and zeros where it discarded" "$g"
	for q in 0 1; do
		irqs=$(awk -v q="$q" '$1 == "IRQ" && $2 == q { print $3 }' "$g/out")
		[ "${irqs:-0}" -gt 0 ]
		ok $? "queue $q completed requests ($irqs interrupts)" "$g"
	done
	"$blkcheck" verify "$rw" 0 512 1 && "$blkcheck" zero "$rw" 512 1024 &&
		"$blkcheck" verify "$rw" 1536 512 1
	ok $? "the backend holds the same bytes"
	grep -qx "RO-READ 0" "$g/out"
	ok $? "guest reads the read-only disk's data" "$g"
	grep -qx "RO-WRITE 1" "$g/out" && grep -qx "RO-DD 1" "$g/out"
	ok $? "guest cannot write the read-only disk" "$g"
	"$blkcheck" verify /dev/ram0 0 16 7
	ok $? "the read-only backend is unchanged"
}
