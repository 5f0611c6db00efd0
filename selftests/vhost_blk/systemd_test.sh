#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The systemd units as shipped (helper/vhostblk@.socket, vhostblk@.service)
# without a running systemd: `systemd-analyze verify` on both, and socket
# activation by systemd-socket-activate, which holds the socket and runs the
# service's ExecStart the way systemd would (the listening socket as
# descriptor 3, LISTEN_FDS=1), under the unit's capability bounding set and
# NoNewPrivileges (setpriv); a vhost-user front-end then connects and gets
# a working disk. Needs root, /dev/vhost-blk, VHOSTBLK_SETUP, systemd's
# tools (package systemd) and the benchmark's front-end
# (build/bench/vhostblk-bench).
#
# The units name /usr/local/sbin/vhostblk-setup (make install-helper) and
# /run/vhostblk/: both are checked as copies with the helper under test
# and a temporary directory put in their place. The rest of the sandbox
# (system call filter, device ACL, namespaces) needs systemd as PID 1 and
# is not exercised here.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
helper=${VHOSTBLK_SETUP:?VHOSTBLK_SETUP: path of vhostblk-setup}
bench=${VHOSTBLK_BENCH:-$top/build/bench/vhostblk-bench}
units=$top/helper
n=0
failed=0

# ok STATUS DESC: one TAP line for a command's status; the status again.
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n $2"
		return 0
	fi
	echo "not ok $n $2"
	failed=$((failed + 1))
	return 1
}

# show FILE: a file's lines as TAP comments.
show() {
	sed 's/^/# /' "$1"
}

