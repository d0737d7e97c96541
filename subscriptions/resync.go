package subscriptions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Resync sweeps the mailbox's folder with a Graph delta query and queues
// every message found, then stores the new delta link. The first sweep of a
// folder, and the one after an expired delta link, are bounded by
// Config.InitialSyncSince and Config.FullResyncWindow. It does not need the
// lease (queueing is idempotent), so it may run on any replica, or in a
// process beside a running service. It returns how many messages were newly
// queued.
func (m *Manager) Resync(ctx context.Context, mailbox string) (int, error) {
	mb, ok := m.configured(mailbox)
	if !ok {
		return 0, fmt.Errorf("resync %s: mailbox not configured", mailbox)
	}
	lock := m.locks[mb]
	lock.Lock()
	defer lock.Unlock()
	return m.resyncLocked(ctx, mb)
}

// resyncLocked runs one delta round; the mailbox lock is held. It schedules
// the next backstop resync, earlier after a failure.
func (m *Manager) resyncLocked(ctx context.Context, mb string) (int, error) {
	queued, found, err := m.deltaRound(ctx, mb)
	now := m.clock.Now()
	m.update(mb, func(st *mailboxState) { st.lastQueued = queued })
	ev := Event{Kind: KindResync, Mailbox: mb, Outcome: OutcomeOK, Found: found, Queued: queued}
	if err != nil {
		if ctx.Err() != nil {
			ev.Outcome = OutcomeCanceled
			m.emit(ev)
			return queued, err
		}
		var changed bool
		var next time.Time
		m.update(mb, func(st *mailboxState) {
			st.resyncFailures++
			next = now.Add(min(m.backoff(st.resyncFailures), m.cfg.ResyncInterval))
			st.nextResync = next
			changed = st.resyncErr == nil || st.resyncErr.Error() != err.Error()
			st.resyncErr = err
		})
		ev.Outcome = OutcomeError
		m.emit(ev)
		level := slog.LevelWarn
		if changed {
			level = slog.LevelError
		}
		m.log.Log(ctx, level, "resync failed; mail may wait for the next attempt",
			"error", err, "mailbox", mb, "queued", queued, "retry_at", next)
		return queued, err
	}
	first := false
	m.update(mb, func(st *mailboxState) {
		first = st.lastResync.IsZero()
		st.resyncFailures = 0
		st.lastResync = now
		st.nextResync = now.Add(m.cfg.ResyncInterval)
		st.resyncErr = nil
	})
	m.emit(ev)
	level := slog.LevelDebug
	if queued > 0 || first {
		// The first round after a start says what it caught up with.
		level = slog.LevelInfo
	}
	m.log.Log(ctx, level, "resync done", "mailbox", mb, "found", found, "queued", queued)
	return queued, nil
}

// deltaRound follows delta pages from the stored link to a new delta link.
// found counts the messages seen, queued those newly queued.
func (m *Manager) deltaRound(ctx context.Context, mb string) (queued, found int, err error) {
	folder := m.cfg.Folder
	link, err := m.store.DeltaLink(ctx, mb, folder)
	if err != nil {
		return 0, 0, fmt.Errorf("resync %s: %w", mb, err)
	}
	var since time.Time
	if link == "" {
		if since, err = m.initialSince(ctx, mb); err != nil {
			return 0, 0, err
		}
	}
	// bound filters every page of a fresh round; since goes to Graph on
	// its first request only.
	bound := since
	restarted := false
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		if pages >= m.cfg.MaxDeltaPages {
			return queued, found, fmt.Errorf("resync %s: the delta round did not end within %d pages", mb, m.cfg.MaxDeltaPages)
		}
		page, err := m.graph.Delta(ctx, mb, folder, link, since)
		if errors.Is(err, ErrDeltaExpired) && !restarted {
			restarted = true
			if since, err = m.fullSince(ctx, mb); err != nil {
				return queued, found, err
			}
			bound = since
			m.log.Warn("the delta link expired; starting a full round bounded by the full resync window",
				"mailbox", mb, "since", since)
			if err := m.store.SaveDeltaLink(ctx, mb, folder, ""); err != nil {
				return queued, found, fmt.Errorf("resync %s: %w", mb, err)
			}
			link, seen = "", map[string]bool{}
			continue
		}
		if err != nil {
			return queued, found, fmt.Errorf("resync %s: delta page %d: %w", mb, pages+1, err)
		}
		var ids []string
		for _, it := range page.Items {
			if it.Removed || it.ID == "" || seen[it.ID] {
				continue
			}
			// A fresh round is bounded even if the server ignored the filter.
			if !bound.IsZero() && !it.ReceivedAt.IsZero() && it.ReceivedAt.Before(bound) {
				continue
			}
			seen[it.ID] = true
			ids = append(ids, it.ID)
		}
		found += len(ids)
		if len(ids) > 0 {
			n, err := m.queue.Enqueue(ctx, mb, ids)
			queued += n
			if err != nil {
				return queued, found, fmt.Errorf("resync %s: queue %d messages: %w", mb, len(ids), err)
			}
		}
		switch {
		case page.DeltaLink != "":
			if err := m.store.SaveDeltaLink(ctx, mb, folder, page.DeltaLink); err != nil {
				return queued, found, fmt.Errorf("resync %s: %w", mb, err)
			}
			return queued, found, nil
		case page.NextLink == "":
			return queued, found, fmt.Errorf("resync %s: delta page %d has neither a next link nor a delta link", mb, pages+1)
		}
		link, since = page.NextLink, time.Time{}
	}
}

// initialSince bounds a folder's first round: the configured time, or the
// time the mailbox was first seen, kept in the store.
func (m *Manager) initialSince(ctx context.Context, mb string) (time.Time, error) {
	if !m.cfg.InitialSyncSince.IsZero() {
		return m.cfg.InitialSyncSince, nil
	}
	v, err := m.store.SetOnce(ctx, firstSeenKey(mb, m.cfg.Folder), m.clock.Now().UTC().Format(time.RFC3339Nano))
	if err != nil {
		return time.Time{}, fmt.Errorf("resync %s: first-seen time: %w", mb, err)
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("resync %s: stored first-seen time %q: %w", mb, v, err)
	}
	return t, nil
}

// fullSince bounds the full round after an expired link: the full resync
// window before now, but never before the initial bound.
func (m *Manager) fullSince(ctx context.Context, mb string) (time.Time, error) {
	initial, err := m.initialSince(ctx, mb)
	if err != nil {
		return time.Time{}, err
	}
	since := m.clock.Now().Add(-m.cfg.FullResyncWindow)
	if since.Before(initial) {
		since = initial
	}
	return since, nil
}
