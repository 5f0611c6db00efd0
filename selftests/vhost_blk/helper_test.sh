#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# vhostblk-setup's command line against the loaded module. Needs root,
# /dev/vhost-blk, and VHOSTBLK_SETUP, the helper binary under test.
set -uo pipefail

helper=${VHOSTBLK_SETUP:?VHOSTBLK_SETUP: path of vhostblk-setup}
n=0
failed=0

# check DESC EXPECTED_STATUS EXPECTED_STDOUT_REGEX CMD...
check() {
	local desc=$1 want_rc=$2 want_out=$3 out rc
	shift 3
	n=$((n + 1))
	out=$("$@" 2>/dev/null)
	rc=$?
	if [ "$rc" -eq "$want_rc" ] && [[ $out =~ $want_out ]]; then
		echo "ok $n $desc"
	else
		echo "# status $rc (want $want_rc), output: $out"
		echo "not ok $n $desc"
		failed=$((failed + 1))
	fi
}

# check_err DESC EXPECTED_STDERR_REGEX CMD...: fails with status 1 or 2 and one line.
check_err() {
	local desc=$1 want_err=$2 err rc
	shift 2
	n=$((n + 1))
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -ne 0 ] && [[ $err =~ $want_err ]] && [ "$(printf '%s\n' "$err" | wc -l)" -le 2 ]; then
		echo "ok $n $desc"
	else
		echo "# status $rc, stderr: $err"
		echo "not ok $n $desc"
		failed=$((failed + 1))
	fi
}

# check_usage DESC EXPECTED_STDERR_REGEX CMD...: a usage error (status 2), one line.
check_usage() {
	local desc=$1 want_err=$2 err rc
	shift 2
	n=$((n + 1))
	err=$("$@" 2>&1 >/dev/null)
	rc=$?
	if [ "$rc" -eq 2 ] && [[ $err =~ $want_err ]] && [ "$(printf '%s\n' "$err" | wc -l)" -eq 1 ]; then
		echo "ok $n $desc"
	else
		echo "# status $rc (want 2), stderr: $err"
		echo "not ok $n $desc"
		failed=$((failed + 1))
	fi
}

# Whether the vhost core gives queues workers of their own (Linux 6.5).
kernel_has_queue_workers() {
	[ "$(uname -r | awk -F. '{ print $1 * 1000 + $2 }')" -ge 6005 ]
}

# A loop device over a sparse file, for check and serve: 64 MiB.
[ -e /dev/loop-control ] || modprobe loop
loop_file=$(mktemp /tmp/helper_test.XXXXXX)
truncate -s 64M "$loop_file"
loop_rw=$(losetup -f --show "$loop_file")
loop_ro=$(losetup -f --show -r "$loop_file")
links=$(mktemp -d /tmp/helper_test.XXXXXX)
ln -s "$helper" "$links/vhost-user-blk-vhostblk"
cleanup() {
	[ -n "${bg_pid:-}" ] && kill "$bg_pid" 2>/dev/null
	[ -n "${mounted:-}" ] && umount "/lib/modules/$(uname -r)" 2>/dev/null
	losetup -d "$loop_rw" "$loop_ro" 2>/dev/null
	[ -n "${rofs:-}" ] && umount "$rofs" 2>/dev/null
	rm -rf "$loop_file" "$links"
}
trap cleanup EXIT

# A serve that wrongly starts serving is ended by timeout (status 124).
caps='^\{"type": "block", "features": \["blk-file", "read-only"\]\}$'
xml=$'<!-- in <domain>: guest memory the back-end can map -->
<memoryBacking>
  <source type=\'memfd\'/>
  <access mode=\'shared\'/>
</memoryBacking>
<!-- in <devices> -->
<disk type=\'vhostuser\' device=\'disk\'>
  <driver name=\'qemu\' type=\'raw\' queues=\'4\'/>
  <source type=\'unix\' path=\'/run/vb/a&amp;b.sock\'>
    <reconnect enabled=\'yes\' timeout=\'10\'/>
  </source>
  <target dev=\'vdc\' bus=\'virtio\'/>
</disk>'

echo "TAP version 13"
check "version names the ABI" 0 '^vhostblk-setup [0-9.]+ \(ABI [0-9]+\)$' "$helper" --version
check "help lists the commands" 0 'info' "$helper" --help
check "info reports ABI version, features, and those that depend on the backend apart" 0 \
	$'^abi_version 2\nfeatures size_max seg_max blk_size flush topology mq log_all indirect_desc event_idx version_1\nbackend_features ro discard write_zeroes secure_erase \\(per disk, when its block device supports them; ro: a read-only disk\\)\ndevices 0 open, 0 running$' \
	"$helper" info
check "info --json is one object with the same" 0 \
	'^\{"abi_version": 2, "features": \["size_max", "seg_max", "blk_size", "flush", "topology", "mq", "log_all", "indirect_desc", "event_idx", "version_1"\], "backend_features": \["ro", "discard", "write_zeroes", "secure_erase"\], "devices": \{"open": 0, "running": 0\}\}$' \
	"$helper" info --json
check "no command is a usage error" 2 '' "$helper"
check_usage "unknown command is a usage error naming it" \
	"^vhostblk-setup: frobnicate: unknown command \(see vhostblk-setup --help\)$" "$helper" frobnicate
check_usage "unexpected argument is named" "^vhostblk-setup info: unexpected argument 'extra'$" "$helper" info extra
check_usage "an unknown option is named after the command" \
	"^vhostblk-setup qemu-args: unrecognized option '--target'$" "$helper" qemu-args --socket /s --target vdb
check_usage "a missing option value is named after the command" \
	"^vhostblk-setup serve: option '--backend' requires an argument$" "$helper" serve --backend
check "help shows exec's --ro-backend" 0 'exec \(--backend DEV \| --ro-backend DEV\)' "$helper" --help

for cmd in info check serve qemu-args libvirt-xml list stats; do
	check "$cmd --help shows its usage" 0 "^Usage: vhostblk-setup $cmd" "$helper" "$cmd" --help
done
check "help lists every command" 0 'check.*serve.*qemu-args.*libvirt-xml' "$helper" --help

check "check passes with the module loaded" 0 \
	$'^ok   module vhost_blk: loaded\nok   /dev/vhost-blk: accessible, ABI version 2$' "$helper" check
check "check --backend reports a writable block device" 0 \
	"ok   $loop_rw: block device, 67108864 bytes, writable\$" "$helper" check --backend "$loop_rw"
check "check --backend reports a read-only one" 0 \
	"ok   $loop_ro: block device, 67108864 bytes, read-only: serve it with --read-only\$" \
	"$helper" check --backend "$loop_ro"
check "check --backend fails on a character device" 1 \
	'FAIL /dev/null: not a block device or image file$' "$helper" check --backend /dev/null
check "check --backend fails on a missing path" 1 \
	'FAIL /nonexistent: No such file or directory$' "$helper" check --backend /nonexistent
check_err "check takes no argument" "unexpected argument 'x'" "$helper" check x

