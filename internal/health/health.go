// Package health keeps the state of the service's dependencies as real
// traffic and background checks see them, so that readiness reads state
// instead of calling Archer or Graph on every probe. A change of state is
// reported once, through a callback, never on every observation.
package health

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"
)

// State is one component's last known state.
type State struct {
	// Known is false until the first observation.
	Known bool
	OK    bool
	// Detail says what was seen: the last success, or the failure.
	Detail string
	// Fix tells an operator what to change; empty when OK.
	Fix string
	// Since is when the component entered this state; Last is the latest
	// observation.
	Since, Last time.Time
}

// Change is a component's transition from one state to another.
type Change struct {
	Component string
	From, To  State
}

// Set is the state of every component. It is safe for concurrent use.
type Set struct {
	mu       sync.Mutex
	states   map[string]State
	now      func() time.Time
	onChange func(Change)
}

// NewSet returns a Set whose components are named up front, each unknown
// until observed. onChange, when non-nil, is called (outside the Set's lock,
// in the observing goroutine) on every change of OK or of the failure's
// detail.
func NewSet(onChange func(Change), components ...string) *Set {
	s := &Set{states: map[string]State{}, now: time.Now, onChange: onChange}
	for _, c := range components {
		s.states[c] = State{}
	}
	return s
}

// OK records a success of component.
func (s *Set) OK(component, detail string) { s.observe(component, true, detail, "") }

// Fail records a failure of component, with what to fix.
func (s *Set) Fail(component, detail, fix string) { s.observe(component, false, detail, fix) }

func (s *Set) observe(component string, ok bool, detail, fix string) {
	now := s.now()
	s.mu.Lock()
	prev := s.states[component]
	next := State{Known: true, OK: ok, Detail: detail, Fix: fix, Since: prev.Since, Last: now}
	changed := !prev.Known || prev.OK != ok || (!ok && (prev.Detail != detail || prev.Fix != fix))
	if !prev.Known || prev.OK != ok {
		next.Since = now
	}
	s.states[component] = next
	s.mu.Unlock()
	if changed && s.onChange != nil {
		s.onChange(Change{Component: component, From: prev, To: next})
	}
}

// State returns component's state.
func (s *Set) State(component string) State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[component]
}

// Working reports whether component was last seen working.
func (s *Set) Working(component string) bool { return s.State(component).OK }

// Components returns the names of every component, sorted.
func (s *Set) Components() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.states))
	for n := range s.states {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check reports component for readiness: its detail, and an error naming the
// problem and the fix when it is failing. A component not yet observed is
// described by unknown, and is ready only when unknownOK.
func (s *Set) Check(component, unknown string, unknownOK bool) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		st := s.State(component)
		switch {
		case !st.Known && unknownOK:
			return unknown, nil
		case !st.Known:
			return unknown, errors.New(unknown)
		case st.OK:
			return st.Detail, nil
		}
		msg := st.Detail
		if st.Fix != "" {
			msg += "; fix: " + st.Fix
		}
		return msg, errors.New(msg)
	}
}
