package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
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

// fakeControl is a sandbox control API that keeps what it is sent.
type fakeControl struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (f *fakeControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.bodies = append(f.bodies, b)
	n := len(f.bodies)
	f.mu.Unlock()
	_, _ = fmt.Fprintf(w, "AAMkAD-%d\n", n)
}

func (f *fakeControl) take() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := f.bodies
	f.bodies = nil
	return out
}

// attachedOriginal returns the From address of a wrapped report and the
// bytes of its message/rfc822 attachment.
func attachedOriginal(t *testing.T, report []byte) (string, []byte) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil {
		t.Fatal(err)
	}
	_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("no message/rfc822 part: %v", err)
		}
		if ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); ct == "message/rfc822" {
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatal(err)
			}
			return from.Address, b
		}
	}
}

func TestDeliverAsReport(t *testing.T) {
	t.Parallel()
	ctl := &fakeControl{}
	srv := httptest.NewServer(ctl)
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	phish := filepath.Join(dir, "phish.eml")
	original := []byte("From: x@lookalike.example\r\nSubject: Verify your account\r\n\r\nhttps://lookalike.example/login\r\n")
	if err := os.WriteFile(phish, original, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.eml")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		// reporters are the From addresses of the reports sent, "" for an
		// email delivered as it is.
		reporters []string
		stderr    string
	}{
		{"as a report", []string{"--as-report", "--reporter", "alice@contoso.com", phish, phish}, 0, []string{"alice@contoso.com", "alice@contoso.com"}, ""},
		{"with a display name", []string{"--as-report", "--reporter", "Bob Brown <bob@contoso.com>", phish}, 0, []string{"bob@contoso.com"}, ""},
		{"the default reporter", []string{"--as-report", phish}, 0, []string{"reporter@contoso.com"}, ""},
		{"as it is", []string{phish}, 0, []string{""}, ""},
		{"as a report without a file", []string{"--as-report", "--reporter", "alice@contoso.com"}, 2, nil, "usage"},
		{"a reporter without --as-report", []string{"--reporter", "alice@contoso.com", phish}, 2, nil, "--as-report"},
		{"a reporter with a line break", []string{"--as-report", "--reporter", "alice@contoso.com\r\nBcc: all@contoso.com", phish}, 2, nil, "line break"},
		{"not an address", []string{"--as-report", "--reporter", "alice", phish}, 2, nil, "--reporter"},
		{"a missing and an empty file", []string{"--as-report", filepath.Join(dir, "absent.eml"), empty, phish}, 1, []string{"reporter@contoso.com"}, "empty file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Not parallel: the cases share the fake control API.
			var out, errOut bytes.Buffer
			code := run(append([]string{"deliver", "--control", addr}, tc.args...), &out, &errOut)
			if code != tc.code || !strings.Contains(errOut.String(), tc.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errOut.String(), tc.code, tc.stderr)
			}
			sent := ctl.take()
			if len(sent) != len(tc.reporters) {
				t.Fatalf("%d emails sent, want %d", len(sent), len(tc.reporters))
			}
			for i, body := range sent {
				if tc.reporters[i] == "" {
					if !bytes.Equal(body, original) {
						t.Errorf("the email was changed on the way")
					}
					continue
				}
				from, att := attachedOriginal(t, body)
				if from != tc.reporters[i] || !bytes.Equal(att, original) {
					t.Errorf("report %d from %s, original intact %v", i, from, bytes.Equal(att, original))
				}
			}
			if tc.code == 0 && strings.Count(out.String(), "delivered ") != len(tc.reporters) {
				t.Errorf("stdout %q", out.String())
			}
		})
	}
}

func TestWatchRecordsPrintsEachCreateAndUpdate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 17, 8, 10, 0, 0, time.UTC)
	rec := func(id int64, updated time.Time, reports float64) archersim.Record {
		f := map[string]any{"Reported Subject": "Please DocuSign", "Incident Category": []any{"Phishing"}, "Criticality SOC": []any{"High"}}
		if reports > 1 {
			f["Number of Reports"] = reports
		}
		return archersim.Record{ID: id, Created: t0, Updated: updated, Fields: f}
	}
	// Each look at the records returns the next snapshot; the last one
	// stays.
	snapshots := [][]archersim.Record{
		{rec(239643, t0, 1)}, // known at start: not printed
		{rec(239643, t0, 1), rec(239644, t0, 1)},
		{rec(239643, t0, 1), rec(239644, t0.Add(time.Minute), 2)},
		{rec(239643, t0, 1), rec(239644, t0.Add(2*time.Minute), 3)},
	}
	var mu sync.Mutex
	next := 0
	incidents := func() []archersim.Record {
		mu.Lock()
		defer mu.Unlock()
		s := snapshots[min(next, len(snapshots)-1)]
		next++
		return s
	}
	want := []string{
		"record 239644 created: 1 report, Phishing, High: Please DocuSign",
		"record 239644 updated: 2 reports",
		"record 239644 updated: 3 reports",
	}
	lines := make(chan string, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchRecords(ctx, lineWriter(lines), incidents, func(int) []string { return nil }, time.Millisecond)
	}()
	for _, w := range want {
		if got := <-lines; got != w {
			t.Errorf("line %q, want %q", got, w)
		}
	}
	cancel()
	<-done
	close(lines)
	for extra := range lines {
		t.Errorf("unexpected line %q", extra)
	}
}

// lineWriter sends each line written to it on a channel.
type lineWriter chan<- string

func (w lineWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		w <- l
	}
	return len(p), nil
}
