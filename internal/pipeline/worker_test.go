package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/spool"
	"github.com/mail2archer/mail2archer/internal/store"
)

// The fakes below stand in for Graph, Archer and the state database, so
// every branch of process() is driven from here.

type fakeGraph struct {
	msg     *Message
	mime    string
	err     error
	fetches int
}

func (g *fakeGraph) FetchMessage(_ context.Context, _, _ string, w io.Writer) (*Message, error) {
	g.fetches++
	if g.err != nil {
		return nil, g.err
	}
	if _, err := io.WriteString(w, g.mime); err != nil {
		return nil, err
	}
	return g.msg, nil
}
func (g *fakeGraph) Categorize(context.Context, string, string, []string) error { return nil }
func (g *fakeGraph) Move(context.Context, string, string, string) (string, error) {
	return "", nil
}

type fakeArcher struct {
	found      []int64
	findErr    error
	uploadErr  error
	createErr  error
	updateErr  error
	updates    []update
	finds      int
	uploads    []string
	contents   []string
	created    []*archer.Record
	nextRecord int64
}

func (a *fakeArcher) FindByField(context.Context, *archer.Application, *archer.Level, archer.Field, string) ([]int64, error) {
	a.finds++
	return a.found, a.findErr
}

func (a *fakeArcher) UploadAttachment(_ context.Context, name string, r io.Reader) (int64, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return 0, err
	}
	if a.uploadErr != nil {
		return 0, a.uploadErr
	}
	a.uploads = append(a.uploads, name)
	a.contents = append(a.contents, string(data))
	return int64(900 + len(a.uploads)), nil
}

func (a *fakeArcher) UpdateRecord(_ context.Context, id int64, r *archer.Record) error {
	if a.updateErr != nil {
		return a.updateErr
	}
	a.updates = append(a.updates, update{id, r})
	return nil
}

// update is one record update the fake Archer received.
type update struct {
	id  int64
	rec *archer.Record
}

func (a *fakeArcher) CreateRecord(_ context.Context, r *archer.Record) (int64, error) {
	if a.createErr != nil {
		return 0, a.createErr
	}
	a.created = append(a.created, r)
	a.nextRecord++
	return 239642 + a.nextRecord, nil
}

type fakeStore struct {
	mu          sync.Mutex
	messages    map[string]store.Message
	readErr     error
	intentErr   error
	completeErr error
	completed   []store.Completion
}

