#!/usr/bin/env bash
# Fault test of a three-node zbca cluster on one PostgreSQL database: the
# integration test TestClusterFault (integration/cluster_test.go) with a
# longer load. It restarts the machine's PostgreSQL once (pg_ctlcluster):
# run it on a test machine, as root or as the cluster's owner.
#
#   scripts/cluster/fault.sh                        # 120 s of load
#   ZBCA_FAULT_DURATION=10m scripts/cluster/fault.sh
#
# It prints the summary (certificates issued, revocations, client errors by
# kind, recovery time, OCSP propagation delays, readyz down time) and keeps
# it with every record and the node logs in ZBCA_FAULT_OUT (default: a new
# directory under /tmp). See scripts/cluster/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

export ZBCA_FAULT_DURATION="${ZBCA_FAULT_DURATION:-120s}"
export ZBCA_FAULT_OUT="${ZBCA_FAULT_OUT:-$(mktemp -d /tmp/zbca-fault.XXXXXX)}"
mkdir -p "$ZBCA_FAULT_OUT"
rm -f "$ZBCA_FAULT_OUT/summary.txt"
log="$ZBCA_FAULT_OUT/test.log"
echo "zbca fault test: ${ZBCA_FAULT_DURATION} of load; output in ${ZBCA_FAULT_OUT}" >&2

set +e
go test -tags integration -run '^TestClusterFault$' -count=1 -v \
	-timeout "${ZBCA_FAULT_TIMEOUT:-60m}" ./integration/ >"$log" 2>&1
status=$?
set -e

if [ -s "$ZBCA_FAULT_OUT/summary.txt" ]; then
	cat "$ZBCA_FAULT_OUT/summary.txt"
fi
if [ "$status" -ne 0 ]; then
	# The test's own failure messages (the summary is logged with an empty
	# first line, so it does not match).
	grep -E -- '--- (FAIL|SKIP)|_test\.go:[0-9]+: .' "$log" | head -60 >&2 || true
	echo "FAIL (go test exit status $status); full output: $log" >&2
	exit "$status"
fi
if grep -q -- '--- SKIP' "$log"; then
	grep -E -- '--- SKIP|_test\.go:[0-9]+: .' "$log" >&2 || true
	echo "SKIPPED; full output: $log" >&2
	exit 1
fi
echo "PASS; full output: $log" >&2
