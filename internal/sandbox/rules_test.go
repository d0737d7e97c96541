package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/mail2archer/mail2archer/api"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/ops"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// simulationSample is the training simulation sample's original.
func simulationSample(t *testing.T) []byte {
	t.Helper()
	b, err := samples.ReadFile("samples/simulation/07-training-simulation.eml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func reportOf(t *testing.T, original []byte, reporter string) []byte {
	t.Helper()
	r, err := WrapAsReport(original, reporter, time.Date(2026, 3, 17, 10, 21, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestTheSimulationSampleIsSkippedAndAcknowledged(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	id, err := sb.Deliver(reportOf(t, simulationSample(t), "Dave Jones <dave@contoso.com>"))
	if err != nil {
		t.Fatal(err)
	}
	// The same email without the simulation header is a real phish.
	real := bytes.Replace(simulationSample(t), []byte("X-PHISHTEST: contoso-training-7f3a\n"), nil, 1)
	if bytes.Equal(real, simulationSample(t)) {
		t.Fatal("the sample has no X-PHISHTEST line to remove")
	}
	if _, err := sb.Deliver(reportOf(t, real, "Erin Wu <erin@contoso.com>")); err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitSettled(waitCtx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0].Fields["Reporters"]), "erin@contoso.com") {
		t.Fatalf("records %+v: want only the real phish's", recs)
	}
	m, err := sb.Graph.Message(Mailbox, id)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(m.Categories, ","), "Simulation") {
		t.Errorf("the skipped report's categories %v lack Simulation", m.Categories)
	}
	var jobs strings.Builder
	if err := ops.ListJobs(context.Background(), sb.App.Store(), "completed", 20, &jobs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(jobs.String(), "skipped rule knowbe4-simulation") {
		t.Errorf("jobs list does not name the rule:\n%s", jobs.String())
	}
	acks := map[string]graphsim.SentMessage{}
	for _, s := range sb.Graph.SentMessages() {
		acks[strings.Join(s.To, ",")] = s
	}
	if a, ok := acks["dave@contoso.com"]; !ok || !strings.HasPrefix(a.Subject, "Well spotted") {
		t.Errorf("dave's acknowledgment %+v, want the simulation text", a)
	}
	if a, ok := acks["erin@contoso.com"]; !ok || !strings.Contains(a.Content, fmt.Sprint(recs[0].ID)) {
		t.Errorf("erin's acknowledgment %+v, want the record's reference %d", a, recs[0].ID)
	}
	if len(acks) != 2 || len(sb.Graph.SentMessages()) != 2 {
		t.Errorf("%d acknowledgments, want one per report", len(sb.Graph.SentMessages()))
	}
	metrics := adminGet(t, sb, "/metrics")
	if !strings.Contains(metrics, `m2a_rule_matches_total{rule="knowbe4-simulation"} 1`) {
		t.Errorf("the rule's match is not counted")
	}
}

func TestASetRuleChangesTheNamedField(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	if _, err := sb.Deliver(reportOf(t, campaignPhish("billing@fabrikam-pay.example", "Invoice overdue", "https://fabrikam-pay.example/pay/77"),
		"The CEO <ceo@contoso.com>")); err != nil {
		t.Fatal(err)
	}
	recs, err := sb.WaitSettled(waitCtx(t, 30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || fmt.Sprint(recs[0].Fields["Criticality SOC"]) != "[High]" {
		t.Fatalf("the executive's report: %v", recs[0].Fields["Criticality SOC"])
	}
}

// ackMapping is the example mapping with an HTML acknowledgment too.
func ackMapping(t *testing.T) string {
	t.Helper()
	m, err := incident.Parse(api.MappingExample)
	if err != nil {
		t.Fatal(err)
	}
	m.Ack.HTML = `<p>Thank you for reporting <b>{{.Report.Suspect.Subject}}</b> (reference {{.RecordID}}).</p>`
	b, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAcknowledgmentsGoOnceToColleaguesOnly(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{MappingFile: ackMapping(t)})
	// Graph refuses the first send for a while: the acknowledgment waits and
	// goes once.
	sb.Graph.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Times: 1})
	hostile := campaignPhish("billing@fabrikam-pay.example", `<img src=x onerror=alert(1)> Invoice`, "https://fabrikam-pay.example/pay/78")
	automatic := bytes.Replace(reportOf(t, campaignPhish("a@evil.example", "Prize", "https://evil.example/p"), "alice@contoso.com"),
		[]byte("MIME-Version: 1.0"), []byte("Auto-Submitted: auto-generated\r\nMIME-Version: 1.0"), 1)
	for _, mail := range [][]byte{
		reportOf(t, hostile, "alice@contoso.com"),
		reportOf(t, campaignPhish("b@evil.example", "Gift card", "https://evil.example/g"), "mallory@partner.example"),
		reportOf(t, campaignPhish("c@evil.example", "Payroll", "https://evil.example/q"), Mailbox),
		automatic,
	} {
		if _, err := sb.Deliver(mail); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := sb.WaitSettled(waitCtx(t, 60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records for 4 reports", len(recs))
	}
	sent := sb.Graph.SentMessages()
	if len(sent) != 1 || strings.Join(sent[0].To, ",") != "alice@contoso.com" {
		t.Fatalf("acknowledgments %+v: want one, to alice only", sent)
	}
	a := sent[0]
	if a.ContentType != "html" || strings.Contains(a.Content, "<img") || !strings.Contains(a.Content, "&lt;img") {
		t.Errorf("the HTML acknowledgment does not escape the email's subject: %s", a.Content)
	}
	if strings.ContainsAny(a.Subject, "\r\n") {
		t.Errorf("subject %q", a.Subject)
	}
}

// TestAnAcknowledgmentThatMayHaveGoneIsNotSentTwice: Graph takes the
// message and the connection breaks before its answer. The service cannot
// know whether it went; it ends the job instead of sending a second one.
func TestAnAcknowledgmentThatMayHaveGoneIsNotSentTwice(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	sb.Graph.SetFaults(graphsim.Fault{Route: graphsim.RouteSendMail, Reset: true, Times: 1})
	if _, err := sb.Deliver(reportOf(t, campaignPhish("billing@fabrikam-pay.example", "Invoice overdue", "https://fabrikam-pay.example/pay/79"),
		"alice@contoso.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.WaitSettled(waitCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if n := len(sb.Graph.SentMessages()); n != 1 {
		t.Fatalf("%d acknowledgments sent, want the one Graph took", n)
	}
	var jobs strings.Builder
	if err := ops.ListJobs(context.Background(), sb.App.Store(), "cancelled", 10, &jobs); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(jobs.String(), "send_ack") || !strings.Contains(jobs.String(), "ack_maybe_sent") {
		t.Errorf("the acknowledgment's job does not say it may have gone:\n%s", jobs.String())
	}
}
