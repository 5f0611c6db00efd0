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

echo "TAP version 13"
echo "1..7"
check "version names the ABI" 0 '^vhostblk-setup [0-9.]+ \(ABI [0-9]+\)$' "$helper" --version
check "help lists the commands" 0 'info' "$helper" --help
check "info reports ABI version and features" 0 \
	$'^abi_version 1\nfeatures size_max seg_max blk_size flush topology mq write_zeroes log_all indirect_desc event_idx version_1$' "$helper" info
check "info --json is one object with the same" 0 \
	'^\{"abi_version": 1, "features": \["size_max", "seg_max", "blk_size", "flush", "topology", "mq", "write_zeroes", "log_all", "indirect_desc", "event_idx", "version_1"\]\}$' \
	"$helper" info --json
check "no command is a usage error" 2 '' "$helper"
check_err "unknown command is a usage error naming it" "unknown command 'frobnicate'" "$helper" frobnicate
check_err "unexpected argument is named" "unexpected argument 'extra'" "$helper" info extra
exit $((failed > 0))
