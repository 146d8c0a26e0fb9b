//go:build integration

package integration

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// metricSum sums the samples of the metric family name whose labels
// contain every one of match (`reason="keyCompromise"`).
func metricSum(t *testing.T, in *instance, name string, match ...string) float64 {
	t.Helper()
	_, body := get(t, "http://"+in.admin+"/metrics")
	var sum float64
	found := false
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, m := range match {
			ok = ok && strings.Contains(line, m)
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
		found = true
	}
	if !found {
		t.Fatalf("no %s%v in /metrics", name, match)
	}
	return sum
}

// checkOwnerMetrics: what TestOwnerActions did shows in /metrics: two
// revocations (keyCompromise, then "all" as unspecified), the two
// lockouts of its wrong-password runs, the refusals while locked, and the
// CRL republished with both entries within its delay.
func checkOwnerMetrics(t *testing.T, in *instance) {
	if n := metricSum(t, in, "zbca_revocations_total"); n != 2 {
		t.Errorf("zbca_revocations_total = %v, want 2", n)
	}
	if n := metricSum(t, in, "zbca_revocations_total", `reason="keyCompromise"`); n != 1 {
		t.Errorf("keyCompromise revocations = %v, want 1", n)
	}
	if n := metricSum(t, in, "zbca_logins_total", `outcome="lockout"`); n != 2 {
		t.Errorf("lockouts = %v, want 2 (beta and ghost)", n)
	}
	if n := metricSum(t, in, "zbca_logins_total", `outcome="failed"`); n != 10 {
		t.Errorf("failed logins = %v, want 10", n)
	}
	if n := metricSum(t, in, "zbca_logins_total", `outcome="locked"`); n != 2 {
		t.Errorf("refused while locked = %v, want 2", n)
	}
	if n := metricSum(t, in, "zbca_logins_total", `outcome="ok"`); n < 4 {
		t.Errorf("successful logins = %v, want at least 4", n)
	}
	deadline := time.Now().Add(15 * time.Second)
	for metricSum(t, in, "zbca_crl_entries", `crl="issuing-1"`) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("zbca_crl_entries{crl=issuing-1} never reached 2")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if age := metricSum(t, in, "zbca_crl_age_seconds", `crl="issuing-1"`); age < 0 || age > 20 {
		t.Errorf("CRL age %v s right after its publication", age)
	}
	if age := metricSum(t, in, "zbca_ocsp_oldest_response_age_seconds"); age < 0 || age > 3600 {
		t.Errorf("oldest OCSP response age %v s", age)
	}
}
