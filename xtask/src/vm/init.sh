#!/bin/sh
# PID 1 of the `cargo xtask vm-test` guest. It mounts what the integration
# tests need, reports the kernel, its LSMs and the exec method a daemon
# picks, runs each test binary and powers off. Every line meant for
# xtask starts with "@@vm ". /vm/config (written by xtask) sets
# PER_BINARY_TIMEOUT and TEST_THREADS and sets "$@" to the tests'
# arguments; /vm/tests lists the binaries, one "INDEX PATH" a line.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root TMPDIR=/tmp CI=true RUST_BACKTRACE=1
export ENFORCER_BIN=/enforcer/target/debug/enforcer
# Under TCG the daemon, the verifier above all, runs several times slower:
# the harness's timeouts stretch by this factor.
export ENFORCER_TEST_TIME_SCALE=4

mark() { printf '@@vm %s\n' "$*"; }
uptime() { read -r seconds _ < /proc/uptime; printf '%s' "$seconds"; }
off() {
	sync
	echo o > /proc/sysrq-trigger
	sleep 30
	exit 1 # a panic, and with -no-reboot qemu exits
}
must_mount() { # TYPE DIR [OPTIONS]
	mkdir -p "$2"
	if ! mount -t "$1" ${3:+-o "$3"} "$1" "$2"; then
		mark "mount-failed $1 $2"
	fi
}

must_mount proc /proc
must_mount sysfs /sys
must_mount devtmpfs /dev
must_mount tmpfs /tmp mode=1777
must_mount tmpfs /dev/shm mode=1777
# As on an installed system. The initramfs's root is tmpfs's 1777 (or
# ramfs's 775), under which `exec_trusted_only` would trust nothing.
chmod 755 / || mark "chmod-root-failed"
must_mount tmpfs /run mode=755
mkdir -p /root
# Where a distribution mounts it; the tests and the daemon find it from
# /proc/self/mountinfo either way.
must_mount cgroup2 /sys/fs/cgroup
must_mount bpf /sys/fs/bpf
must_mount securityfs /sys/kernel/security
must_mount tracefs /sys/kernel/tracing
must_mount debugfs /sys/kernel/debug
ip link set lo up || mark "lo-failed"
# Modules xtask put in the archive for this kernel, in order.
for module in /vm/modules/*; do
	[ -f "$module" ] || continue
	insmod "$module" || mark "module-failed $module"
done

mark "init $(uptime)"
mark "kernel $(uname -r)"
mark "cmdline $(cat /proc/cmdline)"
lsms=$(cat /sys/kernel/security/lsm 2>/dev/null || echo '?')
mark "lsm $lsms"
# These kernels run BPF LSM programs (unlike the development host's):
# the tests then fail where exec or self-protection falls back.
case ",$lsms," in
*,bpf,*) export ENFORCER_EXPECT_BPF_LSM=1 ;;
esac
mark "cpus $(grep -c ^processor /proc/cpuinfo)"

. /vm/config

# The exec method a daemon picks here, from its ready line, and whether
# the packet programs load, from its status after a policy that needs them.
probe_daemon() {
	probe_cgroup=/sys/fs/cgroup/vm-probe
	mkdir -p "$probe_cgroup" /tmp/vm-probe
	printf 'version = 1\n' > /tmp/vm-probe/policy.toml
	set -- --socket /tmp/vm-probe/control.sock
	"$ENFORCER_BIN" run --policy /tmp/vm-probe/policy.toml --cgroup "$probe_cgroup" "$@" \
		--pin-dir /sys/fs/bpf/vm-probe --state-dir /tmp/vm-probe/state \
		< /dev/null > /tmp/vm-probe/stdout 2> /tmp/vm-probe/stderr &
	daemon=$!
	waited=0
	while [ ! -s /tmp/vm-probe/stdout ] && [ "$waited" -lt 1200 ] && kill -0 "$daemon" 2> /dev/null; do
		sleep 0.1
		waited=$((waited + 1))
	done
	if [ -s /tmp/vm-probe/stdout ]; then
		mark "ready $(head -n 1 /tmp/vm-probe/stdout)"
		# Refused where they do not load; status then says why.
		printf 'version = 1\n[[block]]\nname = "vm-probe"\ndomains = ["probe.invalid"]\n' \
			> /tmp/vm-probe/domains.toml
		"$ENFORCER_BIN" policy apply /tmp/vm-probe/domains.toml "$@" > /dev/null 2>&1
		"$ENFORCER_BIN" status "$@" 2>&1 | while IFS= read -r line; do mark "status $line"; done
		"$ENFORCER_BIN" unload --confirm "$@" --pin-dir /sys/fs/bpf/vm-probe > /dev/null 2>&1 ||
			mark "probe-unload-failed"
	else
		mark "ready-missing"
		kill "$daemon" 2> /dev/null
	fi
	wait "$daemon"
	mark "probe-exit $? after $waited tenths"
	while IFS= read -r line; do mark "probe-stderr $line"; done < /tmp/vm-probe/stderr
	rm -rf /sys/fs/bpf/vm-probe /tmp/vm-probe
	rmdir "$probe_cgroup" 2> /dev/null
}
probe_daemon

# Each program's verified instructions against the budget, or why this
# kernel refuses it.
"$ENFORCER_BIN" probe 2>&1 | while IFS= read -r line; do mark "verified $line"; done

cd /enforcer/tests || mark "no-package-dir"
while read -r index binary; do
	mark "begin $index $(uptime)"
	timeout -k 10 "$PER_BINARY_TIMEOUT" "$binary" ${TEST_THREADS:+--test-threads="$TEST_THREADS"} "$@" < /dev/null
	status=$?
	mark "end $index $status $(uptime)"
done < /vm/tests
mark "done $(uptime)"
off
