// Package pipeline holds the queue's workers: the one that turns a reported
// email into exactly one Archer incident, and the one that writes the
// record's id back to the mailbox.
//
// Exactly once: Archer is the source of truth for "already created". Before
// every create the worker looks the record up in Archer by its key field and
// adopts what it finds, so neither a crash around the create nor local state
// that is behind Archer (a restored backup, a power cut, a lost database)
// makes a second incident. An intent with the key is stored before the
// create; the record id is stored and the job completed in one database
// transaction.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/campaign"
	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/spool"
	"github.com/mail2archer/mail2archer/internal/store"
)

// Message is what the workers read of a reported email from Graph besides
// its raw MIME: what Graph says of it (which takes precedence over its
// headers in the analysis) and its categories (the write-back keeps them).
type Message struct {
	Meta       email.Metadata
	Categories []string
}

// Graph is the part of the Graph client the workers use.
type Graph interface {
	// FetchMessage reads a message's metadata and streams its raw MIME
	// into mime.
	FetchMessage(ctx context.Context, mailbox, id string, mime io.Writer) (*Message, error)
	Categorize(ctx context.Context, mailbox, id string, categories []string) error
	Move(ctx context.Context, mailbox, id, folder string) (string, error)
}

// Archer is the part of the Archer client the workers use.
type Archer interface {
	UploadAttachment(ctx context.Context, name string, r io.Reader) (int64, error)
	CreateRecord(ctx context.Context, r *archer.Record) (int64, error)
	UpdateRecord(ctx context.Context, id int64, r *archer.Record) error
	FindByField(ctx context.Context, app *archer.Application, level *archer.Level, f archer.Field, value string) ([]int64, error)
}

// Spool holds a message's MIME while its job runs: in memory when it is
// small, in a temporary file when it is large (spool.Dir). The job removes
// it when it ends.
type Spool interface {
	Create() *spool.File
}

// Store is the part of the state database the workers use.
type Store interface {
	Message(ctx context.Context, mailbox, messageID string) (store.Message, error)
	SaveIntent(ctx context.Context, m store.Message) (store.Message, error)
	// CompleteMessage stores the record id, queues the write-back and
	// completes the job in one transaction.
	CompleteMessage(ctx context.Context, job *river.Job[jobs.ProcessMessage], c store.Completion) error
}

// Health receives what the workers observe of the outside systems: a
// success, or a failure with what an operator should fix. Readiness reads
// it; a component's recovery wakes the jobs that wait for it.
type Health interface {
	OK(component, detail string)
	Fail(component, detail, fix string)
	// Working reports whether component was last seen working.
	Working(component string) bool
}

// Output is what a message job records in its metadata (River's recorded
// output): why it waits, or how it ended. WakeWaiting reads WaitingFor.
type Output struct {
	// WaitingFor names the component ("archer", "graph", "mapping") a job
	// snoozed for an operator waits for.
	WaitingFor string `json:"waiting_for,omitempty"`
	// Reason is the decision's reason, e.g. "archer_login_refused".
	Reason string `json:"reason,omitempty"`
	// Outcome is "created", "adopted" or "already_done" for a job that
	// succeeded.
	Outcome string `json:"outcome,omitempty"`
	// Rule names the triage rule that matched the report.
	Rule string `json:"rule,omitempty"`
	// RecordID is the Archer record the job created or adopted.
	RecordID int64 `json:"record_id,omitempty"`
}

