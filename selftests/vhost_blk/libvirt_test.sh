#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A real libvirt: Debian's libvirtd with its QEMU driver runs, in the test
# VM, a domain whose disks are served by `vhostblk-setup serve`, with the
# XML that `vhostblk-setup libvirt-xml` prints taken as it is. Needs root,
# the loaded module, VHOSTBLK_SETUP, the image of `make guest`, libvirtd
# and virsh (libvirt-daemon-driver-qemu, libvirt-daemon, libvirt-clients).
#
# The test VM's root is read-only, so libvirtd runs in a mount namespace of
# its own (unshare -m) where its directories are under the test's tmpfs:
# /var (lib, cache and log of libvirt), /run, /etc/libvirt (qemu.conf:
# QEMU as root, no security driver, no cgroups, no namespaces), and an
# /etc/passwd with Debian's libvirt-qemu user, which libvirt looks up
# before it reads qemu.conf. Only the QEMU driver is loaded. virsh talks to
# it on the socket under the test's directory; nothing of it outlives the
# test.
#
# One boot (guest/libvirt.sh), a domain of 2 vCPUs with stock QEMU 10.0
# (the domain's <emulator>), direct kernel boot of the guest image:
#   - defined with libvirt-xml's <memoryBacking> and <disk> as printed, the
#     disk served with one queue (the defaults of serve and libvirt-xml):
#     the domain starts, which it cannot when the XML leaves the queue count
#     to QEMU (one per vCPU, more than the back-end offers);
#   - the guest writes and reads back its disk; the backend holds the data;
#   - `virsh attach-device` hot-plugs a second served disk (two queues), the
#     guest finds it, writes and reads it back; `virsh detach-device`
#     unplugs it: gone in the guest and in libvirt's live XML, and its
#     helper sees QEMU disconnect;
#   - the guest powers off, `virsh undefine`, and nothing is left: QEMU
#     gone, both helpers exit with 0 on SIGTERM, libvirtd exits with 0 on
#     SIGTERM, and no process is left in its mount namespace.
# Prints TAP.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
helper=${VHOSTBLK_SETUP:-$top/build/helper/vhostblk-setup}
blkcheck=$top/build/guest/blkcheck
# shellcheck source=selftests/vhost_blk/guest_lib.sh
. "$top/selftests/vhost_blk/guest_lib.sh"

name=vhostblk-libvirt-test
serial1=lv-disk-serial
serial2=lv-plug-serial
mem=384
boot_secs=600
marker=1000
# In the test VM's tmpfs: unix sockets cannot live on 9p, nor loop devices.
work=$(mktemp -d /tmp/libvirt.XXXXXX)
state=$work/libvirt
g=$work/boot
n=0
failed=0
loops=()
helper_pids=()
libvirtd_pid=
qemu_pid=

virsh_bin=$(command -v virsh)

# virsh ARG...: virsh on this test's libvirtd, bounded.
virsh() {
	timeout 120 "$virsh_bin" -q -c "qemu:///system?socket=$state/run/libvirt/libvirt-sock" "$@"
}

