package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/store"
)

const (
	testTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	testSub    = "7f105c7d-2dc5-4530-97cd-4e7ae6534c07"
	testSecret = "client-state-secret-for-the-durability-test"
)

// buildBinary compiles the command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mail2archer")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

type proc struct {
	cmd  *exec.Cmd
	addr string
	logs *bytes.Buffer
	done chan error
}

// start runs the binary and waits for the log line that gives its address.
func start(t *testing.T, bin, dir string, extraEnv ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Dir = dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"M2A_TENANT_ID=" + testTenant,
		"M2A_PUBLIC_URL=https://mail2archer.example.com",
		"M2A_LISTEN_ADDR=127.0.0.1:0",
		"M2A_DATABASE_URL=sqlite://./state/m2a.db",
		"M2A_LOG_FORMAT=json",
	}, extraEnv...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	addrCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logs.WriteString(line + "\n")
			var ev struct {
				Message string `json:"message"`
				Addr    string `json:"addr"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Message == "mail2archer is serving" {
				addrCh <- ev.Addr
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case p.addr = <-addrCh:
	case err := <-p.done:
		t.Fatalf("service exited before serving: %v\n%s", err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("service did not start:\n%s", p.logs)
	}
	return p
}

func notification(messageID string) []byte {
	b, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
		"subscriptionId": testSub, "clientState": testSecret, "changeType": "created",
		"tenantId": testTenant, "resource": "users/x/messages/" + messageID,
		"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.Message", "id": messageID},
	}}})
	return b
}

// TestAcceptedNotificationsSurviveSIGKILL posts notifications, kills the
// process right after the 202s, restarts it, and finds every job.
func TestAcceptedNotificationsSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	ctx := context.Background()

	st, err := store.Open(ctx, "sqlite://"+filepath.Join(dir, "state", "m2a.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveSubscription(ctx, store.Subscription{ID: testSub, Mailbox: "phish@contoso.com",
		Folder: "Inbox", ClientState: testSecret, ExpiresAt: time.Now().Add(72 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	_ = st.Close()

	p := start(t, bin, dir)
	const n = 40
	for i := 0; i < n; i++ {
		resp, err := http.Post("http://"+p.addr+"/webhooks/graph", "application/json",
			bytes.NewReader(notification(fmt.Sprintf("AAMk-durable-%02d", i))))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("notification %d: status %d", i, resp.StatusCode)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done

	p2 := start(t, bin, dir)
	resp, err := http.Get("http://" + p2.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz after restart: %d", resp.StatusCode)
	}
	// A graceful stop must end with exit status 0.
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p2.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p2.logs)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30 s of SIGTERM")
	}
	if !strings.Contains(p2.logs.String(), "stopped cleanly") {
		t.Errorf("no clean stop logged:\n%s", p2.logs)
	}

	st, err = store.Open(ctx, "sqlite://"+filepath.Join(dir, "state", "m2a.db"), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	rows, err := st.DB().Query(`SELECT json_extract(json(args), '$.message_id'), state FROM river_job WHERE kind = 'process_message'`)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rows.Close() }()
	found := map[string]bool{}
	for rows.Next() {
		var id, state string
		if err := rows.Scan(&id, &state); err != nil {
			t.Fatal(err)
		}
		if state == "completed" {
			t.Errorf("job %s marked completed without a processing worker", id)
		}
		found[id] = true
	}
	for i := 0; i < n; i++ {
		if id := fmt.Sprintf("AAMk-durable-%02d", i); !found[id] {
			t.Errorf("job for %s lost", id)
		}
	}
	if len(found) != n {
		t.Errorf("%d jobs, want %d", len(found), n)
	}
}

func TestCommandLine(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "mail2archer ") {
		t.Errorf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"nonsense"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown command") {
		t.Errorf("unknown: %d %q", code, errOut.String())
	}
}

func TestHealthcheck(t *testing.T) {
	bin := buildBinary(t)
	p := start(t, bin, t.TempDir())
	check := func(addr string) int {
		cmd := exec.Command(bin, "healthcheck")
		cmd.Env = []string{"M2A_LISTEN_ADDR=" + addr}
		if err := cmd.Run(); err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			t.Fatal(err)
		}
		return 0
	}
	if code := check(p.addr); code != 0 {
		t.Errorf("healthy service: exit %d", code)
	}
	if code := check("127.0.0.1:1"); code != 1 {
		t.Errorf("nothing listening: exit %d, want 1", code)
	}
}
