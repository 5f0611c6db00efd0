#!/bin/busybox sh
# shellcheck shell=sh
#
# vm-init.sh - the guest side of scripts/vm. Not meant to be run by hand.
#
# scripts/vm copies this file into its initramfs as /init, next to a static
# busybox and the kernel modules needed to mount 9p. It runs twice, both times
# as PID 1:
#
#   stage 1 (/init, in the initramfs): load the modules, mount the host's root
#     read-only (9p tag "root") on /newroot, mount the project directory
#     read-write (9p tag "project") at the same path inside it, mount the API
#     filesystems inside the new root, copy busybox and this script to
#     /newroot/run/vm/ and switch_root into the new root.
#   stage 2 (/run/vm/init stage2, in the new root): run the command of the run
#     directory with a clean environment, write its exit status into the run
#     directory, sync, power off. Nothing in the guest has to shut down
#     cleanly: all state that matters is already on the host.
#
# The host passes its parameters on the kernel command line; the kernel hands
# the NAME=VALUE words it does not know to init as environment variables:
#   VM_MODE     run | shell | probe
#   VM_PROJECT  base64 of the project path (any characters survive)
#   VM_RUNDIR   run directory, relative to the project (build/vm/run.PID.XXXXXX)
#   VM_TERM     TERM for the command
#   VM_ROWS, VM_COLS  terminal size for the interactive shell (optional)
#   VM_MODDIR   base64 of a host directory to show as /lib/modules/$(uname -r)
#               (optional: a kernel that is not installed on the host)
# The run directory holds cmd.sh (written by the host: exports + exec of the
# command) and receives "status".

BB=/bin/busybox
[ "${1:-}" = stage2 ] && BB=/run/vm/busybox
MSIZE=512000                # the maximum of 9pnet_virtio in 6.1
P9OPTS="trans=virtio,version=9p2000.L,msize=$MSIZE"

say() { echo "vm-init: $*" > /dev/console; }

power_off() {
	$BB sync
	$BB poweroff -f
	# poweroff -f does not return; if it ever does, do not let PID 1 exit
	# (that would be a kernel panic and look like a guest crash).
	echo o > /proc/sysrq-trigger
	while :; do $BB sleep 60; done
}

fail() {
	say "FATAL: $*"
	power_off
}

stage1() {
	export PATH=/bin
	$BB mount -t proc proc /proc
	$BB mount -t devtmpfs devtmpfs /dev

	while read -r module; do
		$BB insmod "/lib/vm-modules/$module" || fail "insmod $module failed"
	done < /lib/vm-modules/order

	project=$(echo "${VM_PROJECT:-}" | $BB base64 -d) || fail "bad VM_PROJECT"
	case $project in
	/*) ;;
	*) fail "VM_PROJECT is not an absolute path: '$project'" ;;
	esac

	root=/newroot
	$BB mkdir -p "$root"
	$BB mount -t 9p -o "$P9OPTS,ro,cache=loose" root "$root" ||
		fail "cannot mount the 9p root"
	$BB mount -t proc proc "$root/proc"
	$BB mount -t sysfs sysfs "$root/sys"
	$BB mount -t devtmpfs devtmpfs "$root/dev"
	$BB mkdir -p "$root/dev/pts" "$root/dev/shm"
	$BB mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts "$root/dev/pts"
	$BB mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
	$BB mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
	$BB mount -t tmpfs -o mode=755 tmpfs "$root/run"
	$BB mount -t debugfs debugfs "$root/sys/kernel/debug"
	$BB mount -t configfs configfs "$root/sys/kernel/config"
	$BB mount -t cgroup2 cgroup2 "$root/sys/fs/cgroup"

	# Last, so that a project under /tmp or /run is not hidden by their
	# tmpfs; there its mount point is made in the tmpfs.
	$BB mkdir -p "$root$project" 2> /dev/null
	[ -d "$root$project" ] || fail "$project does not exist in the guest root"
	$BB mount -t 9p -o "$P9OPTS,rw" project "$root$project" ||
		fail "cannot mount the project at $project"

	# A kernel that is not installed on the host brings its modules from
	# elsewhere: the read-only root cannot get a /lib/modules/<release>, so
	# a tmpfs over /lib/modules holds the mount point for them.
	if [ -n "${VM_MODDIR:-}" ]; then
		moddir=$(echo "$VM_MODDIR" | $BB base64 -d) || fail "bad VM_MODDIR"
		kver=$($BB uname -r)
		[ -f "$root$moddir/modules.dep" ] || fail "$moddir/modules.dep does not exist in the guest root"
		$BB mount -t tmpfs -o mode=755 tmpfs "$root/lib/modules" ||
			fail "cannot mount a tmpfs on /lib/modules"
		$BB mkdir -p "$root/lib/modules/$kver"
		$BB mount --bind "$root$moddir" "$root/lib/modules/$kver" ||
			fail "cannot bind $moddir to /lib/modules/$kver"
	fi

	$BB mkdir -p "$root/run/vm"
	$BB cp "$BB" /init "$root/run/vm/" || fail "cannot copy busybox to /run/vm"
	echo "$project" > "$root/run/vm/project"

	$BB umount /proc
	$BB umount /dev
	# shellcheck disable=SC2093 # exec returns only on failure
	exec $BB switch_root "$root" /run/vm/busybox sh /run/vm/init stage2
	fail "switch_root failed"
}

stage2() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	$BB hostname vm
	project=$($BB cat /run/vm/project)
	rundir="$project/${VM_RUNDIR:?}"
	cd "$project" || fail "cannot cd to $project"
	[ -f "$rundir/cmd.sh" ] || fail "$rundir/cmd.sh is missing"

	set -- env -i PATH="$PATH" HOME=/tmp TERM="${VM_TERM:-dumb}" \
		USER=root LOGNAME=root /bin/sh "$rundir/cmd.sh"
	case ${VM_MODE:-run} in
	shell)
		# A new session with the console as controlling terminal: the
		# interactive shell gets job control and Ctrl-C.
		tty=/dev/ttyS0
		if [ -n "${VM_ROWS:-}" ] && [ -n "${VM_COLS:-}" ]; then
			$BB stty -F "$tty" rows "$VM_ROWS" cols "$VM_COLS"
		fi
		# shellcheck disable=SC2094 # the tty is both stdin and stdout
		$BB setsid -c $BB "$@" < "$tty" > "$tty" 2>&1
		status=$?
		;;
	*)
		# Output on the second serial port, which the host streams; no
		# \n -> \r\n translation, no echo: bytes arrive as written.
		tty=/dev/ttyS1
		$BB stty -F "$tty" raw -echo
		$BB setsid $BB "$@" < /dev/null > "$tty" 2>&1
		status=$?
		# stty sets the mode with TCSADRAIN: it returns once every byte
		# written has left the UART, so the power-off loses nothing.
		$BB stty -F "$tty" raw -echo 2> /dev/null
		;;
	esac

	echo "$status" > "$rundir/status.tmp" && $BB mv "$rundir/status.tmp" "$rundir/status"
	power_off
}

if [ "${1:-}" = stage2 ]; then
	stage2
else
	stage1
fi
