package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
)

func runCLI(t *testing.T, env map[string]string, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	a := &app{stdin: bufio.NewReader(strings.NewReader(stdin)), stdout: &out, stderr: &out, getenv: func(k string) string { return env[k] }}
	cmd := a.rootCmd()
	cmd.SetArgs(args)
	err := cmd.Execute()
	if err != nil && !errors.As(err, new(exitCode)) {
		return out.String() + a.explain(err), err
	}
	return out.String(), err
}

func TestListJSONEmpty(t *testing.T) {
	out, err := runCLI(t, map[string]string{"ZBCERT_HOME": t.TempDir()}, "", "list", "--json")
	var v struct {
		ConfigDir    string `json:"config_dir"`
		Certificates []any  `json:"certificates"`
	}
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Certificates == nil || len(v.Certificates) != 0 || v.ConfigDir == "" {
		t.Fatalf("%v %s", err, out)
	}
}

func TestDoctorOutput(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	url := "https://" + ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	out, err := runCLI(t, map[string]string{"LANG": "zh_CN.UTF-8"}, "", "doctor", "--config-dir", dir, "--url", url, "--timeout", "1s")
	if !errors.Is(err, exitCode(1)) || !strings.Contains(out, "✗ 端口连通") || !strings.Contains(out, "    → ") || !strings.Contains(out, "TCP") {
		t.Errorf("zh text: %v\n%s", err, out)
	}
	out, _ = runCLI(t, nil, "", "doctor", "--config-dir", dir, "--url", url, "--timeout", "1s", "--json", "--lang", "en")
	var r struct {
		OK     bool `json:"ok"`
		Checks []struct{ ID, Status, Title, Advice string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.OK || len(r.Checks) != 15 || r.Checks[2].ID != "port" || r.Checks[2].Status != "fail" || r.Checks[2].Title != "Port reachable" {
		t.Errorf("json: %v\n%s", err, out)
	}
}

func TestSetupNeedsServerAndErrorsTranslated(t *testing.T) {
	dir := t.TempDir()
	if _, err := runCLI(t, nil, "", "setup", "--config-dir", dir); err == nil {
		t.Error("setup without --server")
	}
	out, err := runCLI(t, map[string]string{"LANG": "zh_CN"}, "pw\n", "revoke", "--config-dir", dir, "--user", "acme", "--all", "--password-stdin")
	if err == nil || !strings.Contains(out, "尚未设置服务器") {
		t.Errorf("revoke before setup: %v %s", err, out)
	}
	if _, err := runCLI(t, nil, "", "list", "--lang", "fr", "--config-dir", dir); err == nil {
		t.Error("--lang fr accepted")
	}
}
