package sandbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/riverqueue/river"
)

//go:embed samples/*.eml samples/campaign/*.eml samples/simulation/*.eml
var samples embed.FS

// Sample is one of the reports shipped for the sandbox.
type Sample struct {
	Name string
	MIME []byte
}

// campaignReports are the people who report the campaign sample, and when
// (its original was sent at 08:02:11).
var campaignReports = []struct {
	name, reporter string
	at             time.Time
}{
	{"alice", "Alice Smith <alice@contoso.com>", time.Date(2026, 3, 17, 8, 9, 40, 0, time.UTC)},
	{"bob", "Bob Brown <bob@contoso.com>", time.Date(2026, 3, 17, 8, 14, 5, 0, time.UTC)},
	{"carol", "Carol White <carol@contoso.com>", time.Date(2026, 3, 17, 8, 31, 52, 0, time.UTC)},
}

// Samples returns the shipped sample reports in name order: a credential
// phish with a lookalike domain, a malware attachment, a Report Message
// report with a .msg original, a newsletter reported by mistake, an inline
// forward, a campaign: one DocuSign-style invoice phish from a
// lookalike domain, stored once (samples/campaign) and reported by three
// people, each report made with WrapAsReport; and a phishing-training
// simulation reported by one person (samples/simulation).
func Samples() []Sample {
	out := readSamples("samples")
	for _, original := range readSamples("samples/campaign") {
		base := strings.TrimSuffix(original.Name, ".eml")
		for _, r := range campaignReports {
			report, err := WrapAsReport(original.MIME, r.reporter, r.at)
			if err != nil {
				continue // the package's tests wrap every shipped original
			}
			out = append(out, Sample{Name: base + "-reported-by-" + r.name + ".eml", MIME: report})
		}
	}
	// A training simulation (its X-PHISHTEST header is the one the example
	// mapping's rule knows), reported by one person: a rule skips it.
	for _, original := range readSamples("samples/simulation") {
		report, err := WrapAsReport(original.MIME, "Dave Jones <dave@contoso.com>", time.Date(2026, 3, 17, 10, 21, 0, 0, time.UTC))
		if err != nil {
			continue
		}
		out = append(out, Sample{Name: strings.TrimSuffix(original.Name, ".eml") + "-reported-by-dave.eml", MIME: report})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// readSamples reads the .eml files of one embedded directory.
func readSamples(dir string) []Sample {
	entries, _ := fs.ReadDir(samples, dir)
	var out []Sample
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".eml") {
			continue
		}
		b, err := samples.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, Sample{Name: e.Name(), MIME: b})
	}
	return out
}

// WaitSettled waits until Graph has notified every delivery and the
// queue has nothing left to do (the records, the write-backs and the
// acknowledgments are all done), and returns the incident records.
func (sb *Sandbox) WaitSettled(ctx context.Context) ([]archersim.Record, error) {
	if err := sb.Graph.WaitDelivered(ctx); err != nil {
		return nil, fmt.Errorf("sandbox: wait for Graph's notifications: %w", err)
	}
	if err := sb.WaitIdle(ctx); err != nil {
		return nil, err
	}
	return sb.incidents(), nil
}

// AckLines describes the acknowledgments sent from the phishing mailbox,
// one line each, from the n-th on.
func (sb *Sandbox) AckLines(n int) []string {
	sent := sb.Graph.SentMessages()
	var out []string
	for i := n; i < len(sent); i++ {
		m := sent[i]
		out = append(out, fmt.Sprintf("acknowledgment to %s: %s", strings.Join(m.To, ", "), clip.String(m.Subject, 80)))
	}
	return out
}

