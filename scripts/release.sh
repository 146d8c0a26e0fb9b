#!/usr/bin/env bash
# Cross-compiles zbcert for the enterprises' computers, static
# (CGO_ENABLED=0), with SHA-256 checksums, into a folder that the portal's
# download page serves:
#
#   scripts/release.sh [OUT_DIR]      default: ${ZBCA_DATA:-zbca-data}/downloads
#
# Writes zbcert-windows-amd64.exe, zbcert-darwin-arm64, zbcert-darwin-amd64,
# zbcert-linux-amd64 and SHA256SUMS (sha256sum -c format). VERSION (default:
# git describe, else "dev") is stamped into `zbcert version`.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-${ZBCA_DATA:-zbca-data}/downloads}"
version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
targets="${TARGETS:-windows/amd64 darwin/arm64 darwin/amd64 linux/amd64}"
mkdir -p "$out"
tmp=$(mktemp -d "$out/.release-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
names=()
for t in $targets; do
  os=${t%/*} arch=${t#*/}
  name="zbcert-$os-$arch"
  [[ $os == windows ]] && name+=".exe"
  echo "building $name"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -ldflags "-s -w -X main.version=$version" -o "$tmp/$name" ./cmd/zbcert
  names+=("$name")
done
(cd "$tmp" && sha256sum "${names[@]}" > SHA256SUMS)
# Replace the published files only once every build has succeeded.
for f in "${names[@]}" SHA256SUMS; do
  mv -f "$tmp/$f" "$out/$f"
done
echo "zbcert $version → $out"
cat "$out/SHA256SUMS"
