#!/usr/bin/env bash
# Printed by `make run` just before the daemon starts: where the API is and a
# copy-paste session to try it.
set -euo pipefail
api="http://${1:-127.0.0.1:9476}"
cat <<TXT

ovs-vnet API: $api   (metrics: $api/metrics, readiness: $api/readyz)
In another shell, as root:

  ip netns add web1; ip netns add web2
  curl -sX PUT $api/v1/networks/blue -d '{"subnet":"10.10.0.0/24"}'
  curl -sX PUT $api/v1/ports/web1 -d '{"network":"blue","netns":"web1"}'
  curl -sX PUT $api/v1/ports/web2 -d '{"network":"blue","netns":"web2","ip":"10.10.0.20"}'
  ip netns exec web1 ping -c 3 10.10.0.20

Ctrl-C stops the daemon (ports keep forwarding); 'make stop' stops the sandboxed OVS.
TXT