// Options configures the message worker.
type Options struct {
	Graph  Graph
	Archer Archer
	Store  Store
	// Spool holds each message's MIME on disk while its job runs.
	Spool Spool
	// Campaigns groups the reports of one email when the mapping has a
	// campaign section.
	Campaigns CampaignStore
	// Mapping returns the mapping once its preflight against Archer has
	// passed; before, it may wait a little (until ctx ends) and then
	// return nil: jobs then wait without spending attempts.
	Mapping func(ctx context.Context) *incident.Compiled
	// DecideGraph and DecideArcher are the clients' decisions on their
	// failures (graph.Decide, archer.Decide). Nil retries every failure.
	DecideGraph, DecideArcher func(error) outcome.Decision
	// TrustLocalState skips the lookup by key before a job's first create,
	// saving one Archer call per email. Then only an attempt that finds
	// its own earlier intent looks the record up: a restored backup, a
	// power cut that lost the last commits or a lost database make
	// duplicate incidents. Off by default.
	TrustLocalState bool
	// Health, when set, receives the state of Graph and Archer as the
	// jobs see them.
	Health Health
	// OperatorWait is the first wait of a job whose failure needs an
	// operator; it doubles on each wait of the same job up to
	// MaxOperatorWait. Defaults 1 and 15 minutes. Such waits spend no
	// attempt, and a recovery wakes the job early.
	OperatorWait, MaxOperatorWait time.Duration
	// Email bounds and internal domains for the analysis; acknowledgments
	// go only to reporters in the internal domains.
	Email email.Options
	// Mailboxes are the phishing mailboxes, which never get an
	// acknowledgment.
	Mailboxes []string
	// WriteBack says what to write to the mailbox after the record exists;
	// nothing when both parts are empty.
	WriteBack WriteBackOptions
	// Timeout bounds one attempt. Default 10 minutes.
	Timeout time.Duration
	Metrics *Metrics
	Logger  zerolog.Logger
	Now     func() time.Time
}

// MessageWorker processes jobs.ProcessMessage.
type MessageWorker struct {
	river.WorkerDefaults[jobs.ProcessMessage]
	opts Options
}

// NewMessageWorker builds the worker.
func NewMessageWorker(opts Options) *MessageWorker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(nil)
	}
	if opts.OperatorWait <= 0 {
		opts.OperatorWait = time.Minute
	}
	if opts.MaxOperatorWait < opts.OperatorWait {
		opts.MaxOperatorWait = max(15*time.Minute, opts.OperatorWait)
	}
	if opts.Mapping == nil {
		opts.Mapping = func(context.Context) *incident.Compiled { return nil }
	}
	return &MessageWorker{opts: opts}
}

// Timeout bounds one attempt; a timed-out attempt is retried.
func (w *MessageWorker) Timeout(*river.Job[jobs.ProcessMessage]) time.Duration { return w.opts.Timeout }

// Work processes one reported email. The clients decide what a failure
// means (see Options.DecideGraph and DecideArcher), and Work maps the
// decision onto the queue: a retry with backoff, a snooze for the wait the
// server asked, a wait for an operator (a snooze that spends no attempt),
// or the end of the job with a reason an operator can read.
func (w *MessageWorker) Work(ctx context.Context, job *river.Job[jobs.ProcessMessage]) error {
	a := job.Args
	log := w.opts.Logger.With().Str("component", "worker").Int64("job_id", job.ID).
		Str("mailbox", a.Mailbox).Str("message_id", a.MessageID).Int("attempt", job.Attempt).Logger()
	recordID, result, err := w.process(ctx, job, log)
	if err != nil {
		return w.fail(ctx, job, err, log)
	}
	if result == "" {
		w.opts.Metrics.outcome("already_done")
		_ = river.RecordOutput(ctx, Output{Outcome: "already_done"})
		return nil
	}
	w.opts.Metrics.outcome(result)
	w.opts.Metrics.latency(w.opts.Now().Sub(job.CreatedAt))
	ev := log.Info().Int64("record_id", recordID).Str("outcome", result).
		Dur("since_notification", w.opts.Now().Sub(job.CreatedAt))
	if n := len(job.Errors); n > 0 {
		ev = ev.Int("failed_attempts", n).Str("last_error", job.Errors[n-1].Error)
	}
	ev.Msg("incident recorded")
	return nil
}

