package subscriptionstest

import (
	"context"
	"sort"
	"sync"
)

// Queue is an in-memory subscriptions.Queue that dedupes by mailbox and
// message id, as the unique ProcessMessage job does.
type Queue struct {
	mu       sync.Mutex
	jobs     map[string]Job
	order    []string
	attempts map[string]int
	fail     error
}

// Job is one queued message.
type Job struct {
	// Mailbox and MessageID identify the message.
	Mailbox, MessageID string
	// Source is "resync" or "notification".
	Source string
}

// NewQueue returns an empty Queue.
func NewQueue() *Queue {
	return &Queue{jobs: map[string]Job{}, attempts: map[string]int{}}
}

// Enqueue queues the messages a resync found and returns how many were new.
func (q *Queue) Enqueue(_ context.Context, mailbox string, ids []string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.fail; err != nil {
		q.fail = nil
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if q.addLocked(Job{Mailbox: mailbox, MessageID: id, Source: "resync"}) {
			n++
		}
	}
	return n, nil
}

// Notify queues a message announced by a notification; it reports whether
// it was new.
func (q *Queue) Notify(mailbox, id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.addLocked(Job{Mailbox: mailbox, MessageID: id, Source: "notification"})
}

func (q *Queue) addLocked(j Job) bool {
	key := j.Mailbox + "\x00" + j.MessageID
	q.attempts[key]++
	if _, ok := q.jobs[key]; ok {
		return false
	}
	q.jobs[key] = j
	q.order = append(q.order, key)
	return true
}

// FailNext makes the next Enqueue fail with err.
func (q *Queue) FailNext(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fail = err
}

// Jobs returns the queued jobs in the order they were first queued.
func (q *Queue) Jobs() []Job {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Job, 0, len(q.order))
	for _, k := range q.order {
		out = append(out, q.jobs[k])
	}
	return out
}

// Attempts returns how many times each queued message of a mailbox was
// offered (by a resync or a notification), by message id.
func (q *Queue) Attempts(mailbox string) map[string]int {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := map[string]int{}
	for k, n := range q.attempts {
		if j, ok := q.jobs[k]; ok && j.Mailbox == mailbox {
			out[j.MessageID] = n
		}
	}
	return out
}

// IDs returns the queued message ids of a mailbox, sorted.
func (q *Queue) IDs(mailbox string) []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []string
	for _, j := range q.jobs {
		if j.Mailbox == mailbox {
			out = append(out, j.MessageID)
		}
	}
	sort.Strings(out)
	return out
}
