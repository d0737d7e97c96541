package subscriptions

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotLeader is returned by calls that only the replica holding the lease
// may make. A queue worker that gets it should retry the job a little later,
// when it may run on the leader.
var ErrNotLeader = errors.New("this replica does not manage the subscriptions now")

// ErrRunning is returned by Run and ReconcileOnce while the Manager is
// already running one of them.
var ErrRunning = errors.New("subscriptions manager already running")

// Manager keeps one subscription per configured mailbox folder alive. Create
// it with New, run it with Run; its other methods are safe to call
// concurrently, from any goroutine, whether or not Run is running.
type Manager struct {
	cfg     Config
	graph   Graph
	store   Store
	queue   Queue
	clock   Clock
	log     *slog.Logger
	onEvent func(Event)

	randMu sync.Mutex
	rand   io.Reader

	// locks serialize the Graph calls of one mailbox: the renewal loop,
	// lifecycle events and manual resyncs never overlap on one folder.
	locks map[string]*sync.Mutex

	running atomic.Bool
	kick    chan struct{}

	// keeper counts the goroutine that extends the lease while leading.
	keeper sync.WaitGroup

	mu     sync.Mutex // guards the fields below
	leader bool
	// lctx lives as long as the leadership; lcancel ends it.
	lctx    context.Context
	lcancel context.CancelFunc
	// reconciled is false until the leader's start-up reconcile succeeded.
	reconciled    bool
	reconcileErr  error
	reconcileFail int
	nextReconcile time.Time
	states        map[string]*mailboxState // by configured mailbox
}

// mailboxState is what the Manager knows of one mailbox folder.
type mailboxState struct {
	mailbox string
	sub     Record // ID == "" when no subscription is known
	// lastTouch is the last successful create, renew or reauthorize.
	lastTouch      time.Time
	nextRenew      time.Time
	renewFailures  int
	nextCreate     time.Time
	createFailures int
	nextResync     time.Time
	resyncFailures int
	lastResync     time.Time
	lastQueued     int // messages newly queued by the last resync
	// subErr is the last failure to create, renew or reauthorize;
	// resyncErr the last failure to resync. Both are nil after a success.
	subErr    error
	resyncErr error
	// recoveredAt is when the start-up reconcile found the state database
	// lost or replaced; recoveredSince the bound of the recovery resync.
	recoveredAt, recoveredSince time.Time
}

// New checks cfg, applies its defaults and returns a Manager that is not yet
// running. graph, store and queue are required.
func New(cfg Config, graph Graph, store Store, queue Queue, opts Options) (*Manager, error) {
	if graph == nil || store == nil || queue == nil {
		return nil, errors.New("subscriptions: graph, store and queue are required")
	}
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		cfg:     c,
		graph:   graph,
		store:   store,
		queue:   queue,
		clock:   opts.Clock,
		log:     opts.Logger,
		onEvent: opts.OnEvent,
		rand:    opts.Rand,
		locks:   map[string]*sync.Mutex{},
		kick:    make(chan struct{}, 1),
		states:  map[string]*mailboxState{},
	}
	if m.clock == nil {
		m.clock = realClock{}
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.cfg.Holder == "" {
		host, _ := os.Hostname()
		suffix, err := m.randomBytes(4)
		if err != nil {
			return nil, err
		}
		m.cfg.Holder = host + "/" + hex.EncodeToString(suffix)
	}
	for _, mb := range c.Mailboxes {
		m.locks[mb] = &sync.Mutex{}
		m.states[mb] = &mailboxState{mailbox: mb}
	}
	return m, nil
}

// Holder returns the name this replica uses in the lease.
func (m *Manager) Holder() string { return m.cfg.Holder }

// Run keeps the subscriptions alive until ctx ends. It competes for the
// lease; while it holds it, it reconciles Graph with the configuration,
// creates, renews and resyncs, and a second goroutine extends the lease
// every third of its time to live, however long a Graph call takes; when
// the lease is lost, work in progress is cancelled. Without the lease it
// stands by and follows the stored subscriptions for Status. On return it
// has released the lease and stopped every goroutine it started. It returns
// nil when ctx ended, ErrRunning when another Run is in progress.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer m.running.Store(false)
	defer m.stepDown(true)

	var acquire leaseState
	for {
		now := m.clock.Now()
		if !m.isLeader() && !now.Before(acquire.next) {
			m.tryLead(ctx, now, &acquire)
		}
		next := acquire.next
		if lctx := m.leaderContext(); lctx != nil {
			next = m.work(lctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		wait := max(next.Sub(m.clock.Now()), 0)
		timer := m.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-timer.C():
		case <-m.kick:
			timer.Stop()
		}
	}
}

// leaseState tracks attempts on the lease.
type leaseState struct {
	next    time.Time // when to try next
	lastErr string    // the last error logged
}