// fail turns a failed attempt into the queue's decision, tells Health what
// it saw, and logs only what changed.
func (w *MessageWorker) fail(ctx context.Context, job *river.Job[jobs.ProcessMessage], err error, log zerolog.Logger) error {
	d := decisionOf(err)
	if w.opts.Health != nil && d.Component != "" && d.Component != componentMapping && d.Action != outcome.Snooze {
		if d.Action == outcome.End {
			// The system answered; the email is at fault.
			w.opts.Health.OK(d.Component, "answering (last failure was the email's: "+d.Reason+")")
		} else {
			w.opts.Health.Fail(d.Component, clip.String(err.Error(), 300), d.Fix)
		}
	}
	w.opts.Metrics.outcome(d.Reason)
	switch d.Action {
	case outcome.End:
		log.Error().Err(err).Str("reason", d.Reason).Int("attempts", job.Attempt).Msg("job ended; `mail2archer jobs list` shows it and `replay` processes the email again")
		// The reason leads the error, so `jobs list` shows it first.
		return river.JobCancel(fmt.Errorf("%s: %w", d.Reason, err))
	case outcome.Snooze:
		log.Debug().Err(err).Dur("after", d.After).Msg("asked to wait; snoozing")
		return river.JobSnooze(d.After)
	case outcome.WaitOperator:
		wait := w.operatorWait(job)
		if w.opts.Health != nil && w.opts.Health.Working(d.Component) {
			// It recovered while this attempt failed: the wake-up may
			// have come before this snooze, so do not wait long.
			wait = time.Second
		}
		// Recorded so that WakeWaiting wakes this job when the component
		// works again. Outside a worker (unit tests) there is nothing to
		// record into.
		_ = river.RecordOutput(ctx, Output{WaitingFor: d.Component, Reason: d.Reason})
		log.Debug().Err(err).Str("reason", d.Reason).Dur("next_try_in", wait).Msg("waiting for an operator; no attempt spent")
		return river.JobSnooze(wait)
	}
	// Retry: River records each attempt's error; warn only when it differs
	// from the previous attempt's.
	if n := len(job.Errors); n > 0 && job.Errors[n-1].Error == err.Error() {
		log.Debug().Err(err).Msg("attempt failed again the same way; will retry")
	} else {
		log.Warn().Err(err).Str("reason", d.Reason).Msg("attempt failed; will retry")
	}
	return err
}

// operatorWait is the snooze of a job waiting for an operator: OperatorWait,
// doubling with each snooze of the job, at most MaxOperatorWait.
func (w *MessageWorker) operatorWait(job *river.Job[jobs.ProcessMessage]) time.Duration {
	var meta struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(job.Metadata, &meta)
	d := w.opts.OperatorWait
	for i := 0; i < meta.Snoozes && d < w.opts.MaxOperatorWait; i++ {
		d *= 2
	}
	return min(d, w.opts.MaxOperatorWait)
}

