package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/console"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// adminAPI calls the console's API on the sandbox's admin listener and
// decodes the answer into out; it returns the status.
func adminAPI(t *testing.T, sb *Sandbox, method, path string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+sb.App.AdminAddr()+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(b, out) != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

// waitReport polls the report list until the email's report is in state;
// messageID "" takes any report.
func waitReport(t *testing.T, sb *Sandbox, messageID, state string) console.Report {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []console.Report
	for time.Now().Before(deadline) {
		var body struct{ Reports []console.Report }
		if code := adminAPI(t, sb, "GET", "/api/v1/reports?state="+state, nil, &body); code != 200 {
			t.Fatalf("GET /api/v1/reports: %d", code)
		}
		for _, r := range body.Reports {
			if messageID == "" || r.MessageID == messageID {
				return r
			}
		}
		last = body.Reports
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no %s report of %s in 30 s; listed %+v", state, messageID, last)
	return console.Report{}
}

// TestConsoleAPIRetriesAReportArcherRefused goes through what an operator
// does in the console: a report Archer refused shows as failed with its
// reason and Archer's message, a retry once the mapping (here the fault)
// is fixed creates its record, a replay adopts it, and the subscriptions
// and the status are there.
func TestConsoleAPIRetriesAReportArcherRefused(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	sb.Archer.FailNextWith(1, archersim.Failure{Body: archersim.FailureValidation, PathSuffix: "/core/content"})
	if _, err := sb.Deliver(Samples()[0].MIME); err != nil {
		t.Fatal(err)
	}
	failed := waitReport(t, sb, "", "failed")
	id := failed.MessageID // the id Graph's notification named
	if failed.Reason != "archer_validation" || !strings.Contains(failed.LastError, "Incident Summary field is a required field") ||
		failed.JobID == 0 || failed.Subject == "" || failed.ReceivedAt == nil || failed.RecordID != 0 {
		t.Errorf("failed report: %+v", failed)
	}

	var hist struct {
		Report  console.Report
		History []console.Attempt
	}
	path := "/api/v1/reports/" + url.PathEscape(failed.Mailbox) + "/" + url.PathEscape(id)
	if code := adminAPI(t, sb, "GET", path, nil, &hist); code != 200 || len(hist.History) != 1 ||
		hist.History[0].Reason != "archer_validation" || len(hist.History[0].Errors) != 1 {
		t.Fatalf("GET %s: %d %+v", path, code, hist)
	}

	// The fault is gone: a retry creates the record.
	var done struct{ Done, Error string }
	if code := adminAPI(t, sb, "POST", fmt.Sprintf("/api/v1/jobs/%d/retry", failed.JobID), struct{}{}, &done); code != 200 {
		t.Fatalf("retry: %d %+v", code, done)
	}
	ok := waitReport(t, sb, id, "done")
	records := sb.Incidents()
	if len(records) != 1 || ok.RecordID != records[0].ID || ok.Outcome != "created" ||
		!strings.Contains(ok.RecordURL, fmt.Sprintf("Record.aspx%%3Fid%%3D%d%%26moduleId%%3D", ok.RecordID)) {
		t.Fatalf("after the retry: %+v; Archer holds %d record(s)", ok, len(records))
	}

	// A replay finds the record by its key: still one incident.
	if code := adminAPI(t, sb, "POST", "/api/v1/reports/replay", map[string]string{"mailbox": ok.Mailbox, "message_id": id}, &done); code != 200 {
		t.Fatalf("replay: %d %+v", code, done)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := sb.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.Incidents()); n != 1 {
		t.Errorf("%d records after the replay, want 1", n)
	}
	if code := adminAPI(t, sb, "GET", path, nil, &hist); code != 200 || hist.Report.State != "done" || hist.Report.RecordID != ok.RecordID {
		t.Errorf("after the replay: %d %+v", code, hist.Report)
	}

	var subs struct{ Subscriptions []console.Subscription }
	if code := adminAPI(t, sb, "GET", "/api/v1/subscriptions", nil, &subs); code != 200 || len(subs.Subscriptions) != 1 ||
		subs.Subscriptions[0].ExpiresInSeconds <= 0 || subs.Subscriptions[0].LastRenewal == nil {
		t.Errorf("subscriptions: %+v", subs)
	}
	if code := adminAPI(t, sb, "POST", "/api/v1/subscriptions/resync", map[string]string{"mailbox": subs.Subscriptions[0].Mailbox}, &done); code != 200 ||
		!strings.Contains(done.Done, "queued 0") {
		t.Errorf("resync: %d %+v", code, done)
	}
	var status struct {
		Ready bool
		Queue map[string]int
	}
	if code := adminAPI(t, sb, "GET", "/api/v1/status", nil, &status); code != 200 || !status.Ready || status.Queue["completed"] == 0 {
		t.Errorf("status: %d %+v", code, status)
	}
}
