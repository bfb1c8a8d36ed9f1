#!/usr/bin/env bash
# Installs crictl, which Debian 12 does not package, for e2e/containerd_test.go
# (TestContainerd drives containerd's CRI with it). Built from source with the
# Go toolchain into $CRICTL_BIN (default /usr/local/bin), once: a crictl of the
# pinned version already there is left alone, so a second run costs nothing.
#
# The version: crictl speaks CRI v1, which containerd 1.6 and 1.7 serve.
# v1.34.0 is the oldest release `go install` can build from the module proxy
# (v1.30.0's go.mod has replace directives, which go install refuses; the
# releases between are not served); its first build takes about two minutes.
set -euo pipefail

readonly VERSION=v1.34.0
BIN=${CRICTL_BIN:-/usr/local/bin}

go=$(command -v go || echo /usr/local/go/bin/go)
# A crictl built by go install says "version unknown": its module says which.
if [ -x "$BIN/crictl" ] && "$go" version -m "$BIN/crictl" 2>/dev/null | grep -q "mod[[:space:]]sigs.k8s.io/cri-tools[[:space:]]$VERSION[[:space:]]"; then
  exit 0
fi
echo "install-crictl: building crictl $VERSION into $BIN"
GOBIN=$BIN "$go" install "sigs.k8s.io/cri-tools/cmd/crictl@$VERSION"
