#!/bin/sh
# shellcheck shell=sh
#
# The guest kernel's complaints, for the host's side of a test: every kernel
# message at error level or worse, and every line that names an error, a
# warning or a bug, each as "DMESG-ERROR <line>", then "DMESG-ERRORS
# <count>". The RAS driver's boot message "Correctable Errors collector
# initialized" (6.12) names no error and is left out.

dmesg -r | grep -E '^<[0-3]>|[Ee][Rr][Rr][Oo][Rr]|WARNING:|BUG:|Oops' |
	grep -v 'Correctable Errors collector initialized' > /tmp/dmesg-errors
sed 's/^/DMESG-ERROR /' /tmp/dmesg-errors
echo "DMESG-ERRORS $(wc -l < /tmp/dmesg-errors)"
