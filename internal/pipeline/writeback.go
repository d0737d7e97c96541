package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/jobs"
)

// DefaultCategory is the category template written to a processed message.
const DefaultCategory = "Archer {{.RecordID}}"

// WriteBackOptions says what is written back to a processed message.
type WriteBackOptions struct {
	// Category is a template over {{.RecordID}}; empty writes no category.
	Category string
	// MoveTo is a folder name or id to move the message to; empty keeps it.
	MoveTo string
}

func (o WriteBackOptions) enabled() bool { return o.Category != "" || o.MoveTo != "" }

// ParseCategory checks a category template.
func ParseCategory(text string) (*template.Template, error) {
	t, err := template.New("category").Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("category template: %w", err)
	}
	return t, nil
}

// WriteBackWorker processes jobs.WriteBack.
type WriteBackWorker struct {
	river.WorkerDefaults[jobs.WriteBack]
	graph    Graph
	category *template.Template
	moveTo   string
	log      zerolog.Logger
	metrics  *Metrics
}

// NewWriteBackWorker builds the worker; the category template must parse.
func NewWriteBackWorker(g Graph, opts WriteBackOptions, m *Metrics, log zerolog.Logger) (*WriteBackWorker, error) {
	w := &WriteBackWorker{graph: g, moveTo: opts.MoveTo, log: log, metrics: m}
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
		w.metrics.writeBacks.WithLabelValues("ok").Inc()
		log.Debug().Msg("wrote back to the mailbox")
		return nil
	}
	switch graph.ClassOf(err) {
	case graph.ClassRetryAfter:
		d, _ := graph.RetryAfter(err)
		return river.JobSnooze(d)
	case graph.ClassNotFound:
		w.metrics.writeBacks.WithLabelValues("message_gone").Inc()
		log.Warn().Err(err).Msg("message gone before write-back; the incident exists")
		return river.JobCancel(err)
	case graph.ClassPermanent:
		w.metrics.writeBacks.WithLabelValues("failed").Inc()
		return river.JobCancel(err)
	case graph.ClassPermission:
		log.Error().Err(err).Msg("write-back needs Mail.ReadWrite on the mailbox")
	}
	return err
}

func (w *WriteBackWorker) write(ctx context.Context, a jobs.WriteBack) error {
	if w.category != nil {
		var b bytes.Buffer
		if err := w.category.Execute(&b, struct{ RecordID int64 }{a.RecordID}); err != nil {
			return river.JobCancel(fmt.Errorf("category template: %w", err))
		}
		cat := strings.TrimSpace(b.String())
		if cat != "" && !slices.Contains(a.Categories, cat) {
			cats := append(slices.Clone(a.Categories), cat)
			if err := w.graph.Categorize(ctx, a.Mailbox, a.MessageID, cats); err != nil {
				return fmt.Errorf("categorize: %w", err)
			}
		}
	}
	if w.moveTo != "" {
		if _, err := w.graph.Move(ctx, a.Mailbox, a.MessageID, w.moveTo); err != nil {
			var ge *graph.Error
			if errors.As(err, &ge) {
				return err
			}
			return fmt.Errorf("move to %s: %w", w.moveTo, err)
		}
	}
	return nil
}