cleanup() {
	if [ -n "$libvirtd_pid" ]; then
		virsh destroy "$name" > /dev/null 2>&1
		virsh undefine "$name" > /dev/null 2>&1
		kill "$libvirtd_pid" 2> /dev/null
	fi
	[ -n "$qemu_pid" ] && kill -KILL "$qemu_pid" 2> /dev/null
	kill "${helper_pids[@]}" 2> /dev/null
	wait 2> /dev/null
	[ ${#loops[@]} -gt 0 ] && losetup -d "${loops[@]}"
	if [ "$failed" -gt 0 ]; then
		sed 's/^/# helper: /' "$work"/helper-*.log 2> /dev/null
		tail -n 20 "$state/libvirtd.log" 2> /dev/null | sed 's/^/# libvirtd: /'
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# start_helper NAME BACKEND SERVE_OPTION...: serve BACKEND at $work/NAME.sock;
# sets helper_pid.
start_helper() {
	local name=$1 backend=$2
	shift 2
	"$helper" serve --backend "$backend" --socket "$work/$name.sock" "$@" \
		2>> "$work/helper-$name.log" &
	helper_pid=$!
	helper_pids+=("$helper_pid")
	wait_socket "$work/$name.sock"
}

# new_loop FILE: a 64 MiB loop device over FILE, added to loops (not in a
# subshell, or the cleanup would not know it).
new_loop() {
	local dev
	truncate -s 64M "$1" && dev=$(losetup -f --show "$1") || return 1
	loops+=("$dev")
}

# start_libvirtd: libvirtd in its own mount namespace, its directories in
# $state; sets libvirtd_pid.
start_libvirtd() {
	local drivers
	mkdir -p "$state"/{etc,run,drivers,var/tmp} "$state"/var/{lib,cache,log}/libvirt || return 1
	ln -s /run "$state/var/run"
	drivers=$(echo /usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so)
	[ -f "$drivers" ] || return 1
	ln -s "$drivers" "$state/drivers/"
	cat > "$state/etc/libvirtd.conf" <<-EOF
	unix_sock_rw_perms = "0700"
	auth_unix_rw = "none"
	log_outputs = "3:file:$state/libvirtd.log"
	EOF
	cat > "$state/etc/qemu.conf" <<-EOF
	user = "root"
	group = "root"
	dynamic_ownership = 0
	remember_owner = 0
	security_driver = "none"
	namespaces = [ ]
	cgroup_controllers = [ ]
	stdio_handler = "file"
	EOF
	{ cat /etc/passwd; echo "libvirt-qemu:x:64055:64055::/nonexistent:/usr/sbin/nologin"; } > "$state/passwd"
	{ cat /etc/group; echo "libvirt-qemu:x:64055:"; } > "$state/group"
	# unshare and sh exec: $! is libvirtd.
	# shellcheck disable=SC2016 # expanded by that sh
	unshare -m --propagation private sh -c '
		s=$1
		mount --bind "$s/var" /var && mount --bind "$s/run" /run &&
		mount --bind "$s/etc" /etc/libvirt &&
		mount --bind "$s/passwd" /etc/passwd && mount --bind "$s/group" /etc/group &&
		LIBVIRT_DRIVER_DIR=$s/drivers exec libvirtd' libvirtd "$state" \
		> "$work/libvirtd.out" 2>&1 &
	libvirtd_pid=$!
	wait_socket "$state/run/libvirt/libvirt-sock" 60
}

# domain_xml: the domain, with the <memoryBacking> and <disk> that
# libvirt-xml printed for disk 1 (in $work/disk1.xml) spliced in unmodified.
domain_xml() {
	local args
	args=$(printf '%s' "$marker" | base64 -w0)
	cat <<-EOF
	<domain type='qemu'>
	  <name>$name</name>
	  <memory unit='MiB'>$mem</memory>
	  <vcpu>2</vcpu>
	$(awk '/<!-- in <devices> -->/ { exit } { print }' "$work/disk1.xml")
	  <os>
	    <type arch='x86_64' machine='pc'>hvm</type>
	    <kernel>$(guest_kernel)</kernel>
	    <initrd>$top/build/guest/initramfs.cpio</initrd>
	    <cmdline>console=ttyS0 quiet panic=-1 ${GUEST_FAST_BOOT//$'\n'/ } GUEST_SCRIPT=libvirt.sh GUEST_ARGS=$args</cmdline>
	  </os>
	  <features><acpi/></features>
	  <cpu mode='maximum' migratable='off'/>
	  <on_poweroff>destroy</on_poweroff>
	  <on_reboot>destroy</on_reboot>
	  <on_crash>destroy</on_crash>
	  <devices>
	    <emulator>$(command -v "$GUEST_QEMU")</emulator>
	$(awk 'on { print } /<!-- in <devices> -->/ { on = 1 }' "$work/disk1.xml")
	    <serial type='file'><source path='$g/console'/><target port='0'/></serial>
	    <serial type='file'><source path='$g/out'/><target port='1'/></serial>
	    <controller type='usb' model='none'/>
	    <memballoon model='none'/>
	  </devices>
	</domain>
	EOF
}

# disks: the targets of the domain's disks in libvirt's live XML, on one line.
disks() { virsh domblklist "$name" | awk '{ printf "%s%s", sep, $1; sep = " " }'; }

# wait_for SECONDS COMMAND...: polls COMMAND every 0.2 s.
wait_for() {
	local i
	for ((i = 0; i < $1 * 5; i++)); do
		"${@:2}" && return 0
		sleep 0.2
	done
	return 1
}

# comment TEXT: TEXT as TAP comments.
comment() { sed 's/^/# /' <<< "$1"; }

disks_are() { [ "$(disks)" = "$1" ]; }
shut_off() { [ "$(virsh domstate "$name")" = "shut off" ]; }
gone() { ! kill -0 "$1" 2> /dev/null; }

echo "TAP version 13"
if ! command -v libvirtd > /dev/null || [ -z "$virsh_bin" ]; then
	echo "1..0 # SKIP no libvirtd or virsh (make deps)"
	exit 0
fi

[ -e /dev/loop-control ] || modprobe loop
new_loop "$work/disk1.img" && new_loop "$work/disk2.img"
ok $? "two loop devices as backends" || exit 1
rw1=${loops[0]}
rw2=${loops[1]}
start_helper disk1 "$rw1" --serial "$serial1"
ok $? "helper serves the domain's disk with its default queue count" || exit 1
start_libvirtd
ok $? "libvirtd starts with its QEMU driver, its directories on tmpfs" || exit 1
mnt_ns=$(readlink "/proc/$libvirtd_pid/ns/mnt")

"$helper" libvirt-xml --socket "$work/disk1.sock" --target vda > "$work/disk1.xml"
domain_xml > "$work/domain.xml"
out=$(virsh define "$work/domain.xml" 2>&1)
ok $? "virsh defines the domain with libvirt-xml's pieces as printed" ||
	{ comment "$out"; exit 1; }

# The console files exist before QEMU starts, so that the guest_lib helpers
# can follow them; libvirt appends to them.
mkdir -p "$g" && : > "$g/out" && : > "$g/console"
ln -s "$state/var/log/libvirt/qemu/$name.log" "$g/qemu.log"
out=$(virsh start "$name" 2>&1)
ok $? "the domain starts with 2 vCPUs and the one-queue disk" ||
	{ comment "$out"; exit 1; }
qemu_pid=$(cat "$state/run/libvirt/qemu/$name.pid")
echo "$qemu_pid" > "$g/pid"
echo "# QEMU: $(tr '\0' ' ' < "/proc/$qemu_pid/cmdline" | grep -o '\-device [^ ]*vhost-user-blk-pci[^ ]*')"

guest_wait "$g" '^HOTPLUG-WAIT' "$boot_secs"
ok $? "the guest boots" "$g" || exit 1
grep -qx "PROPS vda size=131072 lbs=512 ro=0 serial=$serial1 queues=1" "$g/out"
ok $? "the guest sees the disk with its size, serial and one queue" "$g"
grep -qx "DISK-IO 0" "$g/out"
ok $? "the guest writes the disk and reads it back" "$g"
"$blkcheck" verify "$rw1" 0 256 1
ok $? "the backend holds what the guest wrote"

# Hot-plug: a second helper, on another backend, with two queues.
start_helper disk2 "$rw2" --num-queues 2 --serial "$serial2"
ok $? "a second helper serves a disk with two queues"
"$helper" libvirt-xml --socket "$work/disk2.sock" --target vdb --num-queues 2 |
	awk 'on { print } /<!-- in <devices> -->/ { on = 1 }' > "$work/disk2.xml"
out=$(virsh attach-device "$name" "$work/disk2.xml" --live 2>&1)
ok $? "virsh attach-device hot-plugs libvirt-xml's disk" || comment "$out"
disks_are "vda vdb"
ok $? "libvirt's live XML has both disks ($(disks))"
guest_wait "$g" '^HOTPLUG-IO ' 300
grep -qx "HOTPLUG-SEEN 0" "$g/out" &&
	grep -qx "PROPS vdb size=131072 lbs=512 ro=0 serial=$serial2 queues=2" "$g/out"
ok $? "the guest finds the new disk with its serial and two queues" "$g"
grep -qx "HOTPLUG-IO 0" "$g/out"
ok $? "the guest writes the new disk and reads it back" "$g"
"$blkcheck" verify "$rw2" 0 256 2
ok $? "the second backend holds what the guest wrote"

out=$(virsh detach-device "$name" "$work/disk2.xml" --live 2>&1)
ok $? "virsh detach-device unplugs it" || comment "$out"
guest_wait "$g" '^HOTPLUG-GONE ' 300 && grep -qx "HOTPLUG-GONE 0" "$g/out"
ok $? "the disk is gone in the guest" "$g"
wait_for 120 disks_are vda
ok $? "the disk is gone from libvirt's live XML ($(disks))"
wait_for 30 grep -q "front-end disconnected" "$work/helper-disk2.log"
ok $? "its helper sees QEMU disconnect"

# The guest's go to power off: block $marker of its disk, written here.
"$blkcheck" write "$rw1" "$marker" 1 9
guest_wait "$g" '^GUEST-EXIT ' 120
ok $? "the guest powers off" "$g"
grep -qx "MARKER 0" "$g/out" && grep -qx "GUEST-EXIT 0" "$g/out"
ok $? "the guest's script ends well" "$g"
grep -qx "DMESG-ERRORS 0" "$g/out"
ok $? "the guest kernel log has no error" "$g"
wait_for 60 shut_off && [ "$(virsh domstate --reason "$name")" = "shut off (shutdown)" ]
ok $? "libvirt sees the domain shut off by the guest ($(virsh domstate --reason "$name"))"
wait_for 30 gone "$qemu_pid"
ok $? "QEMU is gone"
virsh undefine "$name" > /dev/null && [ -z "$(virsh list --all --name)" ]
ok $? "virsh undefine leaves no domain"

for i in 0 1; do
	kill -TERM "${helper_pids[$i]}"
	wait "${helper_pids[$i]}"
	ok $? "helper $((i + 1)) exits with 0 on SIGTERM"
done
helper_pids=()
kill -TERM "$libvirtd_pid"
wait "$libvirtd_pid"
ok $? "libvirtd exits with 0 on SIGTERM"
libvirtd_pid=
qemu_pid=
left=$(for p in /proc/[0-9]*; do
	[ "$(readlink "$p/ns/mnt" 2> /dev/null)" = "$mnt_ns" ] && cat "$p/comm"
done)
[ -z "$left" ]
ok $? "no process is left in libvirtd's namespace${left:+: $left}"

echo "1..$n"
exit $((failed > 0))