check "qemu-args prints shared memory, a reconnecting chardev and the device, ids from the socket's name" 0 \
	'^-object memory-backend-memfd,id=vhostblk-sdb-mem,size=1G,share=on -machine memory-backend=vhostblk-sdb-mem -chardev socket,id=vhostblk-sdb,path=/run/vb/sdb.sock,reconnect-ms=1000 -device vhost-user-blk-pci,id=vhostblk-sdb,chardev=vhostblk-sdb,num-queues=1$' \
	"$helper" qemu-args --socket /run/vb/sdb.sock
check "qemu-args takes --num-queues, --mem and --id, doubles commas" 0 \
	'^-object memory-backend-memfd,id=d1-mem,size=4G,share=on -machine memory-backend=d1-mem -chardev socket,id=d1,path=/run/a,,b.sock,reconnect-ms=1000 -device vhost-user-blk-pci,id=d1,chardev=d1,num-queues=4$' \
	"$helper" qemu-args --socket /run/a,b.sock --num-queues 4 --mem 4G --id d1
check "qemu-args --no-mem prints the chardev and the device alone" 0 \
	'^-chardev socket,id=vhostblk-sdc,path=/run/vb/sdc.sock,reconnect-ms=1000 -device vhost-user-blk-pci,id=vhostblk-sdc,chardev=vhostblk-sdc,num-queues=1$' \
	"$helper" qemu-args --socket /run/vb/sdc.sock --no-mem
# diff_words GOT WANT: prints "same", or both.
diff_words() {
	if [ "$1" = "$2" ]; then echo same; else printf 'got:\n%s\nwant:\n%s\n' "$1" "$2"; fi
}

