package sandbox

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/clients"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
	"github.com/mail2archer/mail2archer/internal/spool"
)

// quickRetry retries failed jobs after 100 ms, so fault tests take seconds.
type quickRetry struct{}

func (quickRetry) NextRetry(*rivertype.JobRow) time.Time {
	return time.Now().Add(100 * time.Millisecond)
}

func fastOptions() Options { return Options{App: app.Options{RetryPolicy: quickRetry{}}} }

func waitCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func sample(t *testing.T, prefix string) []byte {
	t.Helper()
	for _, s := range Samples() {
		if strings.HasPrefix(s.Name, prefix) {
			return s.MIME
		}
	}
	t.Fatalf("no sample %s", prefix)
	return nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestOneEmailBecomesOneCompleteIncident(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	mime := sample(t, "02-")
	id, err := sb.Deliver(mime)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitRecords(waitCtx(t, 15*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	f := recs[0].Fields
	for _, name := range []string{"Title", "Incident Description", "Incident Category", "Source", "Criticality SOC",
		"SIEM Name", "Sender", "Reported Subject", "Reported Email Key", "Observables",
		"Authentication Results", "Date Reported", "Date Received", "Email Attachments"} {
		if v, ok := f[name]; !ok || fmt.Sprint(v) == "" {
			t.Errorf("field %q is empty", name)
		}
	}
	// Notifications carry the immutable id, which survives moves.
	stored, _ := sb.Graph.Message(Mailbox, id)
	if got := fmt.Sprint(f["Reported Email Key"]); got != Mailbox+"/"+stored.ImmutableID {
		t.Errorf("key %q, want %s/%s", got, Mailbox, stored.ImmutableID)
	}

	// The original email is attached byte for byte (the sample is the
	// suspect itself, so the original is the delivered MIME).
	ac, err := archer.New(clients.Archer(sb.Config, nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	content, err := ac.GetRecord(context.Background(), recs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	level := sb.App.Mapping().Level
	field, _ := level.FieldByName("Email Attachments")
	fv, _ := content.Field(field)
	ids, err := fv.Attachments()
	if err != nil || len(ids) < 2 {
		t.Fatalf("attachments %v %v", ids, err)
	}
	att, ok := sb.Archer.Attachment(ids[0])
	if !ok {
		t.Fatal("attachment missing")
	}
	if !bytes.Equal(att.Data, stored.MIME) {
		t.Errorf("attached original differs from the email (%d vs %d bytes)", len(att.Data), len(stored.MIME))
	}

	// The category is written back.
	want := fmt.Sprintf("Archer %d", recs[0].ID)
	waitFor(t, 10*time.Second, "the category", func() bool {
		m, err := sb.Graph.Message(Mailbox, id)
		return err == nil && strings.Contains(strings.Join(m.Categories, ","), want)
	})
}

func TestDuplicateNotificationsMakeOneIncident(t *testing.T) {
	t.Parallel()
	sb := start(t, fastOptions())
	// created+updated pairs, each notification delivered twice, and a
	// "missed" lifecycle event whose resync finds the same message again.
	sb.Graph.SetBehavior(graphsim.Behavior{DuplicatePairs: true, Redeliver: true})
	if _, err := sb.Deliver(sample(t, "01-")); err != nil {
		t.Fatal(err)
	}
	for _, sub := range sb.Graph.Subscriptions() {
		if err := sb.Graph.Lifecycle(sub.ID, "missed"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sb.WaitRecords(waitCtx(t, 15*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if err := sb.Graph.WaitDelivered(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	// Let any straggling job run, then count.
	if err := sb.WaitIdle(waitCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.incidents()); n != 1 {
		t.Fatalf("%d incidents for one email", n)
	}
	if n := len(sb.Graph.Deliveries()); n < 3 {
		t.Errorf("only %d deliveries: the duplicates were not sent", n)
	}
}

func TestArcherOutageIsRiddenOut(t *testing.T) {
	t.Parallel()
	sb := start(t, fastOptions())
	sb.Archer.FailNext(3, http.StatusInternalServerError)
	if _, err := sb.Deliver(sample(t, "04-")); err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitRecords(waitCtx(t, 40*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.incidents()); n != 1 || recs[0].ID == 0 {
		t.Fatalf("%d incidents after the outage", n)
	}
}

func TestGraphRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	sb := start(t, fastOptions())
	// Throttle every message read for 3 requests, asking for 2 s; the
	// SDK waits out one Retry-After itself, the job snoozes for the rest.
	sb.Graph.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Status: http.StatusTooManyRequests,
		RetryAfter: 2 * time.Second, Times: 3})
	sent := time.Now()
	if _, err := sb.Deliver(sample(t, "05-")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.WaitRecords(waitCtx(t, 30*time.Second), 1); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(sent); d < 2*time.Second {
		t.Errorf("record created after %s, before the 2 s Graph asked to wait", d)
	}
}

func TestDeletedMessageEndsTheJobWithAReason(t *testing.T) {
	t.Parallel()
	sb := start(t, fastOptions())
	// Hold message reads long enough to delete the message first.
	sb.Graph.SetFaults(graphsim.Fault{Route: graphsim.RouteGetMessage, Latency: 500 * time.Millisecond, Times: 1})
	id, err := sb.Deliver(sample(t, "01-"))
	if err != nil {
		t.Fatal(err)
	}
	m, _ := sb.Graph.Message(Mailbox, id)
	if err := sb.Graph.RemoveMessage(Mailbox, id); err != nil {
		t.Fatal(err)
	}
	var listing string
	waitFor(t, 15*time.Second, "the job to end", func() bool {
		var b strings.Builder
		if err := ops.ListJobs(context.Background(), sb.App.Store(), "cancelled", 10, &b); err != nil {
			t.Fatal(err)
		}
		listing = b.String()
		return strings.Contains(listing, m.ImmutableID[:20])
	})
	if !strings.Contains(listing, "message_gone") {
		t.Errorf("the listing gives no reason:\n%s", listing)
	}
	if n := len(sb.incidents()); n != 0 {
		t.Errorf("%d incidents for a deleted message", n)
	}
}

func TestUnknownValueInTheMappingIsShownByReadinessAndCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mapping := filepath.Join(dir, "mapping.yaml")
	bad := strings.Replace(string(mustReadExample(t)), "Source:\n    value: Email", "Source:\n    value: Carrier Pigeon", 1)
	if err := os.WriteFile(mapping, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	sb := startUnready(t, Options{Dir: dir, MappingFile: mapping, App: app.Options{PreflightRetry: 50 * time.Millisecond}})
	var detail string
	waitFor(t, 15*time.Second, "readiness to name the mapping problem", func() bool {
		_, r := readiness(t, sb)
		detail = r.Components["mapping"].Detail
		return r.Components["mapping"].Status == "fail" && strings.Contains(detail, "Carrier Pigeon")
	})
	for _, want := range []string{`"Carrier Pigeon"`, "available:", "Email", "User Report", "M2A_MAPPING_FILE"} {
		if !strings.Contains(detail, want) {
			t.Errorf("readiness lacks %q: %s", want, detail)
		}
	}
	// Intake works meanwhile; the email waits for the mapping.
	if _, err := sb.Deliver(sample(t, "01-")); err != nil {
		t.Fatal(err)
	}
	if err := sb.Graph.WaitDelivered(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cfg := *sb.Config
	cfg.DatabaseURL = config.Secret("sqlite://" + filepath.Join(t.TempDir(), "check.db"))
	if ok := ops.WriteCheck(&out, ops.Check(context.Background(), &cfg, sb.App.Logger(), ops.CheckOptions{GraphHTTPClient: sb.graphSrv.Client()})); ok {
		t.Fatalf("check passed with a broken mapping:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "✘ mapping preflight") || !strings.Contains(out.String(), "Carrier Pigeon") {
		t.Errorf("check does not name the problem:\n%s", out.String())
	}
}

func mustReadExample(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../../api/mapping.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckAgainstTheSimulators(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	opts := ops.CheckOptions{GraphHTTPClient: sb.graphSrv.Client()}
	var out bytes.Buffer
	if ok := ops.WriteCheck(&out, ops.Check(context.Background(), sb.Config, sb.App.Logger(), opts)); !ok {
		t.Fatalf("check failed:\n%s", out.String())
	}
	bad := *sb.Config
	bad.ArcherPassword = "wrong"
	bad.DatabaseURL = config.Secret("sqlite://" + filepath.Join(t.TempDir(), "check.db"))
	out.Reset()
	if ok := ops.WriteCheck(&out, ops.Check(context.Background(), &bad, sb.App.Logger(), opts)); ok {
		t.Fatalf("check passed with a wrong password:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "✘ archer login") || !strings.Contains(out.String(), "M2A_ARCHER_PASSWORD") {
		t.Errorf("the archer line does not say what to fix:\n%s", out.String())
	}
}

// TestALargeEmailGoesThroughTheSpool delivers an email larger than what the
// spool keeps in memory: the record gets the original byte for byte, read
// back from the spool file, and the file is gone once the job has ended.
func TestALargeEmailGoesThroughTheSpool(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sb := start(t, Options{Dir: dir})
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	enc := base64.StdEncoding.EncodeToString(data)
	var mime strings.Builder
	mime.WriteString("From: \"Accounts\" <ap@fabrikam-invoices.example>\r\nTo: phish@contoso.com\r\n" +
		"Subject: Statement attached\r\nMessage-ID: <large-spool@fabrikam-invoices.example>\r\n" +
		"Date: Thu, 12 Mar 2026 09:12:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b1\r\nContent-Type: application/octet-stream; name=\"statement.bin\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"statement.bin\"\r\n\r\n")
	for len(enc) > 76 {
		mime.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	mime.WriteString(enc + "\r\n--b1--\r\n")
	if mime.Len() <= spool.DefaultMemory {
		t.Fatalf("the email (%d bytes) would stay in memory", mime.Len())
	}
	id, err := sb.Deliver([]byte(mime.String()))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitRecords(waitCtx(t, 30*time.Second), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	stored, _ := sb.Graph.Message(Mailbox, id)
	ac, err := archer.New(clients.Archer(sb.Config, nil), zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	content, err := ac.GetRecord(context.Background(), recs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	field, _ := sb.App.Mapping().Level.FieldByName("Email Attachments")
	fv, _ := content.Field(field)
	ids, err := fv.Attachments()
	if err != nil || len(ids) < 2 {
		t.Fatalf("attachments %v %v", ids, err)
	}
	names := map[string][]byte{}
	for _, aid := range ids {
		if a, ok := sb.Archer.Attachment(aid); ok {
			names[a.Name] = a.Data
		}
	}
	if got := names["reported-email.eml"]; !bytes.Equal(got, stored.MIME) {
		t.Errorf("the attached original (%d bytes) is not the delivered email (%d bytes); files %d", len(got), len(stored.MIME), len(names))
	}
	if !onPostgres() && sb.App.SpoolDir() != filepath.Join(dir, "spool") {
		t.Errorf("the spool is %s, want the directory beside the database", sb.App.SpoolDir())
	}
	left, err := os.ReadDir(sb.App.SpoolDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "mime-") {
			t.Errorf("spool file %s left after the job", e.Name())
		}
	}
}
