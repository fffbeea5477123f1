#!/usr/bin/env bash
# The kernel peer's veth topology by hand, for poking at it with ping, ss or
# tcpdump: two network namespaces joined by a veth pair,
#   NAME-tx: veth0 198.18.0.1/24  <->  NAME-rx: veth1 198.18.0.2/24
# 198.18.0.0/15 is the benchmarking range; nothing leaves the namespaces.
#   scripts/netns-veth.sh up [NAME]     (default NAME: pollnet-cmp-manual)
#   scripts/netns-veth.sh down [NAME]
#   scripts/netns-veth.sh list          namespaces package compare left behind
# Needs root and iproute2.
set -euo pipefail

cmd=${1:-}
name=${2:-pollnet-cmp-manual}
tx=$name-tx
rx=$name-rx

down() {
	ip netns del "$tx" 2>/dev/null || true
	ip netns del "$rx" 2>/dev/null || true
}

case $cmd in
up)
	trap 'down' ERR
	ip netns add "$tx"
	ip netns add "$rx"
	ip link add veth0 netns "$tx" type veth peer name veth1 netns "$rx"
	ip -n "$tx" addr add 198.18.0.1/24 dev veth0
	ip -n "$rx" addr add 198.18.0.2/24 dev veth1
	for ns in "$tx" "$rx"; do ip -n "$ns" link set lo up; done
	ip -n "$tx" link set veth0 up
	ip -n "$rx" link set veth1 up
	echo "up: ip netns exec $tx ping -c 3 198.18.0.2"
	;;
down)
	down
	;;
list)
	ip netns list | grep '^pollnet-cmp-' || true
	;;
*)
	echo "usage: $0 up|down [NAME] | list" >&2
	exit 2
	;;
esac