// tryLead tries to take the lease and steps up when it succeeds; otherwise
// it refreshes the standby's view from the store.
func (m *Manager) tryLead(ctx context.Context, now time.Time, ls *leaseState) {
	ls.next = now.Add(m.cfg.LeaseTTL / 3)
	ok, err := m.store.TryAcquireLease(ctx, LeaseName, m.cfg.Holder, now, m.cfg.LeaseTTL)
	if err != nil {
		if ctx.Err() == nil && err.Error() != ls.lastErr {
			ls.lastErr = err.Error()
			m.log.Error("cannot take the subscriptions lease; check the database", "error", err)
		}
		return
	}
	ls.lastErr = ""
	if ok {
		m.stepUp(ctx, now)
		return
	}
	m.follow(ctx)
}

// stepUp makes this replica the leader from now, when the lease was just
// taken, and starts the goroutine that extends the lease.
func (m *Manager) stepUp(ctx context.Context, now time.Time) {
	lctx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.leader = true
	m.lctx, m.lcancel = lctx, cancel
	m.reconciled = false
	m.reconcileFail = 0
	m.nextReconcile = now
	m.mu.Unlock()
	m.emit(Event{Kind: KindLeadership, Leader: true})
	m.log.Info("this replica now manages the subscriptions", "holder", m.cfg.Holder)
	m.keeper.Add(1)
	go func() {
		defer m.keeper.Done()
		m.keepLease(lctx, now)
	}()
}

// keepLease extends the lease every third of its time to live until lctx
// ends. When another replica took the lease, or the store could not confirm
// it for two thirds of its time to live, it gives up the leadership.
func (m *Manager) keepLease(lctx context.Context, confirmed time.Time) {
	every := m.cfg.LeaseTTL / 3
	var lastErr string
	for {
		timer := m.clock.NewTimer(every)
		select {
		case <-lctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		}
		now := m.clock.Now()
		ok, err := m.store.TryAcquireLease(lctx, LeaseName, m.cfg.Holder, now, m.cfg.LeaseTTL)
		switch {
		case lctx.Err() != nil:
			return
		case err != nil:
			if err.Error() != lastErr {
				lastErr = err.Error()
				m.log.Error("cannot extend the subscriptions lease; check the database", "error", err)
			}
			// Keep acting only while the lease surely still runs.
			if now.Sub(confirmed) >= 2*every {
				m.log.Warn("lease not confirmed in time; standing by")
				m.loseLead()
				return
			}
		case !ok:
			m.log.Warn("another replica took the subscriptions lease; standing by")
			m.loseLead()
			return
		default:
			confirmed, lastErr = now, ""
		}
	}
}

// loseLead ends the leadership from the keeper: work in progress is
// cancelled and Run goes back to standing by.
func (m *Manager) loseLead() {
	m.mu.Lock()
	was := m.leader
	m.leader, m.reconciled = false, false
	if m.lcancel != nil {
		m.lcancel()
	}
	m.lctx, m.lcancel = nil, nil
	m.mu.Unlock()
	if was {
		m.emit(Event{Kind: KindLeadership, Leader: false})
	}
	m.wake()
}

// stepDown ends the leadership from Run's goroutine (or ReconcileOnce's): it
// cancels the leader's work, waits for the keeper, and with release gives
// the lease back so a standby takes over at once.
func (m *Manager) stepDown(release bool) {
	m.mu.Lock()
	was := m.leader
	m.leader, m.reconciled = false, false
	if m.lcancel != nil {
		m.lcancel()
	}
	m.lctx, m.lcancel = nil, nil
	m.mu.Unlock()
	m.keeper.Wait()
	if was {
		m.emit(Event{Kind: KindLeadership, Leader: false})
	}
	if release && was {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := m.store.ReleaseLease(ctx, LeaseName, m.cfg.Holder); err != nil {
			m.log.Warn("could not release the subscriptions lease; a standby takes over when it ends", "error", err)
		}
	}
}

func (m *Manager) isLeader() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader
}

// leaderContext returns the context of the current leadership, which ends
// when it is lost; nil when this replica does not lead.
func (m *Manager) leaderContext() context.Context {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.leader {
		return nil
	}
	return m.lctx
}

// actionContext returns ctx, cancelled also when the leadership ends, when
// this replica leads and finished its start-up reconcile; otherwise
// ErrNotLeader.
func (m *Manager) actionContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	m.mu.Lock()
	lctx, ok := m.lctx, m.leader && m.reconciled
	m.mu.Unlock()
	if !ok || lctx == nil {
		return nil, nil, ErrNotLeader
	}
	actx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(lctx, cancel)
	return actx, func() { stop(); cancel() }, nil
}

