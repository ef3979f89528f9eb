#!/bin/sh
# A flannel-style two-node cluster built from network namespaces named PREFIX…: a LAN
# bridge, nodes with a cni0 bridge and a flannel.1 VXLAN device, three Pods, and a
# kube-proxy-like DNAT for Service default/web (10.43.0.20:8080). Used by the bridge-CNI
# end-to-end test and by scripts/record-golden.sh. Usage: bridge-cluster.sh PREFIX
# (remove it with `ip netns del` of each PREFIX namespace).
P=$1
set -e
for ns in lan node-a node-b pod-client pod-web-a pod-web-b; do ip netns add ${P}$ns; done
ip -n ${P}lan link add sw0 type bridge; ip -n ${P}lan link set sw0 up
node() { # name ip podnet gw mac vtep
  ip -n ${P}lan link add $1 type veth peer name ens3 netns ${P}$1
  ip -n ${P}lan link set $1 master sw0 up
  ip -n ${P}$1 link set lo up; ip -n ${P}$1 addr add $2/24 dev ens3; ip -n ${P}$1 link set ens3 up
  ip -n ${P}$1 link add cni0 type bridge; ip -n ${P}$1 addr add $4/24 dev cni0; ip -n ${P}$1 link set cni0 up
  ip -n ${P}$1 link add flannel.1 type vxlan id 1 local $2 dev ens3 dstport 8472 nolearning
  ip -n ${P}$1 link set flannel.1 address $5 mtu 1450 up
  ip -n ${P}$1 addr add $6/32 dev flannel.1
  ip netns exec ${P}$1 sysctl -qw net.ipv4.ip_forward=1
}
node node-a 192.168.50.10 10.42.0.0 10.42.0.1 0a:fa:00:00:00:0a 10.42.0.0
node node-b 192.168.50.11 10.42.1.0 10.42.1.1 0a:fa:00:00:00:0b 10.42.1.0
ip -n ${P}node-a route add 10.42.1.0/24 via 10.42.1.0 dev flannel.1 onlink
ip -n ${P}node-a neigh add 10.42.1.0 lladdr 0a:fa:00:00:00:0b dev flannel.1 nud permanent
bridge -n ${P}node-a fdb add 0a:fa:00:00:00:0b dev flannel.1 dst 192.168.50.11 self permanent
ip -n ${P}node-b route add 10.42.0.0/24 via 10.42.0.0 dev flannel.1 onlink
ip -n ${P}node-b neigh add 10.42.0.0 lladdr 0a:fa:00:00:00:0a dev flannel.1 nud permanent
bridge -n ${P}node-b fdb add 0a:fa:00:00:00:0a dev flannel.1 dst 192.168.50.10 self permanent
pod() { # node pod veth ip gw
  ip -n ${P}$1 link add $3 type veth peer name eth0 netns ${P}$2
  ip -n ${P}$1 link set $3 master cni0 up
  ip -n ${P}$2 link set lo up; ip -n ${P}$2 addr add $4/24 dev eth0; ip -n ${P}$2 link set eth0 up
  ip -n ${P}$2 route add default via $5
}
pod node-a pod-client veth5e1f0a2b 10.42.0.5 10.42.0.1
pod node-a pod-web-a veth9c3d7e41 10.42.0.6 10.42.0.1
pod node-b pod-web-b vethb2a48f06 10.42.1.7 10.42.1.1
# The Service, as a kube-proxy-like DNAT on the client's node (always to the remote endpoint).
ip netns exec ${P}node-a iptables -t nat -N KUBE-SEP-TESTWEBREMOTE0
ip netns exec ${P}node-a iptables -t nat -A KUBE-SEP-TESTWEBREMOTE0 -p tcp -m comment --comment default/web:http -j DNAT --to-destination 10.42.1.7:80
ip netns exec ${P}node-a iptables -t nat -A PREROUTING -d 10.43.0.20/32 -p tcp --dport 8080 -j KUBE-SEP-TESTWEBREMOTE0