// process returns the record id (0 when the job had nothing left to do) and
// the outcome: created, adopted (an existing record with the email's key),
// or added_to_campaign.
func (w *MessageWorker) process(ctx context.Context, job *river.Job[jobs.ProcessMessage], log zerolog.Logger) (int64, string, error) {
	a := job.Args
	prior, err := w.opts.Store.Message(ctx, a.Mailbox, a.MessageID)
	hasIntent := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return 0, "", err
	}
	if hasIntent && prior.Processed() && a.Replay == "" {
		log.Info().Int64("record_id", prior.RecordID).Str("skipped_by", prior.SkippedBy).Msg("already processed; nothing to do")
		return 0, "", nil
	}

	mapping := w.opts.Mapping(ctx)
	if mapping == nil {
		return 0, "", &failure{err: errMappingPending, d: outcome.Decision{Action: outcome.WaitOperator,
			Component: componentMapping, Reason: "mapping_pending",
			Fix: "see the mapping component of /readyz: the preflight against Archer has not passed yet"}}
	}

	// A large MIME goes to a file and is parsed and uploaded from there: a
	// 25 MB attachment is never held in memory as the whole message.
	mime := w.opts.Spool.Create()
	defer func() {
		if err := mime.Remove(); err != nil {
			log.Warn().Err(err).Msg("could not remove the spooled MIME; it is removed at the next start")
		}
	}()
	msg, err := w.opts.Graph.FetchMessage(ctx, a.Mailbox, a.MessageID, mime)
	if werr := mime.Err(); werr != nil {
		return 0, "", spoolFailure(werr)
	}
	if err != nil {
		return 0, "", w.graphFailure(fmt.Errorf("fetch: %w", err))
	}
	if w.opts.Health != nil {
		w.opts.Health.OK(componentGraph, "messages are read")
	}
	meta := msg.Meta
	meta.Mailbox, meta.MessageID = a.Mailbox, a.MessageID
	rep, err := email.AnalyzeReader(mime, mime.Size(), meta, w.opts.Email)
	if err != nil {
		// A bound was hit or the MIME is broken: Analyze always returns
		// what could be read (at worst the headers Graph gave), and the
		// incident is still worth creating, with the reason on record.
		rep.Warnings = append(rep.Warnings, err.Error())
		log.Warn().Err(err).Msg("email only partly analysed; creating the incident from what was read")
	}
	inc, err := mapping.Render(rep, mime.Open, w.opts.Now())
	if err != nil {
		return 0, "", ended("render_failed", err)
	}

	f := finish{rep: rep, categories: msg.Categories, reports: 1}
	keys := campaign.Keys(rep, []string{campaign.KindMessageID, campaign.KindFingerprint})
	if m, ok := mapping.MatchRules(rep, keys); ok {
		w.opts.Metrics.ruleMatch(m.Name)
		f.rule = m.Name
		log = log.With().Str("rule", m.Name).Logger()
		if m.Skip {
			return w.skip(ctx, job, mapping, inc, m, f, log)
		}
		if err := mapping.ApplyRule(inc, m.Name); err != nil {
			return 0, "", ended("render_failed", fmt.Errorf("rule %s: %w", m.Name, err))
		}
	}
	if mapping.Campaign != nil {
		return w.processCampaign(ctx, job, mapping, rep, inc, f, hasIntent, log)
	}
	intent, err := w.opts.Store.SaveIntent(ctx, intentOf(a, rep, inc.Key, f.rule))
	if err != nil {
		return 0, "", err
	}
	lookup := !w.opts.TrustLocalState || hasIntent || a.Replay != ""
	recordID, adopted, _, err := w.findOrCreate(ctx, mapping, inc, intent.RecordKey, lookup, log)
	if err != nil {
		return 0, "", err
	}
	f.recordID = recordID
	result := outcomeOf(adopted)
	if err := w.commit(ctx, job, mapping, f, result, log); err != nil {
		return 0, "", err
	}
	return recordID, result, nil
}

// skip completes a report a rule skipped: no record; the rule's category
// written back, and the acknowledgment for a skipped or simulated report.
func (w *MessageWorker) skip(ctx context.Context, job *river.Job[jobs.ProcessMessage], mapping *incident.Compiled,
	inc *incident.Incident, m *incident.RuleMatch, f finish, log zerolog.Logger) (int64, string, error) {
	a := job.Args
	if _, err := w.opts.Store.SaveIntent(ctx, intentOf(a, f.rep, inc.Key, f.rule)); err != nil {
		return 0, "", err
	}
	f.skip = m
	if err := w.commit(ctx, job, mapping, f, outcomeSkipped, log); err != nil {
		return 0, "", err
	}
	log.Info().Bool("simulation", m.Simulation).Msg("a rule skipped the report: no incident")
	return 0, outcomeSkipped, nil
}

