package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

// WriteBackOptions says what is written back to a processed message.
type WriteBackOptions struct {
	// Category is a template over {{.RecordID}}; empty writes no category.
	Category string
	// MoveTo is a folder name or id to move the message to; empty keeps it.
	MoveTo string
}

func (o WriteBackOptions) enabled() bool { return o.Category != "" || o.MoveTo != "" }

// categoryData is what the category template sees.
type categoryData struct {
	// RecordID is the Archer record's id.
	RecordID int64
}

// ParseCategory checks a category template (one line over {{.RecordID}}).
func ParseCategory(text string) (*tmpl.Line[categoryData], error) {
	t, err := tmpl.CompileLine[categoryData]("category", text)
	if err != nil {
		return nil, fmt.Errorf("category template: %w", err)
	}
	return t, nil
}

// WriteBackWorker processes jobs.WriteBack.
type WriteBackWorker struct {
	river.WorkerDefaults[jobs.WriteBack]
	graph    Graph
	decide   func(error) outcome.Decision
	category *tmpl.Line[categoryData]
	moveTo   string
	log      zerolog.Logger
	metrics  *Metrics
}

// NewWriteBackWorker builds the worker; the category template must parse.
// decide is the Graph client's decision on its failures (graph.Decide).
func NewWriteBackWorker(g Graph, decide func(error) outcome.Decision, opts WriteBackOptions, m *Metrics, log zerolog.Logger) (*WriteBackWorker, error) {
	w := &WriteBackWorker{graph: g, decide: decide, moveTo: opts.MoveTo, log: log, metrics: m}
	if m == nil {
		w.metrics = NewMetrics(nil)
	}
	if opts.Category != "" {
		t, err := ParseCategory(opts.Category)
		if err != nil {
			return nil, err
		}
		w.category = t
	}
	return w, nil
}

// Timeout bounds one attempt.
func (w *WriteBackWorker) Timeout(*river.Job[jobs.WriteBack]) time.Duration { return 2 * time.Minute }

// Work adds the category (keeping the message's other categories) and then
// moves the message. A message deleted meanwhile ends the job quietly: the
// incident exists, which is what matters.
func (w *WriteBackWorker) Work(ctx context.Context, job *river.Job[jobs.WriteBack]) error {
	a := job.Args
	log := w.log.With().Str("component", "writeback").Str("mailbox", a.Mailbox).
		Str("message_id", a.MessageID).Int64("record_id", a.RecordID).Logger()
	err := w.write(ctx, a)
	if err == nil {
		w.metrics.writeBack("ok")
		log.Debug().Msg("wrote back to the mailbox")
		return nil
	}
	d := decide(w.decide, componentGraph, err)
	switch d.Action {
	case outcome.Snooze:
		return river.JobSnooze(d.After)
	case outcome.End:
		if d.Reason == "message_gone" {
			w.metrics.writeBack("message_gone")
			log.Warn().Err(err).Msg("message gone before write-back; the incident exists")
		} else {
			w.metrics.writeBack("failed")
			log.Error().Err(err).Str("reason", d.Reason).Msg("write-back ended; the incident exists")
		}
		return river.JobCancel(err)
	case outcome.WaitOperator:
		log.Error().Err(err).Str("fix", d.Fix).Msg("write-back waits for an operator (it needs Mail.ReadWrite on the mailbox); no attempt spent")
		return river.JobSnooze(15 * time.Minute)
	}
	return err
}

func (w *WriteBackWorker) write(ctx context.Context, a jobs.WriteBack) error {
	if w.category != nil || a.Category != "" {
		cat := a.Category // a skip rule's own category
		if cat == "" {
			var err error
			if cat, err = w.category.Execute(categoryData{RecordID: a.RecordID}); err != nil {
				return river.JobCancel(fmt.Errorf("category template: %w", err))
			}
		}
		if cat != "" && !slices.Contains(a.Categories, cat) {
			cats := append(slices.Clone(a.Categories), cat)
			if err := w.graph.Categorize(ctx, a.Mailbox, a.MessageID, cats); err != nil {
				return fmt.Errorf("categorize: %w", err)
			}
		}
	}
	if w.moveTo != "" {
		if _, err := w.graph.Move(ctx, a.Mailbox, a.MessageID, w.moveTo); err != nil {
			return fmt.Errorf("move to %s: %w", w.moveTo, err)
		}
	}
	return nil
}
