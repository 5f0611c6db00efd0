# SPDX-License-Identifier: GPL-2.0
#
# vhost-blk: build, test and install. `make help` lists the targets.
#
# Kernel selection (override any of them on the command line):
#   KVER  kernel release: the running kernel if its headers are installed,
#         otherwise the newest installed Debian kernel
#   KDIR  its build directory, /lib/modules/$(KVER)/build
#   KSRC  kernel source tree with drivers/vhost/vhost.h, the kselftest harness
#         and checkpatch; by default the matching Debian linux-source package,
#         extracted (in part) under build/
#   KVERS the kernels `make modules`, `make check` and `make dkms-check` build
#         for and test: every installed kernel with headers and image,
#         oldest first
#         (`make deps` installs Debian's 6.1 and 6.12)

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
BUILD := $(TOP)/build

ifeq ($(origin KVER),undefined)
KVER := $(shell $(TOP)/scripts/kernel-env select)
endif
KDIR ?= /lib/modules/$(KVER)/build
KVERS ?= $(shell $(TOP)/scripts/kernel-env list)
# The kernel whose test VM boots the second-level guests in `make check`:
# KVER when it is tested, else the newest of KVERS.
NESTED_KVER := $(if $(filter $(KVER),$(KVERS)),$(KVER),$(lastword $(KVERS)))
# The kernel the second-level guests themselves boot (their image holds its
# virtio modules): the newest of KVERS, what current guests run. (Under the
# test bed's former QEMU 7.2 they booted 6.1, for memory corruption after
# migrations that turned out to be QEMU's: Documentation/testing.rst.)
GUEST_KVER ?= $(lastword $(KVERS))

# Debian version of the source to extract; empty until `make deps` ran.
ifeq ($(origin KSRC),undefined)
KSRC_SERIES := $(shell echo $(KVER) | cut -d. -f1,2)
KSRC_TARBALL := /usr/src/linux-source-$(KSRC_SERIES).tar.xz
KSRC_VERSION := $(shell dpkg-query -W -f='$${Version}' linux-source-$(KSRC_SERIES) 2>/dev/null)
KSRC := $(BUILD)/linux-source-$(KSRC_VERSION)
KSRC_STAMP := $(KSRC)/.extracted
KSRC_CHECK := $(KSRC)
else
KSRC_STAMP :=
KSRC_CHECK := $(KSRC)
endif

CC ?= gcc
CFLAGS ?= -O2 -g
USER_CFLAGS := -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -I$(TOP)/uapi