func (s *fakeStore) Message(_ context.Context, mb, id string) (store.Message, error) {
	if s.readErr != nil {
		return store.Message{}, s.readErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[mb+"/"+id]
	if !ok {
		return store.Message{}, fmt.Errorf("message %s/%s: %w", mb, id, store.ErrNotFound)
	}
	return m, nil
}

func (s *fakeStore) SaveIntent(_ context.Context, m store.Message) (store.Message, error) {
	if s.intentErr != nil {
		return store.Message{}, s.intentErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.messages[m.Mailbox+"/"+m.MessageID]; ok {
		return old, nil
	}
	s.messages[m.Mailbox+"/"+m.MessageID] = m
	return m, nil
}

func (s *fakeStore) CompleteMessage(_ context.Context, job *river.Job[jobs.ProcessMessage], c store.Completion) error {
	if s.completeErr != nil {
		return s.completeErr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.messages[job.Args.Mailbox+"/"+job.Args.MessageID]
	m.RecordID = c.RecordID
	s.messages[job.Args.Mailbox+"/"+job.Args.MessageID] = m
	s.completed = append(s.completed, c)
	return nil
}

// fakeMeta is an Archer application with one level: a key, a title and an
// attachment field.
type fakeMeta struct{}

var testApp = &archer.Application{ID: 75, Name: "Incidents", Alias: "Incidents", Levels: []archer.Level{{ID: 232, Name: "Incidents", Alias: "Incidents",
	Fields: []archer.Field{
		{ID: 1, Name: "Key", Alias: "Key", Type: archer.FieldText, Required: true, LevelID: 232},
		{ID: 2, Name: "Title", Alias: "Title", Type: archer.FieldText, Required: true, LevelID: 232},
		{ID: 3, Name: "Files", Alias: "Files", Type: archer.FieldAttachment, LevelID: 232},
		{ID: 4, Name: "Received", Alias: "Received", Type: archer.FieldDate, LevelID: 232},
	}}}}

func (fakeMeta) Application(context.Context, string) (*archer.Application, error) {
	return testApp, nil
}
func (fakeMeta) ValuesListValues(context.Context, int64) ([]archer.Value, error) { return nil, nil }

func testMapping(t *testing.T, yaml string) *incident.Compiled {
	t.Helper()
	m, err := incident.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	c, err := m.Compile(context.Background(), fakeMeta{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const mappingYAML = `application: Incidents
key: {field: Key}
fields:
  Title: {format: plain, template: "{{.Suspect.Subject}}"}
  Files: {attach: [original]}
`

const testMIME = "From: \"Billing\" <billing@evil.example>\r\nTo: phish@contoso.com\r\nSubject: Invoice overdue\r\n" +
	"Message-ID: <m1@evil.example>\r\nDate: Fri, 27 Nov 2026 09:30:00 +0000\r\nContent-Type: text/plain\r\n\r\nPay now.\r\n"

type bundle struct {
	graph *fakeGraph
	spool *spool.Dir
	// spoolDir is the spool's directory; the spool keeps nothing in
	// memory, so every test goes through a file.
	spoolDir string
	archer   *fakeArcher
	store    *fakeStore
	health   *recordingHealth
	opts     Options
}

func newBundle(t *testing.T) *bundle {
	t.Helper()
	c := testMapping(t, mappingYAML)
	b := &bundle{
		graph:    &fakeGraph{mime: testMIME, msg: &Message{Meta: email.Metadata{Subject: "Invoice overdue"}}},
		spoolDir: filepath.Join(t.TempDir(), "spool"),
		archer:   &fakeArcher{},
		store:    &fakeStore{messages: map[string]store.Message{}},
		health:   &recordingHealth{last: map[string]string{}},
	}
	var err error
	if b.spool, _, err = spool.Open(b.spoolDir, 0); err != nil {
		t.Fatal(err)
	}
	b.opts = Options{Graph: b.graph, Spool: b.spool, Archer: b.archer, Store: b.store, Health: b.health,
		Mapping: func(context.Context) *incident.Compiled { return c },
		DecideGraph: func(error) outcome.Decision {
			return outcome.Decision{Action: outcome.Retry, Component: "graph", Reason: "graph_fake"}
		},
		DecideArcher: func(err error) outcome.Decision {
			return outcome.Decision{Action: outcome.End, Component: "archer", Reason: "archer_fake"}
		},
		Logger: zerolog.Nop()}
	return b
}

func testJob(args jobs.ProcessMessage) *river.Job[jobs.ProcessMessage] {
	return &river.Job[jobs.ProcessMessage]{JobRow: &rivertype.JobRow{ID: 7, Attempt: 1, CreatedAt: time.Now()}, Args: args}
}

var job1 = jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-1"}

func TestProcessTakesEveryBranch(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	cases := []struct {
		name    string
		arrange func(b *bundle)
		args    jobs.ProcessMessage
		// record is the record id process returns; adopted whether it
		// adopted it; reason the decision's reason on failure.
		record  int64
		adopted bool
		reason  string
		check   func(t *testing.T, b *bundle)
	}{
		{"a new email becomes a record, after a lookup that finds none", nil, job1, 239643, false, "",
			func(t *testing.T, b *bundle) {
				if b.archer.finds != 1 || len(b.archer.created) != 1 || len(b.archer.uploads) != 1 {
					t.Errorf("finds %d, creates %d, uploads %v", b.archer.finds, len(b.archer.created), b.archer.uploads)
				}
				if len(b.archer.contents) != 1 || b.archer.contents[0] != testMIME {
					t.Errorf("the uploaded email is not the MIME Graph gave: %q", b.archer.contents)
				}
				if len(b.store.completed) != 1 || b.store.completed[0].RecordID != 239643 || b.store.completed[0].WriteBack != nil {
					t.Errorf("completed %+v", b.store.completed)
				}
				if b.health.last["archer"] != "ok" || b.health.last["graph"] != "ok" {
					t.Errorf("health %v", b.health.last)
				}
			}},
		{"a record Archer already has is adopted, not created twice", func(b *bundle) { b.archer.found = []int64{5, 6} }, job1, 5, true, "",
			func(t *testing.T, b *bundle) {
				if len(b.archer.created) != 0 || len(b.archer.uploads) != 0 {
					t.Errorf("created %d, uploaded %v", len(b.archer.created), b.archer.uploads)
				}
			}},
		{"an email already recorded here is left alone", func(b *bundle) {
			b.store.messages["phish@contoso.com/AAMk-1"] = store.Message{RecordID: 41}
		}, job1, 0, false, "", func(t *testing.T, b *bundle) {
			if b.graph.fetches != 0 {
				t.Errorf("%d fetches for a recorded email", b.graph.fetches)
			}
		}},
		{"a replay of a recorded email looks it up again", func(b *bundle) {
			b.store.messages["phish@contoso.com/AAMk-1"] = store.Message{RecordID: 41}
			b.archer.found = []int64{41}
		}, jobs.ProcessMessage{Mailbox: "phish@contoso.com", MessageID: "AAMk-1", Replay: "now"}, 41, true, "", nil},
		{"trusting local state skips the first lookup", func(b *bundle) { b.opts.TrustLocalState = true }, job1, 239643, false, "",
			func(t *testing.T, b *bundle) {
				if b.archer.finds != 0 {
					t.Errorf("%d lookups with trusted local state", b.archer.finds)
				}
			}},
		{"trusting local state still looks up after an earlier attempt's intent", func(b *bundle) {
			b.opts.TrustLocalState = true
			b.store.messages["phish@contoso.com/AAMk-1"] = store.Message{RecordKey: "k"}
			b.archer.found = []int64{77}
		}, job1, 77, true, "", nil},
		{"the state database failing is retried", func(b *bundle) { b.store.readErr = boom }, job1, 0, false, "error", nil},
		{"without a mapping the job waits", func(b *bundle) {
			b.opts.Mapping = func(context.Context) *incident.Compiled { return nil }
		}, job1, 0, false, "mapping_pending", nil},
		{"a failed fetch is decided by Graph's client", func(b *bundle) { b.graph.err = boom }, job1, 0, false, "graph_fake", nil},
		{"an intent that cannot be stored is retried", func(b *bundle) { b.store.intentErr = boom }, job1, 0, false, "error", nil},
		{"a failed lookup is decided by Archer's client", func(b *bundle) { b.archer.findErr = boom }, job1, 0, false, "archer_fake", nil},
		{"a failed upload is decided by Archer's client", func(b *bundle) { b.archer.uploadErr = boom }, job1, 0, false, "archer_fake", nil},
		{"a failed create is decided by Archer's client", func(b *bundle) { b.archer.createErr = boom }, job1, 0, false, "archer_fake", nil},
		{"a commit that fails is retried; the lookup adopts next time", func(b *bundle) { b.store.completeErr = boom }, job1, 0, false, "error", nil},
		{"a mapping that cannot render this email ends the job", func(b *bundle) {
			// The subject is no date: Archer's date field cannot take it.
			c := testMapping(t, mappingYAML+"  Received: {template: \"{{.Suspect.Subject}}\"}\n")
			b.opts.Mapping = func(context.Context) *incident.Compiled { return c }
		}, job1, 0, false, "render_failed", nil},
		{"a broken MIME still becomes a record from what could be read", func(b *bundle) {
			b.graph.mime, b.graph.msg = "not an email at all", &Message{Meta: email.Metadata{Subject: "From Graph"}}
		}, job1, 239643, false, "", nil},
		{"a spool that cannot be written is retried, not blamed on Graph", func(b *bundle) {
			if err := os.RemoveAll(b.spoolDir); err != nil {
				t.Fatal(err)
			}
		}, job1, 0, false, "spool_failed", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := newBundle(t)
			if tc.arrange != nil {
				tc.arrange(b)
			}
			w := NewMessageWorker(b.opts)
			record, result, err := w.process(context.Background(), testJob(tc.args), zerolog.Nop())
			adopted := result == "adopted"
			if tc.reason == "" && err != nil {
				t.Fatalf("process: %v", err)
			}
			if tc.reason != "" {
				if err == nil {
					t.Fatalf("process succeeded; want a failure decided as %s", tc.reason)
				}
				if d := decisionOf(err); d.Reason != tc.reason {
					t.Fatalf("decided %+v, want reason %s (%v)", d, tc.reason, err)
				}
			}
			if record != tc.record || adopted != tc.adopted {
				t.Errorf("record %d adopted %v, want %d %v", record, adopted, tc.record, tc.adopted)
			}
			if tc.check != nil {
				tc.check(t, b)
			}
			if left, _ := os.ReadDir(b.spoolDir); len(left) != 0 {
				t.Errorf("the job left %d spool files", len(left))
			}
		})
	}
}

func TestWriteBackIsQueuedWithTheRecord(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.graph.msg.Categories = []string{"Reviewed"}
	b.opts.WriteBack = WriteBackOptions{Category: "Archer {{.RecordID}}"}
	w := NewMessageWorker(b.opts)
	if _, _, err := w.process(context.Background(), testJob(job1), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	wb := b.store.completed[0].WriteBack
	if wb == nil || wb.RecordID != 239643 || wb.MessageID != "AAMk-1" || len(wb.Categories) != 1 {
		t.Fatalf("write-back %+v", wb)
	}
}