// WaitReports waits until the reports that landed in the simulated
// Archer number at least n and returns the incident records: a record
// counts its "Number of Reports" (1 when empty), so n delivered reports
// are found whether each made its own record or several were grouped onto
// one. Like WaitRecords, it looks again after every job event.
//
// A mapping that groups reports but counts them in another field (or in
// none) cannot be read that way: then it waits until Graph has notified
// every delivery and the queue is idle.
func (sb *Sandbox) WaitReports(ctx context.Context, n int) ([]archersim.Record, error) {
	events, stop := sb.App.Subscribe(jobEnds...)
	defer stop()
	for {
		if m := sb.App.Mapping(); m != nil && m.Campaign != nil && m.Campaign.ReportCountField().Name != "Number of Reports" {
			if err := sb.Graph.WaitDelivered(ctx); err != nil {
				return nil, fmt.Errorf("sandbox: wait for Graph's notifications: %w", err)
			}
			if err := sb.WaitIdle(ctx); err != nil {
				return nil, err
			}
			return sb.incidents(), nil
		}
		recs := sb.incidents()
		got := 0
		for _, r := range recs {
			got += Reports(r)
		}
		if got >= n {
			return recs, nil
		}
		if err := nextEvent(ctx, events); err != nil {
			return recs, fmt.Errorf("sandbox: %d of %d reports in %d incidents after waiting: %w", got, n, len(recs), err)
		}
	}
}

// Reports is the number of reports a record stands for: its "Number of
// Reports" field, or 1 when the field is empty or not a positive number.
func Reports(r archersim.Record) int {
	if n, ok := r.Fields["Number of Reports"].(float64); ok && n >= 1 && n <= 1<<30 {
		return int(n)
	}
	return 1
}

// WaitRecords waits until the simulated Archer holds at least n records of
// the incident level and returns them. Records are created by queue jobs, so
// it looks again after every job event rather than on a clock.
func (sb *Sandbox) WaitRecords(ctx context.Context, n int) ([]archersim.Record, error) {
	events, stop := sb.App.Subscribe(jobEnds...)
	defer stop()
	for {
		recs := sb.incidents()
		if len(recs) >= n {
			return recs, nil
		}
		if err := nextEvent(ctx, events); err != nil {
			return recs, fmt.Errorf("sandbox: %d of %d incidents after waiting: %w", len(recs), n, err)
		}
	}
}

// WaitSubscribed waits until the service has stored its subscription of
// the mailbox, so that notifications are checked against it: Graph may
// notify before the service has stored what Graph answered, and a
// notification in that gap is dropped (the resync after each creation
// finds its message later).
func (sb *Sandbox) WaitSubscribed(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		subs, err := sb.App.Store().Subscriptions(ctx)
		if err == nil && len(subs) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sandbox: no stored subscription (%v): %w", err, ctx.Err())
		case <-tick.C:
		}
	}
}

// WaitIdle waits until the queue holds no job that is available, scheduled,
// retryable or running: what a test waits for before it counts, so that a
// duplicate would already be there. It checks once, then after every job
// event.
func (sb *Sandbox) WaitIdle(ctx context.Context) error {
	events, stop := sb.App.Subscribe(jobEnds...)
	defer stop()
	for {
		counts, err := sb.App.Store().JobCounts(ctx)
		if err != nil {
			return fmt.Errorf("sandbox: count the queue's jobs: %w", err)
		}
		busy := counts["available"] + counts["running"] + counts["retryable"] + counts["scheduled"]
		if busy == 0 {
			return nil
		}
		if err := nextEvent(ctx, events); err != nil {
			return fmt.Errorf("sandbox: %d jobs still queued or running: %w", busy, err)
		}
	}
}

// jobEnds are the events after which a job has left the running state.
var jobEnds = []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed,
	river.EventKindJobCancelled, river.EventKindJobSnoozed}

// nextEvent waits for one job event. A closed channel (the queue stopped)
// ends the wait with an error.
func nextEvent(ctx context.Context, events <-chan *river.Event) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case _, ok := <-events:
		if !ok {
			return errors.New("the queue stopped")
		}
		return nil
	}
}

// Incidents returns the simulated Archer's records of the mapping's
// incident level, in creation order; none before the mapping's preflight
// has passed.
func (sb *Sandbox) Incidents() []archersim.Record { return sb.incidents() }

// incidents are the records of the mapping's level; none before the
// mapping's preflight has passed (nothing can have been created).
func (sb *Sandbox) incidents() []archersim.Record {
	m := sb.App.Mapping()
	if m == nil {
		return nil
	}
	level := m.Level.ID
	var out []archersim.Record
	for _, r := range sb.Archer.Records() {
		if r.LevelID == level {
			out = append(out, r)
		}
	}
	return out
}