// intentOf is the intent stored before a record is created for the report:
// the key, and what the operator console shows of the report.
func intentOf(a jobs.ProcessMessage, rep *email.Report, key, rule string) store.Message {
	m := store.Message{Mailbox: a.Mailbox, MessageID: a.MessageID, InternetMessageID: rep.InternetMessageID,
		RecordKey: key, Reporter: rep.Reporter.Address, ReceivedAt: rep.ReceivedAt, Rule: rule}
	if rep.Suspect != nil {
		m.Subject = rep.Suspect.Subject
	}
	return m
}

// outcomeSkipped is the outcome of a report a rule skipped.
const outcomeSkipped = "skipped"

// findOrCreate returns the record that carries key in Archer, looking it up
// first when lookup is set, or creates it from inc. It says whether the
// record was adopted and, for a created one, the uploaded attachments' ids
// in the order of inc.Files.
func (w *MessageWorker) findOrCreate(ctx context.Context, mapping *incident.Compiled, inc *incident.Incident, key string, lookup bool, log zerolog.Logger) (int64, bool, []int64, error) {
	if lookup {
		// Archer is the source of truth for "already created": an earlier
		// attempt may have created the record before it failed, and the
		// local state may be behind Archer (a restored backup, a power
		// cut, a lost database).
		ids, err := w.opts.Archer.FindByField(ctx, mapping.App, mapping.Level, mapping.KeyField, key)
		if err != nil {
			return 0, false, nil, w.archerFailure(fmt.Errorf("look up record by key: %w", err))
		}
		if len(ids) > 0 {
			if len(ids) > 1 {
				log.Warn().Interface("record_ids", ids).Msg("several Archer records carry this email's key; adopting the first")
			}
			return ids[0], true, nil, nil
		}
	}
	recordID, files, err := w.create(ctx, inc)
	if err != nil {
		return 0, false, nil, err
	}
	if w.opts.Health != nil {
		w.opts.Health.OK(componentArcher, "records are created")
	}
	return recordID, false, files, nil
}

// create uploads inc's files and creates its record; it returns the
// record's id and the files' ids in the order of inc.Files.
func (w *MessageWorker) create(ctx context.Context, inc *incident.Incident) (int64, []int64, error) {
	ids, err := w.upload(ctx, inc.Files)
	if err != nil {
		return 0, nil, err
	}
	if err := inc.AttachFiles(ids); err != nil {
		return 0, nil, ended("render_failed", err)
	}
	id, err := w.opts.Archer.CreateRecord(ctx, inc.Record)
	if err != nil {
		return 0, nil, w.archerFailure(fmt.Errorf("create record: %w", err))
	}
	return id, ids, nil
}

