// Package console answers the operator console's questions about the
// pipeline — the recent reports and what became of them, one report's
// history, the subscriptions, the queue — and carries out its actions:
// retry a job, cancel one, replay an email, resync a mailbox. It reads the
// queue and the state tables; the HTTP side is internal/server's.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// Errors the HTTP side turns into statuses; each is wrapped with the
// operation and the id.
var (
	// ErrNotFound: the job, report or mailbox does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the action does not fit the job's state now.
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the request itself is wrong.
	ErrInvalid = errors.New("invalid request")
)

// Report states, from the operator's point of view.
const (
	StateQueued   = "queued"   // waits for a worker
	StateRunning  = "running"  // a worker has it
	StateWaiting  = "waiting"  // waits for a component an operator must fix
	StateRetrying = "retrying" // failed an attempt; will try again
	StateFailed   = "failed"   // ended without a record: needs an operator
	StateDone     = "done"     // has its record, or a rule skipped it
)

// States lists the report states, in the order a console shows them.
var States = []string{StateFailed, StateWaiting, StateRetrying, StateRunning, StateQueued, StateDone}

// riverStates are the queue states each report state may come from.
var riverStates = map[string][]rivertype.JobState{
	StateQueued:   {rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateScheduled},
	StateRunning:  {rivertype.JobStateRunning},
	StateWaiting:  {rivertype.JobStateScheduled},
	StateRetrying: {rivertype.JobStateRetryable},
	StateFailed:   {rivertype.JobStateCancelled, rivertype.JobStateDiscarded},
	StateDone:     {rivertype.JobStateCompleted},
}

// Subscriptions is what the console needs of the subscriptions manager.
type Subscriptions interface {
	Status() []subscriptions.State
	Resync(ctx context.Context, mailbox string) (int, error)
}

// Options configures a Console. Store and Queue are required.
type Options struct {
	Store *store.Store
	// Queue is the service's River client.
	Queue         store.Queue
	Subscriptions Subscriptions
	// Module returns the Archer application (module) id of the incident
	// records, 0 while the mapping is not resolved; the record links need
	// it.
	Module func() int64
	// ArcherURL is Archer's address with its virtual directory.
	ArcherURL string
	// Window is how many of the newest jobs a list looks through; default
	// DefaultWindow.
	Window int
	// ResyncTimeout bounds a resync asked for by an operator; default one
	// minute.
	ResyncTimeout time.Duration
}

// Limits of the lists.
const (
	// DefaultLimit is the number of reports a list returns by default.
	DefaultLimit = 100
	// MaxLimit is the most reports one list returns.
	MaxLimit = 500
	// DefaultWindow is how many of the newest jobs of the chosen states
	// a list of reports filters through.
	DefaultWindow = 2000
	// maxQuery bounds the text filter.
	maxQuery = 200
	// maxID bounds a mailbox or message id given by the operator.
	maxID = 1024
)

// Console reads the pipeline's state and acts on it.
type Console struct {
	opts Options
}

// New returns a Console.
func New(opts Options) *Console {
	if opts.Window <= 0 {
		opts.Window = DefaultWindow
	}
	if opts.ResyncTimeout <= 0 {
		opts.ResyncTimeout = time.Minute
	}
	return &Console{opts: opts}
}

