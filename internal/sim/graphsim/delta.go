package graphsim

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// DeltaExpiry is how ExpireDeltaLinks makes existing links fail.
type DeltaExpiry int

const (
	// SyncStateNotFound answers 410 with code SyncStateNotFound, as Outlook
	// does when its delta token cache evicted the state.
	SyncStateNotFound DeltaExpiry = iota + 1
	// ResyncRequired answers 410 with code resyncRequired and a Location
	// header holding a fresh delta URL.
	ResyncRequired
)

type deltaEntry struct {
	msg     *message
	removed bool
	restID  string
}

// deltaSession backs one nextLink or deltaLink.
type deltaSession struct {
	mailboxID string
	folderID  string
	immutable bool
	fields    []string
	since     time.Time
	strict    bool // gt instead of ge
	hasSince  bool

	// A nextLink holds the rest of the round; a deltaLink holds seq.
	isDelta bool
	entries []deltaEntry
	endSeq  int64
	round   []deltaEntry
	seq     int64
	prev    []deltaEntry

	expired DeltaExpiry
}

// ExpireDeltaLinks makes every nextLink and deltaLink handed out so far fail
// the given way; new delta queries work.
func (s *Server) ExpireDeltaLinks(how DeltaExpiry) {
	s.mu.Lock()
	for _, d := range s.deltas {
		d.expired = how
	}
	s.mu.Unlock()
}

var filterPattern = regexp.MustCompile(`(?i)^\s*receivedDateTime\s+(ge|gt)\s+(\S+)\s*$`)

func (s *Server) delta(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName string) {
	q := r.URL.Query()
	p := readPreferences(r)
	s.mu.Lock()
	f := mb.folderByIDOrWellKnown(folderName)
	if f == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "ErrorInvalidIdMalformed", "Id is malformed.")
		return
	}
	s.mu.Unlock()
	base := externalBase(r)
	pageSize := s.opts.PageSize
	if p.maxPageSize > 0 {
		pageSize = p.maxPageSize
	}

	var sess *deltaSession
	var entries []deltaEntry
	var round []deltaEntry
	var endSeq int64
	skip, dtok := q.Get("$skiptoken"), q.Get("$deltatoken")
	switch {
	case skip != "" || dtok != "":
		tok := skip
		if tok == "" {
			tok = dtok
		}
		s.mu.Lock()
		sess = s.deltas[tok]
		if sess == nil || sess.mailboxID != mb.id || sess.folderID != f.id || sess.isDelta != (dtok != "") {
			s.mu.Unlock()
			writeError(w, http.StatusGone, "SyncStateNotFound", "The sync state generation is not found; the token is unknown.")
			return
		}
		switch sess.expired {
		case SyncStateNotFound:
			s.mu.Unlock()
			writeError(w, http.StatusGone, "SyncStateNotFound", "The sync state generation is not found; generation=1;[highest=2][2].")
			return
		case ResyncRequired:
			s.mu.Unlock()
			w.Header().Set("Location", base+"/v1.0/users/"+mb.id+"/mailFolders('"+f.id+"')/messages/delta")
			writeError(w, http.StatusGone, "resyncRequired", "A full resync is required; start over at the Location URL.")
			return
		}
		if sess.isDelta {
			entries = s.changesSinceLocked(mb, f.id, sess)
			if s.behavior.DeltaReplay {
				entries = append(append([]deltaEntry{}, sess.prev...), entries...)
			}
			endSeq = s.seq
		} else {
			entries = sess.entries
			round = sess.round
			endSeq = sess.endSeq
		}
		s.mu.Unlock()
	default:
		fields, bad, ok := parseSelect(q.Get("$select"))
		if !ok {
			selectError(w, bad)
			return
		}
		sess = &deltaSession{mailboxID: mb.id, folderID: f.id, immutable: p.immutable, fields: fields}
		if raw := q.Get("$filter"); raw != "" {
			m := filterPattern.FindStringSubmatch(raw)
			if m == nil {
				writeError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes; only receivedDateTime ge|gt is supported on delta.")
				return
			}
			t, err := time.Parse(time.RFC3339Nano, m[2])
			if err != nil {
				writeError(w, http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The receivedDateTime value '"+m[2]+"' is not a valid date.")
				return
			}
			sess.since, sess.strict, sess.hasSince = t.UTC(), strings.EqualFold(m[1], "gt"), true
		}
		if top := q.Get("$top"); top != "" && p.maxPageSize == 0 {
			n, err := strconv.Atoi(top)
			if err != nil || n <= 0 {
				writeError(w, http.StatusBadRequest, "BadRequest", "Invalid $top value.")
				return
			}
			pageSize = n
		}
		s.mu.Lock()
		entries = s.folderSnapshotLocked(mb, f.id, sess)
		endSeq = s.seq
		s.mu.Unlock()
	}

	n := min(pageSize, len(entries))
	page, remaining := entries[:n], entries[n:]
	s.mu.Lock()
	values := make([]map[string]any, 0, len(page))
	for _, e := range page {
		values = append(values, s.deltaItemJSON(mb, e, sess))
	}
	round = append(append([]deltaEntry{}, round...), page...)
	next := &deltaSession{mailboxID: sess.mailboxID, folderID: sess.folderID, immutable: sess.immutable,
		fields: sess.fields, since: sess.since, strict: sess.strict, hasSince: sess.hasSince}
	tok := newOpaque()
	link := base + "/v1.0/users/" + mb.id + "/mailFolders('" + f.id + "')/messages/delta?"
	out := map[string]any{"@odata.context": base + "/v1.0/$metadata#Collection(message)", "value": values}
	if len(remaining) > 0 {
		next.entries, next.endSeq, next.round = remaining, endSeq, round
		out["@odata.nextLink"] = link + "$skiptoken=" + tok
	} else {
		next.isDelta, next.seq = true, endSeq
		for _, e := range round {
			if !e.removed {
				next.prev = append(next.prev, e)
			}
		}
		out["@odata.deltaLink"] = link + "$deltatoken=" + tok
	}
	s.deltas[tok] = next
	s.deltaFIFO = append(s.deltaFIFO, tok)
	for len(s.deltaFIFO) > s.opts.DeltaStates {
		delete(s.deltas, s.deltaFIFO[0])
		s.deltaFIFO = s.deltaFIFO[1:]
	}
	s.mu.Unlock()
	if p.maxPageSize > 0 {
		w.Header().Set("Preference-Applied", fmt.Sprintf("odata.maxpagesize=%d", p.maxPageSize))
	}
	writeJSON(w, http.StatusOK, out)
}