// upload uploads files to Archer and returns their ids in order.
func (w *MessageWorker) upload(ctx context.Context, files []incident.File) ([]int64, error) {
	ids := make([]int64, 0, len(files))
	for _, f := range files {
		rc, err := f.Open()
		if err != nil {
			return nil, ended("render_failed", fmt.Errorf("open %s: %w", f.Name, err))
		}
		id, err := w.opts.Archer.UploadAttachment(ctx, f.Name, rc)
		_ = rc.Close()
		if err != nil {
			return nil, w.archerFailure(fmt.Errorf("upload %s: %w", f.Name, err))
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// finish is what a job's success stores and queues.
type finish struct {
	rep *email.Report
	// recordID is the record the report became or joined; 0 when skip
	// names the rule that skipped it.
	recordID int64
	skip     *incident.RuleMatch
	// rule names the rule that matched, if any.
	rule string
	// reports is how many people reported the email (a campaign's count).
	reports int
	// categories are the message's categories when it was fetched.
	categories []string
}

// commit records the job's output, then stores the record id (or the
// skip), completes the job and queues the write-back and the
// acknowledgment, in one transaction.
func (w *MessageWorker) commit(ctx context.Context, job *river.Job[jobs.ProcessMessage], mapping *incident.Compiled, f finish, result string, log zerolog.Logger) error {
	a := job.Args
	c := store.Completion{RecordID: f.recordID}
	which := incident.AckRecord
	switch {
	case f.skip != nil:
		c.SkippedBy = f.skip.Name
		if w.opts.WriteBack.enabled() {
			c.WriteBack = &jobs.WriteBack{Mailbox: a.Mailbox, MessageID: a.MessageID, Category: f.skip.Category, Categories: f.categories}
		}
		which = incident.AckSkipped
		if f.skip.Simulation {
			which = incident.AckSimulation
		}
	case w.opts.WriteBack.enabled():
		c.WriteBack = &jobs.WriteBack{Mailbox: a.Mailbox, MessageID: a.MessageID, RecordID: f.recordID, Categories: f.categories}
	}
	c.Ack = w.ack(mapping, a, which, f, log)
	// Recorded before the commit, which completes the job with it.
	_ = river.RecordOutput(ctx, Output{Outcome: result, RecordID: f.recordID, Rule: f.rule})
	return w.opts.Store.CompleteMessage(ctx, job, c)
}

// ack renders the acknowledgment of the report, or returns nil when none
// goes: the mapping has no text for it, or the reporter gets none (see
// ackTo).
func (w *MessageWorker) ack(mapping *incident.Compiled, a jobs.ProcessMessage, which incident.AckKind, f finish, log zerolog.Logger) *jobs.Ack {
	if !mapping.HasAck(which) {
		return nil
	}
	to, why := ackTo(f.rep, w.opts.Email.InternalDomains, w.opts.Mailboxes)
	if to == "" {
		w.opts.Metrics.ack("not_for_this_report")
		log.Debug().Str("why", why).Msg("no acknowledgment for this report")
		return nil
	}
	msg, ok, err := mapping.RenderAck(which, incident.AckData{Report: f.rep, RecordID: f.recordID, Reports: max(f.reports, 1), Rule: f.rule})
	if err != nil || !ok {
		w.opts.Metrics.ack("render_failed")
		log.Error().Err(err).Msg("the acknowledgment could not be rendered; none is sent")
		return nil
	}
	return &jobs.Ack{Mailbox: a.Mailbox, MessageID: a.MessageID, To: to, Subject: msg.Subject, Text: msg.Text, HTML: msg.HTML, Which: which.String()}
}

// outcomeOf names a success for metrics and the job's recorded output.
func outcomeOf(adopted bool) string {
	if adopted {
		return "adopted"
	}
	return "created"
}

// Component names reported to Health.
const (
	componentGraph   = "graph"
	componentArcher  = "archer"
	componentMapping = "mapping"
)

var errMappingPending = errors.New("the mapping preflight against Archer has not passed yet")

// spoolFailure is a failure to keep the MIME on the local disk: retried
// with backoff, like the state database's own failures.
func spoolFailure(err error) error {
	return &failure{err: err, d: outcome.Decision{Action: outcome.Retry,
		Reason: "spool_failed", Fix: "free space in the data directory (the spool directory beside the state database)"}}
}

// failure is an error with the decision about it.
type failure struct {
	err error
	d   outcome.Decision
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// ended is a failure that retrying cannot fix.
func ended(reason string, err error) error {
	return &failure{err: err, d: outcome.Decision{Action: outcome.End, Reason: reason}}
}

func (w *MessageWorker) graphFailure(err error) error {
	return &failure{err: err, d: decide(w.opts.DecideGraph, componentGraph, err)}
}

func (w *MessageWorker) archerFailure(err error) error {
	return &failure{err: err, d: decide(w.opts.DecideArcher, componentArcher, err)}
}

func decide(fn func(error) outcome.Decision, component string, err error) outcome.Decision {
	if fn == nil {
		return outcome.Decision{Action: outcome.Retry, Component: component, Reason: component + "_error"}
	}
	return fn(err)
}

// decisionOf is the decision attached to err; anything else (the state
// database failing, a cancelled attempt) is retried with backoff.
func decisionOf(err error) outcome.Decision {
	var f *failure
	if errors.As(err, &f) {
		return f.d
	}
	return outcome.Decision{Action: outcome.Retry, Reason: "error"}
}
