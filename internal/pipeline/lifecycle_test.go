package pipeline

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

type fakeInserter struct{ got []river.InsertManyParams }

func (f *fakeInserter) InsertMany(_ context.Context, p []river.InsertManyParams) ([]*rivertype.JobInsertResult, error) {
	f.got = append(f.got, p...)
	out := make([]*rivertype.JobInsertResult, len(p))
	for i := range p {
		// The second job of a batch already existed.
		out[i] = &rivertype.JobInsertResult{Job: &rivertype.JobRow{}, UniqueSkippedAsDuplicate: i == 1}
	}
	return out, nil
}

func TestResyncQueueSkipsWhatHasARecord(t *testing.T) {
	t.Parallel()
	st := &fakeStore{messages: map[string]store.Message{"mb/done": {RecordID: 9}, "mb/intent": {RecordKey: "k"}}}
	ins := &fakeInserter{}
	n, err := ResyncQueue{Jobs: ins, Store: st}.Enqueue(context.Background(), "mb", []string{"done", "intent", "new"})
	if err != nil || n != 1 {
		t.Fatalf("queued %d, %v; want 1 new (one of two was a duplicate)", n, err)
	}
	var ids []string
	for _, p := range ins.got {
		a := p.Args.(jobs.ProcessMessage)
		ids = append(ids, a.MessageID+"/"+a.Source)
	}
	if fmt.Sprint(ids) != "[intent/resync new/resync]" {
		t.Errorf("queued %v", ids)
	}
	st.readErr = errors.New("database is locked")
	if _, err := (ResyncQueue{Jobs: ins, Store: st}).Enqueue(context.Background(), "mb", []string{"x"}); err == nil {
		t.Error("a database failure was ignored")
	}
}

type fakeLifecycle struct{ err error }

func (f fakeLifecycle) HandleLifecycle(context.Context, string, string) error { return f.err }

func TestALifecycleEventWaitsForTheManagingReplica(t *testing.T) {
	t.Parallel()
	job := &river.Job[jobs.Lifecycle]{JobRow: &rivertype.JobRow{}, Args: jobs.Lifecycle{SubscriptionID: "s", Event: subscriptions.EventMissed}}
	var snooze *river.JobSnoozeError
	if err := NewLifecycleWorker(fakeLifecycle{subscriptions.ErrNotLeader}).Work(context.Background(), job); !errors.As(err, &snooze) || snooze.Duration != standbySnooze {
		t.Errorf("a standby: %v", err)
	}
	if err := NewLifecycleWorker(fakeLifecycle{}).Work(context.Background(), job); err != nil {
		t.Errorf("the leader: %v", err)
	}
}