// WriteTable prints one line per incident: the email's subject, the Archer
// record id, the number of reports it stands for (see Reports) and the key
// fields.
func WriteTable(w io.Writer, recs []archersim.Record) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "RECORD\tREPORTS\tREPORTED SUBJECT\tCATEGORY\tCRITICALITY\tSENDER\tAUTH\tOBSERVABLES")
	for _, r := range recs {
		f := r.Fields
		auth := strings.TrimSpace(str(f["Authentication Results"]))
		auth = strings.NewReplacer("SPF=", "spf=", "DKIM=", "dkim=", "DMARC=", "dmarc=").Replace(auth)
		if i := strings.Index(auth, " compauth"); i > 0 {
			auth = auth[:i]
		}
		_, _ = fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, Reports(r), cut(str(f["Reported Subject"]), 40),
			str(f["Incident Category"]), str(f["Criticality SOC"]), cut(str(f["Sender"]), 40), auth,
			countLines(str(f["Observables"])))
	}
	return tw.Flush()
}

// Watcher reports the incident records created or updated since it last
// looked, for a sandbox that prints changes as they land.
type Watcher struct {
	seen map[int64]time.Time
}

// NewWatcher returns a watcher that knows recs already.
func NewWatcher(recs []archersim.Record) *Watcher {
	w := &Watcher{seen: map[int64]time.Time{}}
	for _, r := range recs {
		w.seen[r.ID] = r.Updated
	}
	return w
}

// Changes returns one line per record of recs (the incidents, as
// Sandbox.Incidents returns them) that is new or whose Updated time moved
// since the watcher last saw it, in the records' order:
// "record 239650 created: 1 report, Phishing, High: <subject>" or
// "record 239650 updated: 3 reports".
func (w *Watcher) Changes(recs []archersim.Record) []string {
	var out []string
	for _, r := range recs {
		last, known := w.seen[r.ID]
		switch {
		case !known:
			out = append(out, fmt.Sprintf("record %d created: %s, %s, %s: %s", r.ID, reportCount(Reports(r)),
				orDash(str(r.Fields["Incident Category"])), orDash(str(r.Fields["Criticality SOC"])),
				cut(str(r.Fields["Reported Subject"]), 60)))
		case r.Updated.After(last):
			out = append(out, fmt.Sprintf("record %d updated: %s", r.ID, reportCount(Reports(r))))
		default:
			continue
		}
		w.seen[r.ID] = r.Updated
	}
	return out
}

func reportCount(n int) string {
	if n == 1 {
		return "1 report"
	}
	return fmt.Sprintf("%d reports", n)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func str(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	case []any:
		var parts []string
		for _, x := range v {
			parts = append(parts, str(x))
		}
		return strings.Join(parts, ", ")
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// cut shortens a field's value for the table: the text of an HTML-escaped
// value, one line, at most n characters.
func cut(s string, n int) string {
	return clip.String(html.UnescapeString(strings.ReplaceAll(s, "<br>", " ")), n)
}

// countLines counts the non-empty lines of a field's value: a rich text
// field separates them with <br>.
func countLines(s string) int {
	n := 0
	s = strings.ReplaceAll(s, "<br>", "\n")
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// MaxDelivered is the largest email the control API takes.
const MaxDelivered = 60 << 20

// ControlHandler serves the sandbox's control API: POST /deliver with a raw
// email as the body puts it into the mailbox and answers the message id.
func (sb *Sandbox) ControlHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /deliver", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxDelivered))
		if err != nil || len(body) == 0 {
			http.Error(w, fmt.Sprintf("send the raw email (at most %d MiB) as the body", MaxDelivered>>20), http.StatusBadRequest)
			return
		}
		id, err := sb.Deliver(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, id+"\n")
	})
	return mux
}

// DeliverTo posts a raw email to a running sandbox's control address.
func DeliverTo(ctx context.Context, controlAddr string, mime []byte) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+controlAddr+"/deliver", strings.NewReader(string(mime)))
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return "", fmt.Errorf("no sandbox answers on %s: start one with `mail2archer-sandbox` (%w)", controlAddr, err)
		}
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sandbox refused the email: %s", strings.TrimSpace(string(b)))
	}
	return strings.TrimSpace(string(b)), nil
}