work=$(mktemp -d /tmp/systemd_test.XXXXXX)
loop_file=$work/disk.img
truncate -s 64M "$loop_file"
[ -e /dev/loop-control ] || modprobe loop
loop=$(losetup -f --show "$loop_file")
instance=${loop#/dev/}
kdev_mode=$(stat -c '%a %g' /dev/vhost-blk)
cleanup() {
	[ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null
	chgrp "${kdev_mode#* }" /dev/vhost-blk; chmod "${kdev_mode% *}" /dev/vhost-blk
	losetup -d "$loop"
	rm -rf "$work"
}
trap cleanup EXIT

# unit_value FILE KEY: the value of KEY= in the unit FILE (the last one).
unit_value() {
	sed -n "s/^$2=//p" "$1" | tail -n1
}

# The units as installed, but the helper under test and $work for
# /run/vhostblk; DIR gets both.
installable() {
	mkdir -p "$1"
	sed "s|/usr/local/sbin/vhostblk-setup|$helper|g; s|/run/vhostblk/|$work/|g" \
		"$units/vhostblk@.service" > "$1/vhostblk@.service"
	sed "s|/run/vhostblk/|$work/|g" "$units/vhostblk@.socket" > "$1/vhostblk@.socket"
}

# verify DIR: systemd-analyze verify of both units of DIR for an instance;
# its output in $work/verify.out. Fails on any complaint, warnings included
# (an unknown directive is only a warning to systemd).
verify() {
	(cd "$1" && systemd-analyze verify --man=no "./vhostblk@$instance.socket" \
		"./vhostblk@$instance.service") > "$work/verify.out" 2>&1 &&
		[ ! -s "$work/verify.out" ]
}

echo "TAP version 13"

installable "$work/units"
verify "$work/units"
ok $? "systemd-analyze verify passes both units, without a word" || show "$work/verify.out"

installable "$work/typo"
sed -i 's/^NoNewPrivileges=/NoNewPrivilegs=/' "$work/typo/vhostblk@.service"
! verify "$work/typo" && grep -q "Unknown key 'NoNewPrivilegs'" "$work/verify.out"
ok $? "and catches a misspelled directive" || show "$work/verify.out"

installable "$work/typo2"
sed -i 's/^ListenStream=/ListenStrem=/' "$work/typo2/vhostblk@.socket"
! verify "$work/typo2"
ok $? "and one in the socket unit" || show "$work/verify.out"

(cd "$work/units" && systemd-analyze security --offline=yes --threshold=20 --no-pager \
	"./vhostblk@$instance.service") > "$work/security.out" 2>&1
ok $? "systemd-analyze security rates the service's sandbox 2.0 or better" ||
	tail -n 3 "$work/security.out" | show /dev/stdin

service=$units/vhostblk@.service
grep -qx 'Requires=vhostblk@%i.socket' "$service" &&
	grep -q '^After=.*vhostblk@%i.socket' "$service" &&
	[[ $(unit_value "$service" ExecStart) == *" --fd 3 "* ]]
ok $? "the service requires its socket and serves the descriptor systemd passes first (--fd 3)"

# The service's command line for this instance, as systemd would run it:
# the specifiers replaced, $OPTIONS split into words.
# service_argv OPTIONS: prints one argument per line.
service_argv() {
	local cmd
	cmd=$(unit_value "$work/units/vhostblk@.service" ExecStart)
	cmd=${cmd//%I/$instance}
	cmd=${cmd//%i/$instance}
	cmd=${cmd//\$OPTIONS/$1}
	# shellcheck disable=SC2086 # word splitting as systemd's $OPTIONS
	printf '%s\n' $cmd
}
# The unit's capability bounding set and NoNewPrivileges as setpriv options.
sandbox=(setpriv)
bset=-all
for cap in $(unit_value "$service" CapabilityBoundingSet); do
	cap=${cap#CAP_}
	bset+=",+${cap,,}"
done
sandbox+=(--bounding-set "$bset")
[ "$(unit_value "$service" NoNewPrivileges)" = yes ] && sandbox+=(--no-new-privs)
sock=$(unit_value "$work/units/vhostblk@.socket" ListenStream)
sock=${sock//%i/$instance}

# frontend SOCK: GET_FEATURES, then GET_CONFIG's capacity (8 bytes at
# offset 0), as a front-end starts; prints "capacity N".
frontend() {
	python3 -c '
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(sys.argv[1])
def msg(req, payload=b"", reply=0):
    s.sendall(struct.pack("<III", req, 1, len(payload)) + payload)
    data = b""
    while len(data) < 12 + reply:
        more = s.recv(12 + reply - len(data))
        if not more:
            sys.exit("closed")
        data += more
    return data[12:]
features, = struct.unpack("<Q", msg(1, reply=8))
if not features & (1 << 30):
    sys.exit("no VHOST_USER_F_PROTOCOL_FEATURES")
config = msg(24, struct.pack("<III", 0, 8, 0) + bytes(8), reply=20)
print("capacity %d" % struct.unpack("<Q", config[12:20]))
' "$1"
}

# activate OPTIONS: systemd-socket-activate holds $sock and, at the first
# connection, runs the service's command in the unit's sandbox; sets
# serve_pid (the activator becomes the helper) and logs to $work/serve.log.
activate() {
	local argv
	mapfile -t argv <<< "$(service_argv "$1")"
	rm -f "$sock"
	systemd-socket-activate -l "$sock" "${sandbox[@]}" -- "${argv[@]}" \
		> "$work/serve.log" 2>&1 &
	serve_pid=$!
	for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.1; done
	return 1
}

# 64 MiB = 131072 sectors.
activate ""
ok $? "systemd-socket-activate holds the unit's socket"
out=$(frontend "$sock" 2>&1)
[ "$out" = "capacity 131072" ]
ok $? "the first front-end starts the service and reads the disk's capacity" ||
	{ printf '# front-end: %s\n' "$out"; show "$work/serve.log"; }
grep -q "^vhostblk-setup serve: fd 3: serving $loop, 1 queue, 1 worker\$" "$work/serve.log"
ok $? "the helper serves the inherited socket, descriptor 3" || show "$work/serve.log"
"$bench" --vhost-user "$sock" --rw randwrite --bs 4096 --depth 4 --seconds 1 \
	> "$work/bench.out" 2>&1 &&
	grep -q '"iops"' "$work/bench.out"
ok $? "a front-end that writes gets every request done (vhostblk-bench)" ||
	{ show "$work/bench.out"; show "$work/serve.log"; }
kill -TERM "$serve_pid"
wait "$serve_pid"
status=$?
serve_pid=
[ "$status" -eq 0 ] && [ -S "$sock" ]
ok $? "SIGTERM ends it with status 0, the socket left to its owner" || show "$work/serve.log"

# --user: the unit's bounding set has what becoming the user takes.
chgrp nogroup /dev/vhost-blk && chmod 0660 /dev/vhost-blk
activate "--user nobody"
out=$(frontend "$sock" 2>&1)
uids=$(grep '^Uid:' "/proc/$serve_pid/status" 2>/dev/null)
[ "$out" = "capacity 131072" ] && [ "$uids" = $'Uid:\t65534\t65534\t65534\t65534' ]
ok $? "with OPTIONS=--user nobody it serves as nobody" ||
	{ printf '# front-end: %s\n' "$out" "$uids"; show "$work/serve.log"; }
kill -TERM "$serve_pid"
wait "$serve_pid"
serve_pid=

echo "1..$n"
exit $((failed > 0))