func (d *deltaSession) admits(m *message) bool {
	if !d.hasSince {
		return true
	}
	if d.strict {
		return m.received.After(d.since)
	}
	return !m.received.Before(d.since)
}

// folderSnapshotLocked lists the folder's messages, newest first.
func (s *Server) folderSnapshotLocked(mb *mailbox, folderID string, d *deltaSession) []deltaEntry {
	var out []deltaEntry
	for id, m := range mb.byID {
		if id != m.immutableID || m.folderID != folderID || !d.admits(m) {
			continue
		}
		out = append(out, deltaEntry{msg: m, restID: m.restID})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].msg.received.Equal(out[j].msg.received) {
			return out[i].msg.received.After(out[j].msg.received)
		}
		return out[i].msg.immutableID < out[j].msg.immutableID
	})
	return out
}

// changesSinceLocked folds the change log after d.seq for one folder: the
// last change of each message wins.
func (s *Server) changesSinceLocked(mb *mailbox, folderID string, d *deltaSession) []deltaEntry {
	last := map[*message]int{}
	var out []deltaEntry
	for _, c := range mb.changes {
		if c.seq <= d.seq || c.folderID != folderID {
			continue
		}
		e := deltaEntry{msg: c.msg, removed: c.removed, restID: c.restID}
		if !e.removed && !d.admits(c.msg) {
			continue
		}
		if i, ok := last[c.msg]; ok {
			out[i] = e
			continue
		}
		last[c.msg] = len(out)
		out = append(out, e)
	}
	return out
}

func (s *Server) deltaItemJSON(mb *mailbox, e deltaEntry, d *deltaSession) map[string]any {
	id := e.restID
	if d.immutable {
		id = e.msg.immutableID
	}
	if e.removed {
		return map[string]any{"@odata.type": "#microsoft.graph.message", "id": id, "@removed": map[string]any{"reason": "deleted"}}
	}
	out := s.messageJSON(mb, e.msg, d.fields, preferences{immutable: d.immutable})
	out["@odata.type"] = "#microsoft.graph.message"
	return out
}