// Report is one reported email as the console shows it: the newest job
// processing it and what is stored of it.
type Report struct {
	Mailbox   string `json:"mailbox"`
	MessageID string `json:"message_id"`
	// JobID is the newest job processing the email, 0 when the queue no
	// longer holds one.
	JobID int64  `json:"job_id,omitempty"`
	State string `json:"state"`
	// Outcome is how a done job ended: created, adopted,
	// added_to_campaign, skipped, already_done.
	Outcome string `json:"outcome,omitempty"`
	// Reason says why a job failed, waits or retries, e.g.
	// archer_validation.
	Reason     string     `json:"reason,omitempty"`
	Reporter   string     `json:"reporter,omitempty"`
	Subject    string     `json:"subject,omitempty"`
	ReceivedAt *time.Time `json:"received_at,omitempty"`
	RecordID   int64      `json:"record_id,omitempty"`
	// RecordURL opens the record in Archer.
	RecordURL string `json:"record_url,omitempty"`
	Campaign  string `json:"campaign,omitempty"`
	// Reports is the size of the campaign, 1 for a report in none.
	Reports     int       `json:"reports"`
	Rule        string    `json:"rule,omitempty"`
	Attempts    int       `json:"attempts"`
	MaxAttempts int       `json:"max_attempts"`
	LastError   string    `json:"last_error,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Filter selects reports.
type Filter struct {
	// State is one of States, "" for all.
	State string
	// Query matches the subject, reporter, mailbox, message id, rule or
	// record id, as a case-insensitive substring.
	Query string
	// Limit bounds the list: DefaultLimit when 0, at most MaxLimit.
	Limit int
}

// output is what a job recorded (pipeline.Output).
type output struct {
	WaitingFor string `json:"waiting_for"`
	Reason     string `json:"reason"`
	Outcome    string `json:"outcome"`
	Rule       string `json:"rule"`
	RecordID   int64  `json:"record_id"`
}

func outputOf(j *rivertype.JobRow) output {
	var o output
	_ = json.Unmarshal(j.Output(), &o)
	return o
}

// messageArgs are the arguments every job of an email carries.
type messageArgs struct {
	Mailbox   string `json:"mailbox"`
	MessageID string `json:"message_id"`
}

// Reports returns the newest reports matching f, newest first. It looks
// through the newest Options.Window processing jobs of the states asked
// for, one report per email.
func (c *Console) Reports(ctx context.Context, f Filter) ([]Report, error) {
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0:
		return nil, fmt.Errorf("list reports: limit %d: %w", limit, ErrInvalid)
	case limit > MaxLimit:
		limit = MaxLimit
	}
	if len(f.Query) > maxQuery {
		return nil, fmt.Errorf("list reports: the text filter is longer than %d bytes: %w", maxQuery, ErrInvalid)
	}
	params := river.NewJobListParams().Kinds(jobs.ProcessMessage{}.Kind()).
		OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if f.State != "" {
		states, ok := riverStates[f.State]
		if !ok {
			return nil, fmt.Errorf("list reports: state %q is none of %s: %w", f.State, strings.Join(States, ", "), ErrInvalid)
		}
		params = params.States(states...)
	}
	l := lister{c: c, f: f, q: strings.ToLower(strings.TrimSpace(f.Query)), limit: limit, module: c.module(),
		seen: map[store.MessageKey]bool{}, out: []Report{}}
	// Pages of jobs, newest first, until the list is full or the window
	// is looked through: without a filter the first page is enough.
	page := min(c.opts.Window, max(2*limit, 200))
	for scanned := 0; scanned < c.opts.Window && len(l.out) < limit; {
		n := min(page, c.opts.Window-scanned)
		res, err := c.opts.Queue.JobList(ctx, params.First(n))
		if err != nil {
			return nil, fmt.Errorf("list reports: %w", err)
		}
		if err := l.add(ctx, res.Jobs); err != nil {
			return nil, err
		}
		scanned += len(res.Jobs)
		if len(res.Jobs) < n || res.LastCursor == nil {
			break
		}
		params = params.After(res.LastCursor)
	}
	return l.out, nil
}

// lister builds one list of reports from pages of jobs.
type lister struct {
	c      *Console
	f      Filter
	q      string
	limit  int
	module int64
	seen   map[store.MessageKey]bool
	out    []Report
}

// add turns a page of jobs, newest first, into reports: one per email
// (its newest job), those the filter keeps, until the list is full.
func (l *lister) add(ctx context.Context, page []*rivertype.JobRow) error {
	var rows []*rivertype.JobRow
	var keys []store.MessageKey
	for _, j := range page {
		var a messageArgs
		if json.Unmarshal(j.EncodedArgs, &a) != nil {
			continue
		}
		k := store.MessageKey{Mailbox: a.Mailbox, MessageID: a.MessageID}
		if l.seen[k] {
			continue // an older job of the same email
		}
		l.seen[k] = true
		rows = append(rows, j)
		keys = append(keys, k)
	}
	sums, err := l.c.opts.Store.Summaries(ctx, keys)
	if err != nil {
		return fmt.Errorf("list reports: %w", err)
	}
	for i, j := range rows {
		sum, stored := sums[keys[i]]
		r := l.c.report(keys[i], j, sum, stored, l.module)
		if l.f.State != "" && r.State != l.f.State {
			continue
		}
		if l.q != "" && !matches(r, l.q) {
			continue
		}
		l.out = append(l.out, r)
		if len(l.out) == l.limit {
			return nil
		}
	}
	return nil
}

// matches reports whether q (lower case) is in one of r's searchable
// fields.
func matches(r Report, q string) bool {
	for _, s := range []string{r.Subject, r.Reporter, r.Mailbox, r.MessageID, r.Rule} {
		if strings.Contains(strings.ToLower(s), q) {
			return true
		}
	}
	return r.RecordID != 0 && strings.Contains(strconv.FormatInt(r.RecordID, 10), q)
}

func (c *Console) module() int64 {
	if c.opts.Module == nil {
		return 0
	}
	return c.opts.Module()
}

// report combines the newest job of an email (nil when the queue holds
// none) with what is stored of it.
func (c *Console) report(k store.MessageKey, j *rivertype.JobRow, sum store.Summary, stored bool, module int64) Report {
	r := Report{Mailbox: k.Mailbox, MessageID: k.MessageID, Reports: 1}
	if stored {
		r.Reporter, r.Subject, r.Rule, r.RecordID = sum.Reporter, sum.Subject, sum.Rule, sum.RecordID
		if !sum.ReceivedAt.IsZero() {
			t := sum.ReceivedAt
			r.ReceivedAt = &t
		}
		if sum.Campaign != "" {
			r.Campaign, r.Reports = sum.Campaign, max(sum.CampaignReports, 1)
		}
		if sum.SkippedBy != "" {
			r.Rule = sum.SkippedBy
		}
		r.UpdatedAt = sum.UpdatedAt.UTC()
	}
	if j == nil {
		r.State = StateQueued
		if stored && sum.Processed() {
			r.State = StateDone
		}
	} else {
		c.fromJob(&r, j)
	}
	r.RecordURL = recordURL(c.opts.ArcherURL, module, r.RecordID)
	return r
}

// fromJob fills in what the job says of the email.
func (c *Console) fromJob(r *Report, j *rivertype.JobRow) {
	o := outputOf(j)
	r.JobID, r.Attempts, r.MaxAttempts = j.ID, j.Attempt, j.MaxAttempts
	r.State = stateOf(j, o)
	if n := len(j.Errors); n > 0 && r.State != StateDone {
		// A done report's earlier failures are in its history.
		r.LastError = clip.String(j.Errors[n-1].Error, 1000)
	}
	switch r.State {
	case StateDone:
		r.Outcome = o.Outcome
		if r.RecordID == 0 {
			r.RecordID = o.RecordID
		}
		if r.Rule == "" {
			r.Rule = o.Rule
		}
	case StateWaiting:
		r.Reason = o.Reason
	case StateFailed:
		r.Reason = reasonOf(r.LastError)
		if r.Reason == "" && j.State == rivertype.JobStateDiscarded {
			r.Reason = "attempts_exhausted"
		}
	}
	if t := lastActivity(j); t.After(r.UpdatedAt) {
		r.UpdatedAt = t
	}
}

// stateOf is the report state of a job: a scheduled job is waiting when
// it recorded what it waits for.
func stateOf(j *rivertype.JobRow, o output) string {
	switch j.State {
	case rivertype.JobStateRunning:
		return StateRunning
	case rivertype.JobStateRetryable:
		return StateRetrying
	case rivertype.JobStateCancelled, rivertype.JobStateDiscarded:
		return StateFailed
	case rivertype.JobStateCompleted:
		return StateDone
	case rivertype.JobStateScheduled:
		if o.WaitingFor != "" {
			return StateWaiting
		}
	}
	return StateQueued
}

// reasonOf is the reason an ended job's error starts with
// ("archer_validation: …"), "" when it starts with none.
func reasonOf(msg string) string {
	// River marks the error of a job its worker cancelled.
	msg = strings.TrimPrefix(msg, "JobCancelError: ")
	head, _, ok := strings.Cut(msg, ": ")
	if !ok || head == "" || len(head) > 64 {
		return ""
	}
	for _, r := range head {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return ""
		}
	}
	return head
}

func lastActivity(j *rivertype.JobRow) time.Time {
	t := j.CreatedAt
	if j.AttemptedAt != nil && j.AttemptedAt.After(t) {
		t = *j.AttemptedAt
	}
	if j.FinalizedAt != nil && j.FinalizedAt.After(t) {
		t = *j.FinalizedAt
	}
	return t.UTC()
}

// recordURL is the link that opens record id of the application module in
// Archer's web interface ("deep link"), "" when either is unknown or the
// address is not http(s).
func recordURL(archerURL string, module, id int64) string {
	if module == 0 || id == 0 {
		return ""
	}
	u, err := url.Parse(archerURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	request := fmt.Sprintf("../GenericContent/Record.aspx?id=%d&moduleId=%d", id, module)
	return strings.TrimSuffix(u.String(), "/") + "/default.aspx?requestUrl=" + url.QueryEscape(request)
}
