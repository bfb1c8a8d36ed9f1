# syntax=docker/dockerfile:1
# ovs-vnet beside the host's ovs-vswitchd: docs/DEPLOY.md tells how to run it
# (host network, NET_ADMIN and SYS_ADMIN, the OVS and netns directories).
# hack/lint-deploy.sh checks this file.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules in a layer of their own: it survives every change but go.mod's and go.sum's.
COPY go.mod go.sum ./
RUN go mod download
# .git comes along (see .dockerignore): -buildvcs stamps the same revision as
# `make build`, which /v1/info and the build-info metric report as the version.
COPY . .
# Static, so that the CNI plugin also runs on hosts whose libc differs from the
# builder's once copied out of the image.
RUN --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags="-s -w" -o /out/ \
      ./cmd/ovs-vnet ./cmd/vnetctl ./cmd/ovs-vnet-cni

FROM debian:bookworm-slim
# nft is the one program the daemon runs (masquerade, routing between networks,
# the Linux backend's isolation); everything else is netlink, OVSDB and OpenFlow.
# Unpinned: bookworm's security updates replace the pinned version.
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ovs-vnet /out/vnetctl /usr/local/bin/
# Where a CNI runtime looks, so that an init container can copy it onto the host.
COPY --from=build /out/ovs-vnet-cni /opt/cni/bin/

ARG VERSION=devel
LABEL org.opencontainers.image.title="ovs-vnet" \
      org.opencontainers.image.description="Attaches network namespaces, containers and VMs to virtual networks on Open vSwitch or Linux bridges, by REST" \
      org.opencontainers.image.source="https://github.com/ovs-vnet/ovs-vnet" \
      org.opencontainers.image.version="${VERSION}"

# The daemon's defaults already suit a host-network container: API on
# 127.0.0.1:9476, OVSDB at unix:/var/run/openvswitch/db.sock, state in
# /var/lib/ovs-vnet. Override with -e OVS_VNET_<FLAG> or flags after the image.
VOLUME ["/var/lib/ovs-vnet"]
# It runs as root: it creates links, nftables tables and OVS ports on the host.
# No HEALTHCHECK: it would need an HTTP client in the image; probe GET /healthz
# and /readyz from outside (docs/DEPLOY.md).
ENTRYPOINT ["/usr/local/bin/ovs-vnet"]
