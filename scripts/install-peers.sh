#!/usr/bin/env bash
# Installs the tools the comparison peers run (package compare), on Debian 12:
#   iproute2  `ip netns` and veth pairs for the kernel peer's veth topology
#   iperf3    the kernel-iperf3 peer
#   dpdk-dev  dpdk-testpmd (the `dpdk` package lacks it); pulls in the
#             net_null and net_ring PMDs (librte-net-null23, librte-net-ring23)
# Needs root. Tools already present are left alone.
set -euo pipefail

need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v iperf3 >/dev/null 2>&1 || need+=(iperf3)
command -v dpdk-testpmd >/dev/null 2>&1 || need+=(dpdk-dev)
if [ ${#need[@]} -eq 0 ]; then
	echo "peers' tools already installed"
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "missing: ${need[*]}; run as root to install them" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${need[@]}"
