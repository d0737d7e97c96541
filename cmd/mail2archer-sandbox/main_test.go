package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLine(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "deliver") {
		t.Errorf("help: %d %q", code, out.String())
	}
	if code := run([]string{"deliver"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage") {
		t.Errorf("deliver without files: %d %q", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"bench", "--service", filepath.Join(t.TempDir(), "absent")}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "go build -o bin/") {
		t.Errorf("bench without the service binary: %d %q", code, errOut.String())
	}
}

func TestSandboxNeverWipesAForeignDirectory(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "thesis.tex"), []byte("years of work"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := wipeSandboxDir(dir); err == nil {
		t.Fatal("a directory with foreign files was wiped")
	}
	if _, err := os.Stat(filepath.Join(dir, "thesis.tex")); err != nil {
		t.Fatalf("the file is gone: %v", err)
	}
	sb := filepath.Join(t.TempDir(), "sandbox-data")
	if err := os.MkdirAll(sb, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"mail2archer.db", "mail2archer.db-wal", "mail2archer.db.lock", "mapping.yaml"} {
		_ = os.WriteFile(filepath.Join(sb, f), nil, 0o600)
	}
	if err := wipeSandboxDir(sb); err != nil {
		t.Fatal(err)
	}
	if err := wipeSandboxDir(filepath.Join(t.TempDir(), "missing")); err != nil {
		t.Fatal(err)
	}
}
