package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

func TestAcksGoOnlyToPeopleOfTheOrganisationWhoReported(t *testing.T) {
	t.Parallel()
	internal := []string{"contoso.com"}
	mailboxes := []string{"phish@contoso.com"}
	report := func(from string, headers map[string]string) *email.Report {
		return &email.Report{IsReport: true, Reporter: email.Address{Address: from}, ReportHeaders: headers}
	}
	cases := []struct {
		name string
		rep  *email.Report
		to   string
	}{
		{"a colleague", report("Alice@Contoso.com", nil), "alice@contoso.com"},
		{"a colleague in a subdomain", report("bob@emea.contoso.com", nil), "bob@emea.contoso.com"},
		{"not a report", &email.Report{Reporter: email.Address{Address: "alice@contoso.com"}}, ""},
		{"an outside address", report("mallory@contoso.com.evil.example", nil), ""},
		{"a look-alike domain", report("alice@contoso-com.example", nil), ""},
		{"the phishing mailbox itself", report("PHISH@contoso.com", nil), ""},
		{"Auto-Submitted", report("alice@contoso.com", map[string]string{"Auto-Submitted": "auto-replied"}), ""},
		{"Auto-Submitted: no is a person", report("alice@contoso.com", map[string]string{"Auto-Submitted": "no"}), "alice@contoso.com"},
		{"a bounce", report("alice@contoso.com", map[string]string{"Content-Type": "multipart/report; report-type=delivery-status"}), ""},
		{"a read receipt", report("alice@contoso.com", map[string]string{"Content-Type": "Multipart/Report; report-type=disposition-notification"}), ""},
		{"bulk", report("alice@contoso.com", map[string]string{"Precedence": "bulk"}), ""},
		{"no auto-responses wanted", report("alice@contoso.com", map[string]string{"X-Auto-Response-Suppress": "All"}), ""},
		{"a mailer daemon", report("MAILER-DAEMON@contoso.com", nil), ""},
		{"no reporter", report("", nil), ""},
	}
	for _, tc := range cases {
		to, why := ackTo(tc.rep, internal, mailboxes)
		if to != tc.to {
			t.Errorf("%s: to %q (%s), want %q", tc.name, to, why, tc.to)
		}
		if to == "" && why == "" {
			t.Errorf("%s: no acknowledgment and no reason", tc.name)
		}
	}
	if to, _ := ackTo(report("alice@contoso.com", nil), nil, mailboxes); to != "" {
		t.Errorf("without internal domains an acknowledgment went to %s", to)
	}
}

type fakeSender struct {
	errs []error
	sent []jobs.Ack
}

func (f *fakeSender) SendAck(_ context.Context, _ string, a jobs.Ack) error {
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		if err != nil {
			return err
		}
	}
	f.sent = append(f.sent, a)
	return nil
}

var errMaybe = errors.New("504 after the request was written")

func TestAckWorkerSendsOnceAndEndsWhenItMayHaveSent(t *testing.T) {
	t.Parallel()
	throttled := errors.New("429 Retry-After: 7")
	denied := errors.New("403 ErrorAccessDenied")
	decide := func(err error) outcome.Decision {
		switch {
		case errors.Is(err, throttled):
			return outcome.Decision{Action: outcome.Snooze, After: 7 * time.Second, Component: "graph", Reason: "graph_throttled"}
		case errors.Is(err, errMaybe):
			return outcome.Decision{Action: outcome.End, Component: "graph", Reason: "ack_maybe_sent", Fix: "ask the reporter"}
		case errors.Is(err, denied):
			return outcome.Decision{Action: outcome.WaitOperator, Component: "graph", Reason: "graph_permission", Fix: "Mail.Send"}
		}
		return outcome.Decision{Action: outcome.Retry, Component: "graph", Reason: "graph_error"}
	}
	job := &river.Job[jobs.Ack]{JobRow: &rivertype.JobRow{ID: 9}, Args: jobs.Ack{Mailbox: "phish@contoso.com", MessageID: "AAMk-1",
		To: "alice@contoso.com", Subject: "Thank you", Text: "We are looking at it (239643).", Which: "record"}}
	cases := []struct {
		name  string
		errs  []error
		check func(error) bool
		sent  int
	}{
		{"sent", nil, func(err error) bool { return err == nil }, 1},
		{"throttled: snoozed", []error{throttled}, func(err error) bool { var s *river.JobSnoozeError; return errors.As(err, &s) }, 0},
		{"maybe sent: ended, never resent", []error{errMaybe}, func(err error) bool { var c *river.JobCancelError; return errors.As(err, &c) }, 0},
		{"no permission: waits", []error{denied}, func(err error) bool { var s *river.JobSnoozeError; return errors.As(err, &s) }, 0},
		{"an outage: retried", []error{errors.New("connection refused")}, func(err error) bool {
			var s *river.JobSnoozeError
			var c *river.JobCancelError
			return err != nil && !errors.As(err, &s) && !errors.As(err, &c)
		}, 0},
	}
	for _, tc := range cases {
		f := &fakeSender{errs: tc.errs}
		w := NewAckWorker(f, decide, nil, zerolog.Nop())
		err := w.Work(context.Background(), job)
		if !tc.check(err) || len(f.sent) != tc.sent {
			t.Errorf("%s: %v, %d sent", tc.name, err, len(f.sent))
		}
	}
}