HELPER := $(BUILD)/helper/vhostblk-setup
SELFTESTS := $(patsubst selftests/vhost_blk/%.c,$(BUILD)/selftests/vhost_blk/%,\
	       $(filter-out %_lib.c,$(wildcard selftests/vhost_blk/*_test.c)))
SELFTEST_LIB := $(wildcard selftests/vhost_blk/*_lib.c)
BLKCHECK := $(BUILD)/guest/blkcheck
GUEST_IMAGE := $(BUILD)/guest/initramfs.cpio
GUEST_FIO_IMAGE := $(BUILD)/guest/initramfs-fio.cpio
FIO := $(BUILD)/fio/fio
BENCH := $(BUILD)/bench/vhostblk-bench
QEMU_DIR := $(BUILD)/qemu

KBUILD_ARGS := -C $(KDIR) M=$(TOP) VHOST_SRC=$(KSRC)/drivers/vhost W=1 KCFLAGS=-Werror

VM := $(TOP)/scripts/vm
CMD ?= sh

PREFIX ?= /usr/local
DESTDIR ?=

# The DKMS package: its version is dkms.conf's; its files are the module's
# sources, what builds them there, and nothing else. DKMS is the dkms command
# (options such as --dkmstree may follow), DKMS_SOURCETREE where the sources
# go (/usr/src/vhost-blk-<version>).
DKMS ?= dkms
DKMS_VERSION := $(shell sed -n 's/^PACKAGE_VERSION="\(.*\)"$$/\1/p' $(TOP)/dkms.conf)
DKMS_SOURCETREE ?= /usr/src
DKMS_FILES := dkms.conf Kbuild kernel/Kbuild uapi/linux/vhost_blk.h uapi/linux/vhost_blk_nl.h \
	$(filter-out %.mod.c,$(wildcard kernel/*.c)) $(wildcard kernel/*.h)
DKMS_SCRIPTS := scripts/dkms-build scripts/kernel-env
# make dkms-check's TAP file.
DKMS_TAP ?= $(BUILD)/check/host/results/dkms.tap

# dkms_stage DIR: the DKMS source tree in DIR, exactly DKMS_FILES and
# DKMS_SCRIPTS.
define dkms_stage
	@echo "  DKMS-SRC $(1)"
	@rm -rf $(1) && mkdir -p $(1)
	@cd $(TOP) && for f in $(DKMS_FILES); do install -D -m 0644 $$f $(1)/$$f || exit 1; done
	@cd $(TOP) && for f in $(DKMS_SCRIPTS); do install -D -m 0755 $$f $(1)/$$f || exit 1; done
endef

.PHONY: all deps kernel-check module modules helper selftests guest guest-fio qemu check check-debug lint \
	demo bench vm-run vm-shell install install-helper dkms-install dkms-remove dkms-check \
	clean help

all: module helper selftests guest $(BENCH)

help:
	@echo 'make deps       install packages (apt-get) and extract kernel sources'
	@echo 'make            build kernel/vhost_blk.ko, the helper and the selftests'
	@echo 'make modules    vhost_blk.ko for every kernel of KVERS in build/kmod/KVER/, the migration control in build/kmod-control/'
	@echo 'make check      build, lint, boot the test VM once per kernel of KVERS, run the suites'
	@echo 'make check-debug  the fast suites and a fault-injection run on a KASAN/lockdep/kmemleak kernel'
	@echo 'make demo       a vhost-blk guest and a QEMU data-plane guest, same fio jobs'
	@echo 'make migration-matrix  live-migrate TCG guests per QEMU (7.2, 10.0) and guest RAM, on this host (MATRIX_ARGS)'
	@echo 'make qemu       QEMU 10.0 with -device vhost-blk-pci and its qtests (patches/qemu) into build/qemu/'
	@echo 'make bench      every configuration side by side into bench/results/ (QUICK=1: a subset)'
	@echo 'make vm-shell   interactive shell in the test VM'
	@echo "make vm-run CMD='...'  run one command in the test VM"
	@echo 'make install    install module, helper and man page on this host'
	@echo 'make install-helper  the helper, its man page and files alone (with dkms-install)'
	@echo 'make dkms-install    (root) the module under DKMS in /usr/src/vhost-blk-$(DKMS_VERSION), built for KVER'
	@echo 'make dkms-remove     (root) remove it from DKMS and /usr/src'
	@echo 'make dkms-check      dkms build for every kernel of KVERS into build/dkms/, TAP in DKMS_TAP'
	@echo "kernel: KVER=$(KVER) KDIR=$(KDIR) KSRC=$(KSRC)"
	@echo "tested: KVERS=$(KVERS) (second-level guests on $(NESTED_KVER), booting $(GUEST_KVER))"

deps:
	$(TOP)/scripts/install-deps
	$(MAKE) -C $(TOP) kernel-check

# Fails with one line unless image, headers and source agree.
kernel-check: $(KSRC_STAMP)
	@$(TOP)/scripts/kernel-env check "$(KVER)" "$(KDIR)" "$(KSRC_CHECK)" >/dev/null

ifneq ($(KSRC_STAMP),)
$(KSRC_STAMP): $(KSRC_TARBALL)
	@$(TOP)/scripts/kernel-env source "$(KVER)" "$(KSRC)"

$(KSRC_TARBALL):
	@echo "$@: missing; run 'make deps'" >&2; exit 1
endif

module: kernel-check
	$(MAKE) $(KBUILD_ARGS) modules

# One module per kernel, each in its own copy of the sources; and for the
# kernel of the second-level guests' suites, the live-migration test's
# control (the module without dirty logging of data pages).
modules:
	@for k in $(KVERS); do $(TOP)/scripts/build-module $$k || exit 1; done
	@$(TOP)/scripts/build-module --control $(NESTED_KVER)

helper: $(HELPER)

# libnl-genl-3, for the vhost_blk netlink family (the helper's list and
# stats, netlink_test).
NL_CFLAGS := $(shell pkg-config --cflags libnl-genl-3.0 2>/dev/null || echo -I/usr/include/libnl3)
NL_LIBS := $(shell pkg-config --libs libnl-genl-3.0 2>/dev/null || echo -lnl-genl-3 -lnl-3)

HELPER_SRCS := $(wildcard helper/*.c)
HELPER_LIBS := $(shell pkg-config --libs libkmod 2>/dev/null || echo -lkmod) $(NL_LIBS)

$(HELPER): $(HELPER_SRCS) $(wildcard helper/*.h) uapi/linux/vhost_blk.h uapi/linux/vhost_blk_nl.h \
		| kernel-check
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) $(NL_CFLAGS) -o $@ $(HELPER_SRCS) $(LDFLAGS) $(HELPER_LIBS)

selftests: $(SELFTESTS)

$(BUILD)/selftests/vhost_blk/%: selftests/vhost_blk/%.c $(SELFTEST_LIB) \
		$(wildcard selftests/vhost_blk/*.h) uapi/linux/vhost_blk.h | kernel-check
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) -isystem $(KSRC)/tools/testing/selftests \
		-o $@ $< $(SELFTEST_LIB) $(LDFLAGS)

# netlink_test reads the family with libnl-genl-3, as the helper does.
$(BUILD)/selftests/vhost_blk/netlink_test: CFLAGS += $(NL_CFLAGS)
$(BUILD)/selftests/vhost_blk/netlink_test: LDFLAGS += $(NL_LIBS)
$(BUILD)/selftests/vhost_blk/netlink_test: uapi/linux/vhost_blk_nl.h
# poll_test reads the POLLED counter with the helper's client of the family.
$(BUILD)/selftests/vhost_blk/poll_test: CFLAGS += $(NL_CFLAGS) -Ihelper
$(BUILD)/selftests/vhost_blk/poll_test: LDFLAGS += helper/nlclient.c $(NL_LIBS)
$(BUILD)/selftests/vhost_blk/poll_test: helper/nlclient.c helper/nlclient.h \
		uapi/linux/vhost_blk_nl.h

# dirty_log_test with its fault-injection tests, for make check-debug only.
$(BUILD)/selftests/vhost_blk/dirty_log_faults: selftests/vhost_blk/dirty_log_test.c \
		$(SELFTEST_LIB) $(wildcard selftests/vhost_blk/*.h) uapi/linux/vhost_blk.h | kernel-check
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) -DVBLK_FAULT_TESTS -isystem $(KSRC)/tools/testing/selftests \
		-o $@ $< $(SELFTEST_LIB) $(LDFLAGS)

# The benchmark driver: the selftests' guest library without a guest, the
# helper's client of the netlink family for the device's counters, and
# liburing (liburing-dev) for --bare.
URING_CFLAGS := $(shell pkg-config --cflags liburing 2>/dev/null)
URING_LIBS := $(shell pkg-config --libs liburing 2>/dev/null || echo -luring)
$(BENCH): bench/vhostblk-bench.c $(SELFTEST_LIB) $(wildcard selftests/vhost_blk/*.h) \
		helper/nlclient.c helper/nlclient.h uapi/linux/vhost_blk.h \
		uapi/linux/vhost_blk_nl.h | kernel-check
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) $(NL_CFLAGS) $(URING_CFLAGS) -Iselftests/vhost_blk -Ihelper \
		-o $@ $< $(SELFTEST_LIB) helper/nlclient.c $(LDFLAGS) $(NL_LIBS) $(URING_LIBS) -lpthread

# The second-level guests' initramfs, and blkcheck built static for it and
# dynamic for the test VM's side. The image script skips an image that is up
# to date; so does build-fio for fio.
guest: $(BLKCHECK) $(BLKCHECK)-static | kernel-check
	@$(TOP)/scripts/guest-image $(GUEST_KVER) $(GUEST_IMAGE) $(BLKCHECK)-static

# The same with a static fio built from Debian's source, for demo and bench.
guest-fio: guest
	@$(TOP)/scripts/build-fio $(FIO)
	@$(TOP)/scripts/guest-image $(GUEST_KVER) $(GUEST_FIO_IMAGE) $(BLKCHECK)-static $(FIO)

$(BLKCHECK): selftests/vhost_blk/guest/blkcheck.c
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) -o $@ $<

$(BLKCHECK)-static: selftests/vhost_blk/guest/blkcheck.c
	@mkdir -p $(dir $@)
	$(CC) $(USER_CFLAGS) $(CFLAGS) -static -o $@ $<

# QEMU with the vhost-blk-pci device of patches/qemu, from Debian's source;
# cached (the script rebuilds only when the source or the series changes).
qemu:
	@$(TOP)/scripts/build-qemu $(QEMU_DIR)

# checkpatch and sparse, each one test that fails on any finding.
lint: kernel-check
	@$(TOP)/scripts/lint $(BUILD)/check/results "$(KSRC)" $(KBUILD_ARGS)

# Lint and a boot of the test VM per kernel of KVERS; see scripts/check.
check: all qemu modules
	@NESTED_KVER=$(NESTED_KVER) $(TOP)/scripts/check $(KVERS)

# The fast suites and a fault-injection run on a debug kernel (KASAN,
# lockdep, kmemleak), built once from linux-source into a cache outside the
# clone (about 20 minutes on 2 cores); see scripts/check-debug. Not part of
# `make check`.
check-debug: helper selftests $(BUILD)/selftests/vhost_blk/fail_nth \
		$(BUILD)/selftests/vhost_blk/dirty_log_faults
	@$(TOP)/scripts/check-debug

# Live migration hop after hop of first-level TCG guests on this machine,
# per QEMU (10.0, Debian 12's 7.2 unpacked into build/qemu-7.2/) and guest
# RAM (private, shared memfd); see scripts/migration-matrix --help. Not
# part of `make check`.
.PHONY: migration-matrix
migration-matrix: guest
	@$(TOP)/scripts/migration-matrix $(MATRIX_ARGS)

# Two second-level guests, one after the other, in one boot of the test VM.
demo: all guest-fio
	@$(VM) run --kver $(KVER) --timeout 1500 --log $(BUILD)/demo-console.log \
		$(if $(DEMO_QUEUES),--env 'DEMO_QUEUES=$(DEMO_QUEUES)') \
		-- scripts/demo $(DEMO_SECONDS)

# All configurations in one boot of the test VM; results under bench/results/.
# BENCH_CONFIGS, BENCH_GUEST_QUEUES and BENCH_POLL_US go through to bench/run.
bench: all guest-fio $(if $(QUICK),,qemu)
	@$(VM) run --kver $(KVER) --timeout 5400 --log $(BUILD)/bench-console.log \
		$(if $(BENCH_CONFIGS),--env 'BENCH_CONFIGS=$(BENCH_CONFIGS)') \
		$(if $(BENCH_GUEST_QUEUES),--env 'BENCH_GUEST_QUEUES=$(BENCH_GUEST_QUEUES)') \
		$(if $(BENCH_POLL_US),--env 'BENCH_POLL_US=$(BENCH_POLL_US)') \
		-- bench/run $(if $(QUICK),--quick) $(TOP)/bench/results

vm-run: all
	@$(VM) run --kver $(KVER) -- sh -c '$(CMD)'

vm-shell: all
	@$(VM) shell --kver $(KVER)

install: all install-helper
	$(MAKE) $(KBUILD_ARGS) INSTALL_MOD_PATH=$(DESTDIR) modules_install
	depmod $(if $(DESTDIR),-b $(DESTDIR)) -a $(KVER)

# Everything of `make install` but the module (which dkms-install installs).
install-helper: $(HELPER)
	install -D -m 0755 $(HELPER) $(DESTDIR)$(PREFIX)/sbin/vhostblk-setup
	install -D -m 0644 helper/vhostblk-setup.8 \
		$(DESTDIR)$(PREFIX)/share/man/man8/vhostblk-setup.8
	install -d $(DESTDIR)$(PREFIX)/libexec
	ln -sf ../sbin/vhostblk-setup $(DESTDIR)$(PREFIX)/libexec/vhost-user-blk-vhostblk
	install -D -m 0644 helper/50-vhostblk-setup.json \
		$(DESTDIR)/etc/qemu/vhost-user/50-vhostblk-setup.json
	install -D -m 0644 helper/vhostblk@.service \
		$(DESTDIR)/etc/systemd/system/vhostblk@.service
	install -D -m 0644 helper/vhostblk@.socket \
		$(DESTDIR)/etc/systemd/system/vhostblk@.socket
	install -D -m 0644 helper/60-vhost-blk.rules \
		$(DESTDIR)/etc/udev/rules.d/60-vhost-blk.rules

# The module under DKMS, which rebuilds it when a new kernel is installed:
# the sources into /usr/src/vhost-blk-VERSION, then dkms add, build and
# install for KVER. A version already added is removed first, so this also
# updates it.
dkms-install:
	@test "$$(id -u)" = 0 || { echo "dkms-install: run as root" >&2; exit 1; }
	@command -v $(firstword $(DKMS)) >/dev/null || \
		{ echo "dkms-install: dkms is not installed; apt-get install dkms" >&2; exit 1; }
	if [ -n "$$($(DKMS) status -m vhost-blk -v $(DKMS_VERSION))" ]; then \
		$(DKMS) remove -m vhost-blk -v $(DKMS_VERSION) --all; fi
	$(call dkms_stage,$(DKMS_SOURCETREE)/vhost-blk-$(DKMS_VERSION))
	$(DKMS) add -m vhost-blk -v $(DKMS_VERSION)
	$(DKMS) build -m vhost-blk -v $(DKMS_VERSION) -k $(KVER)
	$(DKMS) install -m vhost-blk -v $(DKMS_VERSION) -k $(KVER)

dkms-remove:
	@test "$$(id -u)" = 0 || { echo "dkms-remove: run as root" >&2; exit 1; }
	if [ -n "$$($(DKMS) status -m vhost-blk -v $(DKMS_VERSION))" ]; then \
		$(DKMS) remove -m vhost-blk -v $(DKMS_VERSION) --all; fi
	rm -rf $(DKMS_SOURCETREE)/vhost-blk-$(DKMS_VERSION)

# dkms build for each kernel of KVERS, as a kernel upgrade runs it, in a DKMS
# tree under build/dkms/ (the system's is left alone); the modules are copied
# to build/dkms/<kver>/vhost_blk.ko, the results are TAP in DKMS_TAP.
dkms-check:
	$(call dkms_stage,$(BUILD)/dkms/src/vhost-blk-$(DKMS_VERSION))
	@$(TOP)/scripts/dkms-check $(DKMS_TAP) $(BUILD)/dkms $(DKMS_VERSION) $(KVERS)

clean:
	-$(MAKE) $(KBUILD_ARGS) clean 2>/dev/null
	rm -rf $(BUILD)/helper $(BUILD)/selftests $(BUILD)/bench $(BUILD)/guest $(BUILD)/check $(BUILD)/vm \
		$(BUILD)/debug $(BUILD)/check-debug $(BUILD)/dkms