// wake makes Run re-plan at once, after a lifecycle event changed a
// schedule.
func (m *Manager) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// work does what is due on the leader and returns when to look again.
func (m *Manager) work(ctx context.Context) time.Time {
	now := m.clock.Now()
	m.mu.Lock()
	reconciled, due := m.reconciled, m.nextReconcile
	m.mu.Unlock()
	if !reconciled {
		if now.Before(due) {
			return due
		}
		if err := m.reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return now
			}
			m.mu.Lock()
			m.reconcileFail++
			m.reconcileErr = err
			m.nextReconcile = now.Add(m.backoff(m.reconcileFail))
			next := m.nextReconcile
			m.mu.Unlock()
			m.log.Error("start-up reconcile of the subscriptions failed; retrying", "error", err, "retry_at", next)
			return next
		}
		m.mu.Lock()
		m.reconciled, m.reconcileErr, m.reconcileFail = true, nil, 0
		m.mu.Unlock()
	}
	next := now.Add(m.cfg.ResyncInterval)
	for _, mb := range m.cfg.Mailboxes {
		if ctx.Err() != nil {
			return now
		}
		if t := m.workMailbox(ctx, mb); t.Before(next) {
			next = t
		}
	}
	return next
}

// workMailbox creates, renews or resyncs one mailbox when due, and returns
// its next due time.
func (m *Manager) workMailbox(ctx context.Context, mb string) time.Time {
	lock := m.locks[mb]
	lock.Lock()
	defer lock.Unlock()
	now := m.clock.Now()
	st := m.snapshot(mb)
	switch {
	case st.sub.ID == "" && !now.Before(st.nextCreate):
		_ = m.createLocked(ctx, mb, "no subscription")
	case st.sub.ID != "" && !now.Before(st.nextRenew):
		_ = m.renewLocked(ctx, mb)
	}
	if st = m.snapshot(mb); !m.clock.Now().Before(st.nextResync) {
		_, _ = m.resyncLocked(ctx, mb)
	}
	st = m.snapshot(mb)
	next := st.nextResync
	if st.sub.ID == "" {
		next = earliest(next, st.nextCreate)
	} else {
		next = earliest(next, st.nextRenew)
	}
	return next
}

// follow refreshes a standby's view of the subscriptions from the store.
func (m *Manager) follow(ctx context.Context) {
	recs, err := m.store.Subscriptions(ctx)
	if err != nil {
		return
	}
	best := map[string]Record{}
	for _, r := range recs {
		mb, ok := m.configured(r.Mailbox)
		if !ok || !strings.EqualFold(r.Folder, m.cfg.Folder) {
			continue
		}
		if b, ok := best[mb]; !ok || r.ExpiresAt.After(b.ExpiresAt) {
			best[mb] = r
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mb := range m.cfg.Mailboxes {
		m.states[mb].sub = best[mb]
	}
}

// snapshot returns a copy of a mailbox's state.
func (m *Manager) snapshot(mb string) mailboxState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.states[mb]
}

// update changes a mailbox's state under the lock.
func (m *Manager) update(mb string, fn func(*mailboxState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.states[mb])
}

// configured returns the configured spelling of mailbox, compared without
// case.
func (m *Manager) configured(mailbox string) (string, bool) {
	for _, mb := range m.cfg.Mailboxes {
		if strings.EqualFold(mb, mailbox) {
			return mb, true
		}
	}
	return "", false
}

// mailboxOf returns the configured mailbox whose current subscription is id.
func (m *Manager) mailboxOf(id string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, mb := range m.cfg.Mailboxes {
		if id != "" && m.states[mb].sub.ID == id {
			return mb, true
		}
	}
	return "", false
}

// backoff is the delay before attempt failures+1: RetryMin doubled per
// failure up to RetryMax, with up to 20 % jitter taken off.
func (m *Manager) backoff(failures int) time.Duration {
	d := m.cfg.RetryMin
	for i := 1; i < failures && d < m.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, m.cfg.RetryMax)
	return d - time.Duration(float64(d)*0.2*m.randFloat())
}

// renewAt picks the renewal time of a subscription expiring at exp: about
// half of the remaining life, with ±10 % of it as jitter, so replicas and
// restarts spread their renewals.
func (m *Manager) renewAt(now, exp time.Time) time.Time {
	half := exp.Sub(now) / 2
	if half <= 0 {
		return now
	}
	jitter := time.Duration(float64(half) * 0.2 * (m.randFloat() - 0.5))
	return now.Add(half + jitter)
}

// randFloat returns a number in [0, 1) from the Manager's random source, or
// 0.5 when the source fails.
func (m *Manager) randFloat() float64 {
	b, err := m.randomBytes(8)
	if err != nil {
		return 0.5
	}
	return float64(binary.BigEndian.Uint64(b)>>11) / (1 << 53)
}

func (m *Manager) randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	m.randMu.Lock()
	defer m.randMu.Unlock()
	if _, err := io.ReadFull(m.rand, b); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return b, nil
}

// newClientState returns a fresh 32-byte secret, URL-safe base64 (43
// characters, within Graph's 128).
func (m *Manager) newClientState() (string, error) {
	b, err := m.randomBytes(32)
	if err != nil {
		return "", fmt.Errorf("create clientState: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
