#!/usr/bin/env bash
# Rebuilds the portal's browser bundle from web/ (PKI.js and asn1js from
# npm, bundled by esbuild): enroll/portal/static/pkcs.bundle.js and
# THIRD_PARTY_NOTICES.txt beside it. Both are committed, so that
# `go build` needs no Node.
#
#   scripts/build-web.sh           rebuild
#   scripts/build-web.sh --check   rebuild, and fail if the result differs
#                                  from the committed files (CI)
set -euo pipefail
cd "$(dirname "$0")/.."
(cd web && npm ci --no-audit --no-fund --loglevel=error && node build.mjs)
if [[ "${1:-}" == "--check" ]]; then
  if ! git diff --exit-code --stat -- enroll/portal/static/; then
    echo "enroll/portal/static differs from what web/ builds: run scripts/build-web.sh and commit the result"
    exit 1
  fi
fi
