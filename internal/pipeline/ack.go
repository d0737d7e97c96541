package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
)

// AckSender sends an acknowledgment from the phishing mailbox (Graph's
// sendMail).
type AckSender interface {
	SendAck(ctx context.Context, mailbox string, a jobs.Ack) error
}

// AckWorker processes jobs.Ack: it sends the acknowledgment the message
// job rendered. Its job is unique per report, so a report is acknowledged
// once; Graph's client never resends a sendMail that Exchange may have
// taken, and such a failure ends the job instead of sending twice.
type AckWorker struct {
	river.WorkerDefaults[jobs.Ack]
	graph   AckSender
	decide  func(error) outcome.Decision
	metrics *Metrics
	log     zerolog.Logger
}

// NewAckWorker builds the worker; decide is the Graph client's decision on
// its failures (graph.Decide).
func NewAckWorker(g AckSender, decide func(error) outcome.Decision, m *Metrics, log zerolog.Logger) *AckWorker {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &AckWorker{graph: g, decide: decide, metrics: m, log: log}
}

// Work sends one acknowledgment.
func (w *AckWorker) Work(ctx context.Context, job *river.Job[jobs.Ack]) error {
	a := job.Args
	log := w.log.With().Str("component", "ack").Str("mailbox", a.Mailbox).Str("message_id", a.MessageID).Logger()
	err := w.graph.SendAck(ctx, a.Mailbox, a)
	if err == nil {
		w.metrics.ack("sent")
		log.Info().Str("which", a.Which).Msg("acknowledgment sent to the reporter")
		return nil
	}
	d := decide(w.decide, componentGraph, err)
	switch d.Action {
	case outcome.Snooze:
		return river.JobSnooze(d.After)
	case outcome.End:
		w.metrics.ack(d.Reason)
		log.Error().Err(err).Str("reason", d.Reason).Str("fix", d.Fix).Msg("acknowledgment not sent; the job ends")
		return river.JobCancel(fmt.Errorf("%s: %w", d.Reason, err))
	case outcome.WaitOperator:
		w.metrics.ack(d.Reason)
		log.Error().Err(err).Str("fix", d.Fix).Msg("acknowledgment waits for an operator (it needs Mail.Send on the mailbox); no attempt spent")
		_ = river.RecordOutput(ctx, Output{WaitingFor: d.Component, Reason: d.Reason})
		return river.JobSnooze(15 * time.Minute)
	}
	w.metrics.ack("retry")
	return err
}

// ackTo returns the address an acknowledgment of rep goes to, or why none
// goes: only a person of the organisation who reported the email hears
// back — never an outside address, never a phishing mailbox, never in
// answer to an automatic message.
func ackTo(rep *email.Report, internal, mailboxes []string) (string, string) {
	to := strings.ToLower(strings.TrimSpace(rep.Reporter.Address))
	switch {
	case !rep.IsReport || to == "":
		return "", "not a report"
	case !inDomains(to, internal):
		return "", "the reporter is not in M2A_INTERNAL_DOMAINS"
	case slices.ContainsFunc(mailboxes, func(m string) bool { return strings.EqualFold(m, to) }):
		return "", "the reporter is a phishing mailbox"
	}
	if why := automatic(rep, to); why != "" {
		return "", why
	}
	return to, ""
}

// automatic says why the report is an automatic message (RFC 3834's
// Auto-Submitted, a delivery or read report, a list or bulk message, a
// mailer daemon), or "".
func automatic(rep *email.Report, from string) string {
	h := func(name string) string { return strings.ToLower(strings.TrimSpace(rep.ReportHeaders[name])) }
	local, _, _ := strings.Cut(from, "@")
	switch {
	case h("Auto-Submitted") != "" && h("Auto-Submitted") != "no":
		return "the report is automatic (Auto-Submitted)"
	case strings.HasPrefix(h("Content-Type"), "multipart/report"):
		return "the report is a delivery or read report"
	case slices.Contains([]string{"bulk", "junk", "list", "auto_reply"}, h("Precedence")):
		return "the report is a bulk or automatic message (Precedence)"
	case strings.Contains(h("X-Auto-Response-Suppress"), "all") || strings.Contains(h("X-Auto-Response-Suppress"), "autoreply"):
		return "the report asks for no automatic answer (X-Auto-Response-Suppress)"
	case slices.Contains([]string{"mailer-daemon", "postmaster", "noreply", "no-reply"}, local):
		return "the reporter is a mailer daemon"
	}
	return ""
}

// inDomains reports whether addr is in one of domains or their subdomains.
func inDomains(addr string, domains []string) bool {
	_, host, ok := strings.Cut(addr, "@")
	if !ok || host == "" {
		return false
	}
	for _, d := range domains {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "."))
		if d != "" && (host == d || strings.HasSuffix(host, "."+d)) {
			return true
		}
	}
	return false
}