# What QEMU receives from `qemu-system-x86_64 ... $(vhostblk-setup qemu-args
# ...)`: the output split and expanded as the shell does it, unquoted in an
# ordinary command, one argument per line.
qemu_argv() {
	local out
	out=$("$helper" qemu-args "$@") || return
	# shellcheck disable=SC2086 # splitting is what is tested
	printf '%s\n' $out
}
odd_sock="/run/vb/it's \"quoted\";\$HOME&,x.sock"
odd_sock=${odd_sock// /_}
check "qemu-args used as \$(...) hands QEMU every option whole, quotes and \$ as they are" 0 '^same$' \
	diff_words "$(qemu_argv --socket "$odd_sock" --id d1 --mem 2G)" \
	"-object
memory-backend-memfd,id=d1-mem,size=2G,share=on
-machine
memory-backend=d1-mem
-chardev
socket,id=d1,path=${odd_sock//,/,,},reconnect-ms=1000
-device
vhost-user-blk-pci,id=d1,chardev=d1,num-queues=1"
check_usage "qemu-args refuses a socket path with a blank, which \$(...) would split" \
	"^vhostblk-setup qemu-args: --socket: '/run/vb/a b.sock': a blank or one of \*\?\[ would split or expand it in \\\$\(\.\.\.\)$" \
	"$helper" qemu-args --socket '/run/vb/a b.sock'
check_usage "qemu-args refuses a socket path with a pattern character" \
	"^vhostblk-setup qemu-args: --socket: '/run/vb/\*.sock': " "$helper" qemu-args --socket '/run/vb/*.sock'
# The ids of each -object, -chardev and -device, "KIND ID" per line.
qemu_ids() {
	printf '%s\n' "$@" | awk '
		/^-(object|chardev|device)$/ { kind = $0; next }
		kind != "" && match("," $0, /,id=[^,]*/) { print kind, substr("," $0, RSTART + 4, RLENGTH - 4) }
		{ kind = "" }'
}
# shellcheck disable=SC2046 # the words of qemu-args, as a user pastes them
two_disks=$(qemu_ids $("$helper" qemu-args --socket /run/vb/sdb.sock) \
	$("$helper" qemu-args --socket /run/vb/sdc.sock))
check "two disks' qemu-args have six ids, none twice" 0 '^6 0$' \
	sh -c 'echo "$(printf "%s\n" "$1" | wc -l) $(printf "%s\n" "$1" | sort | uniq -d | wc -l)"' sh "$two_disks"
# shellcheck disable=SC2046
two_disks=$(qemu_ids $("$helper" qemu-args --socket /run/vb/sdb.sock) \
	$("$helper" qemu-args --socket /run/vb/sdc.sock --no-mem))
check "a second disk with --no-mem adds a chardev and a device of its own" 0 \
	$'^-object vhostblk-sdb-mem\n-chardev vhostblk-sdb\n-device vhostblk-sdb\n-chardev vhostblk-sdc\n-device vhostblk-sdc$' \
	echo "$two_disks"
check_err "qemu-args needs --socket" "qemu-args: --socket is required" "$helper" qemu-args
check_err "qemu-args refuses 65 queues" "qemu-args: --num-queues: '65' is not a number in 1..64" \
	"$helper" qemu-args --socket /s --num-queues 65
check_err "qemu-args refuses a bad size" "qemu-args: --mem: 'lots' is not a size" \
	"$helper" qemu-args --socket /s --mem lots

check "libvirt-xml prints memoryBacking and the vhostuser disk" 0 "^$xml\$" \
	"$helper" libvirt-xml --socket '/run/vb/a&b.sock' --target vdc --num-queues 4
check "libvirt-xml defaults to vdb and one queue, given explicitly" 0 \
	$'<driver name=\'qemu\' type=\'raw\' queues=\'1\'/>\n.*<target dev=\'vdb\' bus=\'virtio\'/>' \
	"$helper" libvirt-xml --socket /s
# The two fragments in the smallest domain, against libvirt's own schema.
libvirt_domain() {
	local out
	out=$("$helper" libvirt-xml --socket '/run/vb/a&b.sock' --num-queues 2) || return
	echo "<domain type='qemu'><name>vb</name><memory unit='MiB'>512</memory>"
	echo "<os><type arch='x86_64'>hvm</type></os>"
	awk '/<!-- in <devices> -->/ { exit } { print }' <<< "$out"
	echo "<devices>"
	awk 'on { print } /<!-- in <devices> -->/ { on = 1 }' <<< "$out"
	echo "</devices></domain>"
}
libvirt_domain > "$links/domain.xml"
check "libvirt-xml's fragments make a valid libvirt domain" 0 '' \
	virt-xml-validate "$links/domain.xml" domain
check_err "libvirt-xml refuses a non-virtio target" "libvirt-xml: --target: 'sda' is not a virtio disk name" \
	"$helper" libvirt-xml --socket /s --target sda
check_err "libvirt-xml needs --socket" "libvirt-xml: --socket is required" "$helper" libvirt-xml

check "serve --print-capabilities prints the vhost-user JSON" 0 "$caps" \
	"$helper" serve --print-capabilities
check "a vhost-user-blk-* link is the back-end program" 0 "$caps" \
	"$links/vhost-user-blk-vhostblk" --print-capabilities
check_err "serve needs a backend" "serve: --backend \(or --blk-file\) is required" \
	"$helper" serve --socket /tmp/x.sock
check_err "serve needs one of --socket and --fd" "serve: give one of --socket" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --fd 3
check_err "serve refuses a serial longer than 20" "serve: --serial: '123456789012345678901' is longer than 20" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --serial 123456789012345678901
check_err "serve refuses a queue size that is not a power of 2" "serve: --queue-size: 100 is not a power of 2" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --queue-size 100
check_err "serve fails on a non-block backend" "^vhostblk-setup serve: /dev/null: not a block device or image file$" \
	timeout 10 "$helper" serve --backend /dev/null --socket /tmp/x.sock
check_err "serve fails on a read-only device without --read-only" \
	"^vhostblk-setup serve: $loop_ro: .*serve a read-only device with --read-only" \
	timeout 10 "$helper" serve --backend "$loop_ro" --socket /tmp/x.sock
check_err "serve --fd needs a listening socket" "^vhostblk-setup serve: fd 0: not a listening stream socket$" \
	timeout 10 "$helper" serve --blk-file "$loop_rw" --fd 0
check_err "serve will not replace a file that is not a socket" \
	"^vhostblk-setup serve: $loop_file: exists and is not a socket$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$loop_file"
# wait_sock PATH: waits up to 10 s for the socket PATH to appear.
wait_sock() {
	for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done
	return 1
}
# The backend is opened exclusively: a second serve, exec or a mount cannot
# take it while serve holds it; --shared opts out.
timeout 60 "$helper" serve --backend "$loop_rw" --socket "$links/excl.sock" 2>/dev/null &
excl_pid=$!
wait_sock "$links/excl.sock"
check_err "a second serve of a served device is refused as in use" \
	"^vhostblk-setup serve: $loop_rw: in use \(mounted, or opened exclusively by another program; --shared opens it anyway\)$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/excl2.sock"
check_err "exec of a served device is refused as in use" "^vhostblk-setup exec: $loop_rw: in use " \
	"$helper" exec --backend "$loop_rw" -- echo %v %b
check_err "send-fds of a served device is refused as in use" "^vhostblk-setup send-fds: $loop_rw: in use " \
	"$helper" send-fds --qmp "$links/none.qmp" --backend "$loop_rw" --id d1
check "exec --shared opens a served device" 0 "^/dev/vhost-blk $loop_rw\$" \
	"$helper" exec --shared --backend "$loop_rw" -- sh -c 'echo "$(readlink /proc/self/fd/%v) $(readlink /proc/self/fd/%b)"'
timeout 60 "$helper" serve --shared --backend "$loop_rw" --socket "$links/excl2.sock" 2>/dev/null &
shared_pid=$!
check "serve --shared serves a device another serve holds" 0 '' wait_sock "$links/excl2.sock"
kill -TERM "$shared_pid" "$excl_pid" 2>/dev/null
wait "$shared_pid" "$excl_pid"
mnt=$links/mnt
mkdir -p "$mnt"
if mkfs.ext4 -q -F "$loop_rw" >/dev/null 2>&1 && mount "$loop_rw" "$mnt"; then
	check_err "serve refuses a mounted device" "^vhostblk-setup serve: $loop_rw: in use " \
		timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/excl.sock"
	umount "$mnt"
else
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n serve refuses a mounted device # could not mount an ext4 on $loop_rw"
fi
# Who may use the socket: its mode and group, and the peer's credentials.
# vu_client SOCK [SETPRIV_ARGS...]: GET_FEATURES, as the user SETPRIV_ARGS
# make; prints "features ok", or "closed" when the helper hung up.
vu_client() {
	local sock=$1
	shift
	setpriv "$@" /usr/bin/python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
data = b""
try:
    s.sendall(struct.pack("<III", 1, 1, 0))
    while len(data) < 20:
        more = s.recv(20 - len(data))
        if not more:
            break
        data += more
except (BrokenPipeError, ConnectionResetError):
    pass
if len(data) < 20:
    print("closed")
    sys.exit(0)
req, flags, size, features = struct.unpack("<IIIQ", data)
print("features ok" if req == 1 and features & (1 << 30) else "bad reply %r" % data)
' "$sock"
}
# serve_img NAME FILE SERVE_OPTION...: serves FILE (a block device or an
# image file) at $links/NAME.sock, log in $links/NAME.log; sets bg_pid once
# it logged that it serves.
serve_img() {
	local name=$1 file=$2
	shift 2
	rm -f "$links/$name.sock"
	"$helper" serve --backend "$file" --socket "$links/$name.sock" "$@" \
		2> "$links/$name.log" &
	bg_pid=$!
	for _ in $(seq 100); do
		grep -q ': serving ' "$links/$name.log" && return 0
		sleep 0.1
	done
	return 1
}
# serve_bg NAME SERVE_OPTION...: serve_img of loop_rw.
serve_bg() {
	local name=$1
	shift
	serve_img "$name" "$loop_rw" "$@"
}
# Other users reach the sockets in $links when the modes let them.
chmod 0711 "$links"
as_nobody=(--reuid=65534 --regid=65534 --clear-groups)
serve_bg perm
check "the socket is the helper's only by default (0600, root)" 0 '^600 root root$' \
	stat -c '%a %U %G' "$links/perm.sock"
check "root's front-end is served" 0 '^features ok$' vu_client "$links/perm.sock"
check "serve's log lines start with the command and the socket" 0 '' \
	grep -q "^vhostblk-setup serve: $links/perm.sock: serving $loop_rw, 1 queue, 1 worker\$" "$links/perm.log"
kill -TERM "$bg_pid"; wait "$bg_pid"
serve_bg perm --socket-mode 0660 --socket-group nogroup
check "--socket-mode and --socket-group set the socket's mode and group" 0 '^660 root nogroup$' \
	stat -c '%a %U %G' "$links/perm.sock"
kill -TERM "$bg_pid"; wait "$bg_pid"
serve_bg perm --socket-mode 0666
check "a front-end of another user is refused" 0 '^closed$' vu_client "$links/perm.sock" "${as_nobody[@]}"
check "the refusal is logged with the peer's pid, uid and gid" 0 '' \
	grep -Eq 'front-end refused \(pid [0-9]+, uid 65534, gid 65534\): not allowed' "$links/perm.log"
check "the helper serves the next front-end after a refusal" 0 '^features ok$' vu_client "$links/perm.sock"
kill -TERM "$bg_pid"; wait "$bg_pid"
serve_bg perm --socket-mode 0666 --allow-uid nobody
check "--allow-uid lets that user's front-end in" 0 '^features ok$' vu_client "$links/perm.sock" "${as_nobody[@]}"
kill -TERM "$bg_pid"; wait "$bg_pid"
serve_bg perm --socket-mode 0666 --allow-gid nogroup --allow-gid 4242
check "--allow-gid lets a front-end of that primary group in" 0 '^features ok$' \
	vu_client "$links/perm.sock" "${as_nobody[@]}"
kill -TERM "$bg_pid"; wait "$bg_pid"
check_err "serve refuses a mode that is not octal" "serve: --socket-mode: '0999' is not an octal mode" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --socket-mode 0999
check_err "serve refuses an unknown group" "serve: --socket-group: 'nosuchgroup' is no group name or number" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --socket-group nosuchgroup
check_err "serve refuses an unknown user to allow" "serve: --allow-uid: 'nosuchuser' is no user name or number" \
	"$helper" serve --backend "$loop_rw" --socket /tmp/x.sock --allow-uid nosuchuser
check_err "--socket-mode does not go with --fd" "serve: --socket-mode and --socket-group go with --socket" \
	"$helper" serve --backend "$loop_rw" --fd 0 --socket-mode 0660
# What a user pastes: QEMU with qemu-args' options for two disks, used as
# $(...), the second with --no-mem. Realized (QEMU connects and sets the
# devices up, the back-ends log it), not booted (-S); the devices are
# listed by their ids over QMP.
serve_bg q1
q1_pid=$bg_pid
"$helper" serve --backend "$loop_ro" --read-only --socket "$links/q2.sock" 2> "$links/q2.log" &
q2_pid=$!
wait_sock "$links/q2.sock"
# shellcheck disable=SC2046 # the words of qemu-args, as a user pastes them
timeout 120 qemu-system-x86_64 -machine q35,accel=tcg -m 1G -S -display none -nodefaults \
	$("$helper" qemu-args --socket "$links/q1.sock") \
	$("$helper" qemu-args --socket "$links/q2.sock" --no-mem) \
	-qmp "unix:$links/qemu.qmp,server=on,wait=off" 2> "$links/qemu.log" &
qemu_pid=$!
for _ in $(seq 300); do [ -S "$links/qemu.qmp" ] && break; sleep 0.1; done
check "QEMU takes qemu-args' options for two disks (devices vhostblk-q1, vhostblk-q2)" 0 \
	'^vhostblk-q1 vhostblk-q2$' python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(60)
s.connect(sys.argv[1])
f = s.makefile("rw")
def cmd(name, **args):
    f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
    f.flush()
    while True:
        reply = json.loads(f.readline())
        if "return" in reply or "error" in reply:
            return reply
f.readline()
cmd("qmp_capabilities")
devs = cmd("qom-list", path="/machine/peripheral").get("return", [])
print(" ".join(sorted(d["name"] for d in devs if d["type"].startswith("child<"))))
cmd("quit")
' "$links/qemu.qmp"
wait "$qemu_pid"
check "both back-ends served QEMU" 0 '^2$' \
	sh -c 'grep -l "front-end connected" "$@" | wc -l' sh "$links/q1.log" "$links/q2.log"
kill -TERM "$q1_pid" "$q2_pid"; wait "$q1_pid" "$q2_pid"
# --workers: the vhost workers serving the queues, more than one from Linux
# 6.5 on; by default one per queue, at most one per online CPU.
check_usage "serve refuses 0 workers" "serve: --workers: '0' is not a number in 1\.\.64$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --num-queues 4 --workers 0
check_usage "serve refuses a worker count that is not a number" "serve: --workers: 'abc' is not a number" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --num-queues 4 --workers abc
check_usage "serve refuses more workers than queues" \
	"serve: --workers 5: more workers than the 4 queues of --num-queues$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --num-queues 4 --workers 5
check_usage "serve refuses a negative --poll-us" "^vhostblk-setup serve: --poll-us: '-1' is not a number in 0\.\.1000000$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --poll-us -1
check_usage "serve refuses a --poll-us that is not a number" "^vhostblk-setup serve: --poll-us: '50us' is not a number in 0\.\.1000000$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --poll-us 50us
check_usage "serve refuses a --poll-us above a second" "^vhostblk-setup serve: --poll-us: '1000001' is not a number in 0\.\.1000000$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --poll-us 1000001
check_usage "serve refuses an empty --poll-us" "^vhostblk-setup serve: --poll-us: '' is not a number in 0\.\.1000000$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --poll-us=
check_usage "serve refuses more workers than the one queue it serves by default" \
	"serve: --workers 2: more workers than the 1 queue of --num-queues$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/w.sock" --workers 2
cpus=$(getconf _NPROCESSORS_ONLN)
if kernel_has_queue_workers; then
	serve_bg workers --num-queues 4 --workers 4
	check "serve --workers 4 serves 4 queues on 4 workers" 0 '' \
		grep -q ": serving $loop_rw, 4 queues, 4 workers\$" "$links/workers.log"
	kill -TERM "$bg_pid"; wait "$bg_pid"
	default_workers=$((cpus < 4 ? cpus : 4))
else
	check_err "serve --workers 2 is refused at startup where the vhost core has one worker per device" \
		"^vhostblk-setup serve: --workers 2: this kernel's vhost core has one worker per device \(per-queue workers need Linux 6\.5 or later\)$" \
		timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/workers.sock" --num-queues 2 --workers 2
	default_workers=1
fi
plural=s
[ "$default_workers" -eq 1 ] && plural=
serve_bg workers --num-queues 4
check "serve without --workers serves 4 queues on $default_workers worker$plural ($cpus CPUs)" 0 '' \
	grep -q ": serving $loop_rw, 4 queues, $default_workers worker$plural\$" "$links/workers.log"
check "and its front-end is served" 0 '^features ok$' vu_client "$links/workers.sock"
kill -TERM "$bg_pid"; wait "$bg_pid"
# --user: the descriptors are opened as root, then the helper is the user.
check_err "serve --user fails when the user cannot open /dev/vhost-blk" \
	"^vhostblk-setup serve: /dev/vhost-blk: cannot open as user nobody: Permission denied$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/user.sock" --user nobody
check_err "serve --user refuses an unknown user" "serve: --user nosuchuser: no such user" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/user.sock" --user nosuchuser
kdev_mode=$(stat -c '%a %g' /dev/vhost-blk)
chgrp nogroup /dev/vhost-blk && chmod 0660 /dev/vhost-blk
check "info as a user without CAP_NET_ADMIN says why it cannot count the devices" 0 \
	$'\nbackend_features .*\ndevices unknown: netlink family vhost_blk: Operation not permitted \\(needs root or CAP_NET_ADMIN\\)$' \
	setpriv "${as_nobody[@]}" "$helper" info
check "and so does info --json" 0 \
	', "devices": null, "devices_error": "netlink family vhost_blk: Operation not permitted \(needs root or CAP_NET_ADMIN\)"\}$' \
	setpriv "${as_nobody[@]}" "$helper" info --json
serve_bg user --user nobody
check "serve --user runs as the user, all its ids and groups" 0 \
	$'^Uid:\t65534\t65534\t65534\t65534\nGid:\t65534\t65534\t65534\t65534\nGroups:\t65534 ?$' \
	grep -E '^(Uid|Gid|Groups):' "/proc/$bg_pid/status"
check "serve --user serves root's front-end" 0 '^features ok$' vu_client "$links/user.sock"
kill -TERM "$bg_pid"; wait "$bg_pid"
chgrp "${kdev_mode#* }" /dev/vhost-blk; chmod "${kdev_mode% *}" /dev/vhost-blk
# /dev/vhost-blk that cannot be opened for another reason than a missing
# module (a socket file bound over it: ENXIO): the reason is named.
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$links/node.sock"
if mount --bind "$links/node.sock" /dev/vhost-blk; then
	check_err "serve names why /dev/vhost-blk cannot be opened" \
		"^vhostblk-setup serve: /dev/vhost-blk: cannot open: No such device or address$" \
		timeout 10 "$helper" serve --backend "$loop_rw" --socket "$links/excl.sock"
	check_err "exec names why /dev/vhost-blk cannot be opened" \
		"^vhostblk-setup exec: /dev/vhost-blk: cannot open: No such device or address$" \
		"$helper" exec --backend "$loop_rw" -- echo %v %b
	umount /dev/vhost-blk
else
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n serve names why /dev/vhost-blk cannot be opened # bind mount failed"
fi
# serve --fd: a listening socket inherited from the parent (as a service
# manager passes one), answering GET_FEATURES with the protocol-features bit.
fdsock=$links/fd.sock
python3 -c '
import os, socket, sys
helper, dev, path = sys.argv[1:]
s = socket.socket(socket.AF_UNIX)
s.bind(path)
s.listen(1)
os.set_inheritable(s.fileno(), True)
os.execv(helper, [helper, "serve", "--blk-file=" + dev, "--fd=%d" % s.fileno()])
' "$helper" "$loop_rw" "$fdsock" 2>/dev/null &
fd_pid=$!
for _ in $(seq 100); do [ -S "$fdsock" ] && break; sleep 0.1; done
check "serve --fd serves an inherited socket" 0 '^features ok$' python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(struct.pack("<III", 1, 1, 0))
data = b""
while len(data) < 20:
    data += s.recv(20 - len(data))
req, flags, size, features = struct.unpack("<IIIQ", data)
ok = req == 1 and flags == 5 and size == 8 and features & (1 << 30)
print("features ok" if ok else "bad reply %r" % data)
' "$fdsock"
kill -TERM "$fd_pid" 2>/dev/null
wait "$fd_pid"
check "serve exits with 0 on SIGTERM" 0 '' test "$?" -eq 0

# exec: the descriptors reach the program, numbers substituted.
check "exec hands the program /dev/vhost-blk and the backend" 0 "^/dev/vhost-blk $loop_rw\$" \
	"$helper" exec --backend "$loop_rw" -- sh -c 'echo "$(readlink /proc/self/fd/%v) $(readlink /proc/self/fd/%b)"'
# The last octal digit of fdinfo's flags: 2 read-write, 0 read-only.
check "exec opens --backend read-write and --ro-backend read-only" 0 '^2 0$' \
	"$helper" exec --backend "$loop_rw" --ro-backend "$loop_ro" -- \
	sh -c ': %v0 %v1; for f in %b0 %b1; do sed -n "s/^flags:.*\(.\)$/\1/p" /proc/self/fdinfo/$f; done | xargs'
check "exec --read-only opens every disk read-only" 0 '^0$' \
	"$helper" exec --read-only --backend "$loop_ro" -- sh -c ': %v; sed -n "s/^flags:.*\(.\)$/\1/p" /proc/self/fdinfo/%b'
check "exec --user runs the program as that user, descriptors open" 0 '^65534 /dev/vhost-blk$' \
	"$helper" exec --backend "$loop_rw" --user nobody -- sh -c ': %b; echo "$(id -u) $(readlink /proc/self/fd/%v)"'
check "exec turns %% into %" 0 '^100%$' \
	"$helper" exec --backend "$loop_rw" -- sh -c ': %v %b; echo 100%%'
check_err "exec needs a backend" "exec: --backend is required" "$helper" exec -- true
check_err "exec needs a program" "exec: no program to run" "$helper" exec --backend "$loop_rw"
check_err "exec refuses a placeholder of a disk not given" "exec: %v1: there is no disk 1" \
	"$helper" exec --backend "$loop_rw" -- echo %v %b %v1
check_err "exec refuses a disk the command does not use" \
	"exec: --backend $loop_rw: the command does not use %v0 and %b0" \
	"$helper" exec --backend "$loop_rw" -- echo %v
check_err "exec fails on a read-only device without --read-only" \
	"^vhostblk-setup exec: $loop_ro: .*with --read-only" "$helper" exec --backend "$loop_ro" -- echo %v %b
check_err "exec refuses an unknown user" "exec: --user nosuchuser: no such user" \
	"$helper" exec --backend "$loop_rw" --user nosuchuser -- echo %v %b
check_err "exec names a program that cannot run" "exec: /nonexistent: No such file or directory" \
	"$helper" exec --backend "$loop_rw" -- /nonexistent %v %b

# Image files: serve (and exec) put a regular file on a loop device of
# their own, with autoclear: it goes when its last descriptor closes.
# no_loop FILE: no loop device is bound to FILE.
no_loop() {
	[ -z "$(losetup -j "$1")" ]
}
# loop_of FILE: the loop device bound to FILE (exactly one).
loop_of() {
	local l
	l=$(losetup -j "$1" | cut -d: -f1)
	[ -n "$l" ] && [ "$(printf '%s\n' "$l" | wc -l)" -eq 1 ] && echo "$l"
}
img=$links/disk.img
truncate -s 16M "$img"
check_err "serve refuses a directory" "^vhostblk-setup serve: $links: a directory, not a block device or image file$" \
	timeout 10 "$helper" serve --backend "$links" --socket "$links/img.sock"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$links/img-node.sock"
check_err "serve refuses a socket file" "^vhostblk-setup serve: $links/img-node.sock: not a block device or image file$" \
	timeout 10 "$helper" serve --backend "$links/img-node.sock" --socket "$links/img.sock"
check_err "serve refuses a missing image file" "^vhostblk-setup serve: $links/none.img: No such file or directory$" \
	timeout 10 "$helper" serve --backend "$links/none.img" --socket "$links/img.sock"
# A file on a read-only file system: a small tmpfs remounted read-only.
rofs=$links/rofs
mkdir -p "$rofs"
mount -t tmpfs -o size=20m tmpfs "$rofs" && truncate -s 16M "$rofs/ro.img" && mount -o remount,ro "$rofs"
check_err "serve fails on a read-only image file without --read-only" \
	"^vhostblk-setup serve: $rofs/ro.img: Read-only file system \(serve a read-only device with --read-only\)$" \
	timeout 10 "$helper" serve --backend "$rofs/ro.img" --socket "$links/img.sock"
check "and leaves no loop device behind" 0 '' no_loop "$rofs/ro.img"
check "check --backend reports a read-only image file and the loop control" 0 \
	"ok   $rofs/ro.img: image file, 16777216 bytes, read-only: serve it with --read-only
ok   /dev/loop-control: accessible \(image files are served on loop devices\)\$" \
	"$helper" check --backend "$rofs/ro.img"
serve_img roimg "$rofs/ro.img" --read-only
ro_loop=$(loop_of "$rofs/ro.img")
check "serve --read-only serves a read-only image file on a read-only loop device" 0 '^1$' \
	cat "/sys/block/${ro_loop#/dev/}/ro"
check "its log names the file and the loop device" 0 '' \
	grep -q ": serving $rofs/ro.img ($ro_loop), 1 queue, 1 worker, read-only\$" "$links/roimg.log"
kill -TERM "$bg_pid"; wait "$bg_pid"
check "the loop device goes when serve exits" 0 '' no_loop "$rofs/ro.img"
umount "$rofs"
check "check --backend reports a writable image file" 0 \
	"ok   $img: image file, 16777216 bytes, writable
ok   /dev/loop-control: " "$helper" check --backend "$img"
# /dev/loop-control that cannot be opened (a socket bound over it: ENXIO).
if mount --bind "$links/img-node.sock" /dev/loop-control; then
	check "check --backend fails on an image file without /dev/loop-control" 1 \
		"FAIL /dev/loop-control: No such device or address \(image files are served on loop devices: modprobe loop\)\$" \
		"$helper" check --backend "$img"
	check_err "serve says why it cannot set up a loop device" \
		"^vhostblk-setup serve: $img: cannot open /dev/loop-control: No such device or address \(is the loop module loaded\?\)\$" \
		timeout 10 "$helper" serve --backend "$img" --socket "$links/img.sock"
	umount /dev/loop-control
	check "and leaves no loop device behind" 0 '' no_loop "$img"
else
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n serve says why it cannot set up a loop device # bind mount failed"
fi
serve_img img "$img"
img_loop=$(loop_of "$img")
check "serve of an image file answers its front-end" 0 '^features ok$' vu_client "$links/img.sock"
check "and holds the only descriptor of its loop device" 0 "^$img_loop\$" \
	sh -c 'for p in /proc/[0-9]*; do ls -l "$p/fd" 2>/dev/null; done | grep -o "/dev/loop[0-9]*\$"'
check_err "a second serve of a served image file is refused as in use" \
	"^vhostblk-setup serve: $img: in use \(locked by another program, such as another serve or QEMU; --shared opens it anyway\)$" \
	timeout 10 "$helper" serve --backend "$img" --socket "$links/img2.sock"
check_err "exec of a served image file is refused as in use" "^vhostblk-setup exec: $img: in use " \
	"$helper" exec --backend "$img" -- echo %v %b
check "and neither left a loop device behind" 0 "^$img_loop\$" loop_of "$img"
check "exec --shared opens it anyway, on a loop device of its own" 0 '^/dev/loop[0-9]+ 2$' \
	"$helper" exec --shared --backend "$img" -- sh -c 'l=$(readlink /proc/self/fd/%b); : %v; echo "$l $(losetup -j '"$img"' | wc -l)"'
kill -TERM "$bg_pid"; wait "$bg_pid"
check "serve exits with 0 on SIGTERM" 0 '' test "$?" -eq 0
check "and its loop device is gone" 0 '' no_loop "$img"
check "exec hands the program a loop device of the image file" 0 "^/dev/loop[0-9]+ $img\$" \
	"$helper" exec --backend "$img" -- sh -c 'l=$(readlink /proc/self/fd/%b); : %v; echo "$l $(cat /sys/block/${l#/dev/}/loop/backing_file)"'
check "which goes when the program exits" 0 '' no_loop "$img"
rm -f "$links/img.sock"
"$links/vhost-user-blk-vhostblk" --blk-file="$img" --socket-path="$links/img.sock" 2> "$links/vu.log" &
bg_pid=$!
wait_sock "$links/img.sock"
check "the vhost-user-blk program serves an image file given as --blk-file" 0 '^features ok$' \
	vu_client "$links/img.sock"
kill -TERM "$bg_pid"; wait "$bg_pid"
check "and its loop device goes with it" 0 '' no_loop "$img"

# send-fds: the command line, then the QMP exchange against a fake QEMU
# that takes the descriptors, counts the queues of the /dev/vhost-blk one
# as its owner (VHOST_SET_OWNER, then VHOST_SET_VRING_NUM on each index
# until one fails), and refuses the device.
check_err "send-fds needs --qmp, --backend and --id" \
	"send-fds: --qmp, --backend and --id are required" "$helper" send-fds --backend "$loop_rw"
check_err "send-fds refuses an id QEMU would refuse" "send-fds: --id: '1d' is not a QEMU id" \
	"$helper" send-fds --qmp x --backend "$loop_rw" --id 1d
check_err "send-fds takes device options only with --device-add" \
	"send-fds: --num-queues, --queue-size and --serial go with --device-add" \
	"$helper" send-fds --qmp x --backend "$loop_rw" --id d1 --serial s
check_err "send-fds says when QEMU's socket is missing" \
	"send-fds: $links/none.qmp: cannot connect: No such file or directory" \
	"$helper" send-fds --qmp "$links/none.qmp" --backend "$loop_rw" --id d1
qmpsock=$links/qmp.sock
fake_qemu='
import array, fcntl, json, os, socket, struct, sys
VHOST_SET_OWNER, VHOST_SET_VRING_NUM = 0xaf01, 0x4008af10
def queues(fd):
    fcntl.ioctl(fd, VHOST_SET_OWNER)
    n = 0
    while n < 256:
        try:
            fcntl.ioctl(fd, VHOST_SET_VRING_NUM, struct.pack("II", n, 256))
        except OSError:
            break
        n += 1
    return n
path, log = sys.argv[1:]
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(1)
srv.settimeout(20)  # gone, not waited for, when send-fds never connects
c, _ = srv.accept()
c.settimeout(10)
c.sendall(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
with open(log, "w") as out:
    buf = b""
    while True:
        fds = array.array("i")
        msg, anc, _, _ = c.recvmsg(4096, socket.CMSG_SPACE(4))
        if not msg:
            break
        for level, kind, data in anc:
            fds.frombytes(data[:4])
        buf += msg
        while buf.strip():
            cmd, end = json.JSONDecoder().raw_decode(buf.decode().lstrip())
            buf = buf.decode().lstrip()[end:].encode()
            name = cmd["execute"]
            args = cmd.get("arguments", {})
            target = os.readlink("/proc/self/fd/%d" % fds[0]) if fds else "-"
            if target == "/dev/vhost-blk":
                target += " with %d queues" % queues(fds[0])
            out.write("%s %s %s\n" % (name, json.dumps(args, sort_keys=True), target))
            out.flush()
            c.sendall(b"{\"event\": \"X\", \"data\": {}}\r\n")
            if name == "device_add":
                c.sendall(b"{\"error\": {\"class\": \"GenericError\", \"desc\": \"no \\\"bus\\\" here\"}}\r\n")
            else:
                c.sendall(b"{\"return\": {}}\r\n")
'
python3 -c "$fake_qemu" "$qmpsock" "$links/qmp.log" 2>/dev/null &
qmp_pid=$!
for _ in $(seq 100); do [ -S "$qmpsock" ] && break; sleep 0.1; done
check_err "send-fds reports QEMU's refusal of the device" \
	'^vhostblk-setup send-fds: device_add: no "bus" here$' \
	"$helper" send-fds --qmp "$qmpsock" --backend "$loop_rw" --id d1 --device-add \
	--num-queues 20 --serial 'a"b'
wait "$qmp_pid"
check "send-fds passes both descriptors, /dev/vhost-blk with the --num-queues, adds the device, closes them in QEMU on failure" 0 \
	"^qmp_capabilities \{\} -
getfd \{\"fdname\": \"d1-vhostfd\"\} /dev/vhost-blk with 20 queues
getfd \{\"fdname\": \"d1-backendfd\"\} $loop_rw
device_add \{\"backendfd\": \"d1-backendfd\", \"driver\": \"vhost-blk-pci\", \"id\": \"d1\", \"num-queues\": 20, \"read-only\": false, \"serial\": \"a\\\\\"b\", \"vhostfd\": \"d1-vhostfd\"\} -
closefd \{\"fdname\": \"d1-backendfd\"\} -
closefd \{\"fdname\": \"d1-vhostfd\"\} -\$" cat "$links/qmp.log"
# An image file: QEMU gets a loop device of its own, gone when QEMU exits.
rm -f "$qmpsock"
python3 -c "$fake_qemu" "$qmpsock" "$links/qmp-img.log" 2>/dev/null &
qmp_pid=$!
for _ in $(seq 100); do [ -S "$qmpsock" ] && break; sleep 0.1; done
check "send-fds takes an image file" 0 '^vhostfd=d2-vhostfd,backendfd=d2-backendfd$' \
	"$helper" send-fds --qmp "$qmpsock" --backend "$img" --id d2
wait "$qmp_pid"
check "and passes QEMU a loop device for it" 0 'getfd \{"fdname": "d2-backendfd"\} /dev/loop[0-9]+$' \
	cat "$links/qmp-img.log"
check "which goes when QEMU exits" 0 '' no_loop "$img"

# list and stats: the vhost_blk netlink family. Devices of two serve
# processes, each with a front-end that stays connected (the device is
# set up, owned by serve and running, at the connection), and one that
# exec opens and nobody owns.
# hold_client SOCK: a front-end that connects and stays until killed.
hold_client() {
	exec python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(3600)
' "$1"
}
# wait_log FILE REGEX: waits up to 10 s for a line of FILE to match.
wait_log() {
	for _ in $(seq 100); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# dev_id PATTERN: the id of the device whose list line matches PATTERN.
dev_id() {
	"$helper" list | awk -v p="$1" '$0 ~ p { print $1 }'
}
check "list with no device prints nothing" 0 '^$' "$helper" list
check "list --json with no device is an empty array" 0 '^\[\]$' "$helper" list --json
check "stats with no device prints nothing" 0 '^$' "$helper" stats
check "stats --json with no device is an empty array" 0 '^\[\]$' "$helper" stats --json
check_usage "list takes no argument" "^vhostblk-setup list: unexpected argument 'x'$" "$helper" list x
check_usage "stats refuses an ID that is not a number" \
	"^vhostblk-setup stats: ID: 'abc' is not a number in 1\.\.4294967295$" "$helper" stats abc
check_usage "stats refuses ID 0" "^vhostblk-setup stats: ID: '0' is not a number in 1\.\.4294967295$" \
	"$helper" stats 0
check_usage "stats takes one ID" "^vhostblk-setup stats: unexpected argument '2'$" "$helper" stats 1 2
check_usage "stats --watch refuses 0 seconds" \
	"^vhostblk-setup stats: --watch: '0' is not a number in 1\.\.3600$" "$helper" stats --watch=0
check_usage "stats names an unknown option" "^vhostblk-setup stats: unrecognized option '--frob'$" \
	"$helper" stats --frob
check_err "stats of an id no device has says so" "^vhostblk-setup stats: device 4000000: no such device$" \
	"$helper" stats 4000000
check "and fails with status 1" 1 '' "$helper" stats --json 4000000
check_err "list without CAP_NET_ADMIN says it needs root" \
	"^vhostblk-setup list: netlink family vhost_blk: Operation not permitted \(needs root or CAP_NET_ADMIN\)$" \
	setpriv "${as_nobody[@]}" "$helper" list
check_err "so does stats" "^vhostblk-setup stats: netlink family vhost_blk: Operation not permitted \(needs root or CAP_NET_ADMIN\)$" \
	setpriv "${as_nobody[@]}" "$helper" stats

serve_bg l1
l1_pid=$bg_pid
hold_client "$links/l1.sock" &
h1_pid=$!
wait_log "$links/l1.log" 'front-end connected'
rm -f "$links/l2.sock"
"$helper" serve --backend "$loop_ro" --read-only --num-queues 2 --poll-us 50 \
	--socket "$links/l2.sock" 2> "$links/l2.log" &
l2_pid=$!
wait_sock "$links/l2.sock"
hold_client "$links/l2.sock" &
h2_pid=$!
wait_log "$links/l2.log" 'front-end connected'
"$helper" exec --shared --backend "$loop_rw" -- sh -c 'exec sleep 600' sh %v %b &
ex_pid=$!
for _ in $(seq 100); do [ "$(readlink "/proc/$ex_pid/exe")" != "$helper" ] && break; sleep 0.1; done
rw=${loop_rw#/dev/}
ro=${loop_ro#/dev/}
rw_dev=$(cat "/sys/block/$rw/dev")
ro_dev=$(cat "/sys/block/$ro/dev")
check "list shows serve's device running, owned by serve, its backend read-write, not polling" 0 \
	"(^|
)[0-9]+ +running +$l1_pid +vhostblk-setup +$rw +$rw_dev +rw +1 +-(
|\$)" "$helper" list
check "and the other serve's, read-only, with 2 queues busy-polling 50 us (--poll-us 50)" 0 \
	"(^|
)[0-9]+ +running +$l2_pid +vhostblk-setup +$ro +$ro_dev +ro +2 +50us(
|\$)" "$helper" list
check "and exec's as no-owner, with the default 16 queues" 0 \
	"(^|
)[0-9]+ +no-owner +- +- +- +- +- +16 +-(
|\$)" "$helper" list
check "serve --poll-us logs the busy-poll time" 0 '' \
	grep -Eq ": serving $loop_ro, 2 queues, [0-9]+ workers?, busy-polling 50 us, read-only\$" "$links/l2.log"
check "three lines in all, ids in order" 0 '^3 sorted$' \
	sh -c '"$1" list | awk "{ print \$1 }" > "$2/ids"; echo "$(wc -l < "$2/ids") $(sort -n -c "$2/ids" && echo sorted)"' \
	sh "$helper" "$links"
# poll_us and workers: one per queue once the owner set the device up
# (none before); the workers' thread ids are 0 until a queue is kicked.
check "list --json has the same, every key in every object, a worker and a poll time per queue" 0 \
	"^no-owner None None None None None None 16 \\[\\] \\[\\]
running $l1_pid vhostblk-setup $rw ${rw_dev%:*} ${rw_dev#*:} False 1 \\[0\\] \\[0\\]
running $l2_pid vhostblk-setup $ro ${ro_dev%:*} ${ro_dev#*:} True 2 \\[0, 0\\] \\[50, 50\\]\$" \
	sh -c '"$1" list --json | python3 -c "
import json, sys
devs = json.load(sys.stdin)
keys = [\"id\", \"state\", \"owner_pid\", \"owner_comm\", \"backend\", \"backend_major\",
        \"backend_minor\", \"read_only\", \"num_queues\", \"features\", \"workers\", \"poll_us\"]
assert all(sorted(d) == sorted(keys) for d in devs), devs
assert [d[\"id\"] for d in devs] == sorted(d[\"id\"] for d in devs)
for d in sorted(devs, key=lambda d: (d[\"state\"], d[\"owner_pid\"] or 0)):
    print(*[d[k] for k in keys[1:-3]], d[\"workers\"], d[\"poll_us\"])
"' sh "$helper"
check "info counts the open and the running devices" 0 $'\ndevices 3 open, 2 running$' "$helper" info
id1=$(dev_id " $l1_pid ")
id2=$(dev_id " $l2_pid ")
check "stats ID prints a header and the device's total" 0 \
	"^ID +QUEUE +REQUESTS +READS +WRITES +FLUSHES +OTHER +ERRORS +READ_MiB +WRITE_MiB +INFLIGHT +MEAN_us +P99_us
$id2 +all +0 +0 +0 +0 +0 +0 +0\.0 +0\.0 +0 +- +-\$" "$helper" stats "$id2"
check "stats --queues adds a line per queue" 0 "
$id2 +all .*
$id2 +0 .*
$id2 +1 .*\$" "$helper" stats --queues "$id2"
check "stats takes its options after the ID too" 0 "^\[\{\"id\": $id2, " "$helper" stats "$id2" --json
check "stats without ID shows every device" 0 "^3\$" sh -c '"$1" stats | grep -c " all "' sh "$helper"
check "stats --json ID is an array of one device, its total and each queue" 0 "^$id2 2 0 0 None\$" \
	sh -c '"$1" stats --json "$2" | python3 -c "
import json, sys
s = json.load(sys.stdin)
assert len(s) == 1
d = s[0]
assert len(d[\"total\"][\"latency_hist\"]) == 24
print(d[\"id\"], len(d[\"queues\"]), d[\"total\"][\"requests\"], d[\"queues\"][1][\"queue\"] - 1, d[\"total\"][\"lat_p99_us\"])
"' sh "$helper" "$id2"
# --watch: a header per interval until SIGINT (status 0), or until the
# device watched is closed (status 1, one message).
"$helper" stats --watch=1 "$id1" > "$links/watch.out" 2> "$links/watch.err" &
w_pid=$!
wait_log "$links/watch.out" '^ID +QUEUE +IOPS'
kill -INT "$w_pid"; wait "$w_pid"
check "stats --watch prints intervals and exits with 0 on SIGINT" 0 "^ID +QUEUE +IOPS +READ_IOPS +WRITE_IOPS +READ_MiB/s +WRITE_MiB/s +MEAN_us +P99_us
$id1 +all +0\.0 +0\.0 +0\.0 +0\.00 +0\.00 +- +-(
|\$)" sh -c 'cat "$2"; exit "$1"' sh "$?" "$links/watch.out"
"$helper" stats --watch=1 --json "$id2" > "$links/watch.out" 2> "$links/watch.err" &
w_pid=$!
wait_log "$links/watch.out" '^\{"interval_s"'
kill "$h2_pid"; wait "$h2_pid"
wait "$w_pid"
check "stats --watch ends with 1 when its device is closed" 1 '' sh -c 'exit "$1"' sh "$?"
check "and says so in one line" 0 "^vhostblk-setup stats: device $id2: closed\$" cat "$links/watch.err"
check "its --json intervals are JSON objects, one per line" 0 "^ok\$" sh -c 'python3 -c "
import json, sys
for line in open(sys.argv[1]):
    o = json.loads(line)
    assert o[\"devices\"][0][\"id\"] == int(sys.argv[2]) and len(o[\"devices\"][0][\"queues\"]) == 2
print(\"ok\")
" "$1" "$2"' sh "$links/watch.out" "$id2"
check "a closed device is gone from list" 0 "^2 0\$" \
	sh -c '"$1" list | wc -l | tr "\n" " "; "$1" list | grep -c "^$2 " || true' sh "$helper" "$id2"
check_err "and from stats" "^vhostblk-setup stats: device $id2: no such device$" "$helper" stats "$id2"
kill "$h1_pid" "$ex_pid" 2>/dev/null; wait "$h1_pid" "$ex_pid"
kill -TERM "$l1_pid" "$l2_pid"; wait "$l1_pid" "$l2_pid"
check "no device is left" 0 '^$' "$helper" list

# Loading the module on demand (libkmod): a module tree with the vhost core
# and the vhost_blk.ko under test, mounted over the running kernel's while
# the module is unloaded; then without it, the message when it cannot load.
kver=$(uname -r)
# In a regular expression (6.12's release has a '+').
kver_re=$(printf '%s' "$kver" | sed 's/[][\\.*^$+?(){}|]/\\&/g')
modtree=$(mktemp -d /tmp/helper_test.XXXXXX)
moddir=$modtree/lib/modules/$kver
sock=$modtree/serve.sock
mkdir -p "$moddir/extra"
for f in modules.order modules.builtin modules.builtin.modinfo; do
	[ -e "/lib/modules/$kver/$f" ] && cp "/lib/modules/$kver/$f" "$moddir/"
done
modprobe --show-depends vhost | awk '$1 == "insmod" { print $2 }' | while read -r ko; do
	mkdir -p "$moddir/$(dirname "${ko#/lib/modules/$kver/}")"
	cp "$ko" "$moddir/${ko#/lib/modules/$kver/}"
done
cp "${VHOST_BLK_KO:-kernel/vhost_blk.ko}" "$moddir/extra/"
depmod -b "$modtree" "$kver" && mount --bind "$moddir" "/lib/modules/$kver" && mounted=1
rmmod vhost_blk
check_err "info without the module says to load it" \
	"^vhostblk-setup info: /dev/vhost-blk: missing: module vhost_blk is not loaded \(modprobe vhost_blk\)$" \
	"$helper" info
check "and fails with status 1" 1 '' "$helper" info --json
check_err "list without the module says to load it" \
	"^vhostblk-setup list: netlink family vhost_blk: missing: module vhost_blk is not loaded \(modprobe vhost_blk\)$" \
	"$helper" list
check "and fails with status 1" 1 '' "$helper" list --json
check_err "so does stats" \
	"^vhostblk-setup stats: netlink family vhost_blk: missing: module vhost_blk is not loaded \(modprobe vhost_blk\)$" \
	"$helper" stats --watch
check "check says serve loads the module" 0 \
	"ok   module vhost_blk: not loaded; serve loads /lib/modules/$kver_re/extra/vhost_blk.ko" \
	"$helper" check
timeout 20 "$helper" serve --backend "$loop_rw" --socket "$sock" 2>/dev/null &
serve_pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
check "serve loads the module when /dev/vhost-blk is missing" 0 '' \
	test -S "$sock" -a -d /sys/module/vhost_blk -a -c /dev/vhost-blk
kill -TERM "$serve_pid" 2>/dev/null
wait "$serve_pid"
[ -n "${mounted:-}" ] && umount "/lib/modules/$kver" && mounted=
rm -rf "$modtree"
rmmod vhost_blk
check_err "info without the module installed says to install it" \
	"^vhostblk-setup info: /dev/vhost-blk: missing: module vhost_blk is not installed for this kernel \(make install, then modprobe vhost_blk\)$" \
	"$helper" info
check_err "list without the module installed says to install it" \
	"^vhostblk-setup list: netlink family vhost_blk: missing: module vhost_blk is not installed for this kernel \(make install, then modprobe vhost_blk\)$" \
	"$helper" list
check "check fails when the module is neither loaded nor installed" 1 \
	'^FAIL module vhost_blk: not loaded and not installed for this kernel' "$helper" check
check_err "serve says why when the module cannot be loaded" \
	"^vhostblk-setup serve: /dev/vhost-blk: module vhost_blk not found for the running kernel: No such file or directory$" \
	timeout 10 "$helper" serve --backend "$loop_rw" --socket /tmp/x.sock
# Loaded again for the suites after this one.
insmod "${VHOST_BLK_KO:-kernel/vhost_blk.ko}"
check "vhost_blk.ko is loaded again" 0 '' test -c /dev/vhost-blk

# The plan last: TAP allows it, and the count is known only now.
echo "1..$n"
exit $((failed > 0))
