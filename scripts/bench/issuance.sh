#!/usr/bin/env bash
# Durable issuance through the internal service (ca.Authority.Issue) on
# SQLite with 1, 8 and 64 concurrent callers: CSR check, journal commit,
# P-256 signature, certificate commit (WAL, synchronous=FULL, group commit).
# Target (issue 2): >= 2,000 certificates/s at 64 callers on 2 cores.
#
#   scripts/bench/issuance.sh [-count N]
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${2:-3}
go test -run '^$' -bench 'BenchmarkIssue' -benchtime 5s -count "$count" ./ca/ | tee /dev/stderr | \
  awk '/certs\/s/ { split($1, a, "/"); sub(/-[0-9]+$/, "", a[2]); r[a[2]] = r[a[2]] " " $5 }
       END { for (k in r) print k ": certs/s" r[k] }' | sort
