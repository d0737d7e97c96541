package subscriptionstest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// Store is an in-memory subscriptions.Store.
type Store struct {
	mu       sync.Mutex
	subs     map[string]subscriptions.Record
	links    map[string]string
	leases   map[string]lease
	settings map[string]string
	fail     map[string][]error
}

type lease struct {
	holder string
	until  time.Time
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		subs:     map[string]subscriptions.Record{},
		links:    map[string]string{},
		leases:   map[string]lease{},
		settings: map[string]string{},
		fail:     map[string][]error{},
	}
}

// FailNext makes the next call of the named method (e.g. "SaveSubscription")
// return err. Failures queue up: calling it twice fails two calls.
func (s *Store) FailNext(method string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[method] = append(s.fail[method], err)
}

func (s *Store) failure(method string) error {
	q := s.fail[method]
	if len(q) == 0 {
		return nil
	}
	s.fail[method] = q[1:]
	return q[0]
}

// SaveSubscription inserts or replaces a subscription by id.
func (s *Store) SaveSubscription(_ context.Context, rec subscriptions.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("SaveSubscription"); err != nil {
		return err
	}
	if rec.ID == "" {
		return errors.New("save subscription: empty id")
	}
	s.subs[rec.ID] = rec
	return nil
}

// Subscriptions returns every stored subscription, ordered by mailbox and id.
func (s *Store) Subscriptions(context.Context) ([]subscriptions.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("Subscriptions"); err != nil {
		return nil, err
	}
	out := make([]subscriptions.Record, 0, len(s.subs))
	for _, r := range s.subs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Mailbox != out[j].Mailbox {
			return out[i].Mailbox < out[j].Mailbox
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// DeleteSubscription removes a subscription.
func (s *Store) DeleteSubscription(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("DeleteSubscription"); err != nil {
		return err
	}
	delete(s.subs, id)
	return nil
}

// DeltaLink returns the stored delta link, "" when none.
func (s *Store) DeltaLink(_ context.Context, mailbox, folder string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("DeltaLink"); err != nil {
		return "", err
	}
	return s.links[mailbox+"\x00"+folder], nil
}

// SaveDeltaLink stores a delta link; "" removes it.
func (s *Store) SaveDeltaLink(_ context.Context, mailbox, folder, link string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("SaveDeltaLink"); err != nil {
		return err
	}
	if link == "" {
		delete(s.links, mailbox+"\x00"+folder)
	} else {
		s.links[mailbox+"\x00"+folder] = link
	}
	return nil
}

// TryAcquireLease takes or extends a lease unless another holder's runs.
func (s *Store) TryAcquireLease(_ context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("TryAcquireLease"); err != nil {
		return false, err
	}
	l, ok := s.leases[name]
	if ok && l.holder != holder && !l.until.Before(now) {
		return false, nil
	}
	s.leases[name] = lease{holder: holder, until: now.Add(ttl)}
	return true, nil
}

// ReleaseLease gives up a lease held by holder.
func (s *Store) ReleaseLease(_ context.Context, name, holder string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("ReleaseLease"); err != nil {
		return err
	}
	if s.leases[name].holder == holder {
		delete(s.leases, name)
	}
	return nil
}

// LeaseHolder returns who holds the lease name, "" when nobody.
func (s *Store) LeaseHolder(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leases[name].holder
}

// SetOnce stores value under name unless one is stored, and returns the
// stored value.
func (s *Store) SetOnce(_ context.Context, name, value string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.failure("SetOnce"); err != nil {
		return "", err
	}
	if v, ok := s.settings[name]; ok {
		return v, nil
	}
	s.settings[name] = value
	return value, nil
}
