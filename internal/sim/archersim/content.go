package archersim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// record is one stored content record.
type record struct {
	ID      int64
	LevelID int64
	Created time.Time
	Updated time.Time
	Fields  map[int64]*storedValue
}

// storedValue holds one field's value; which member is used depends on Type.
type storedValue struct {
	Type        int
	Text        string
	Number      float64
	Date        time.Time
	ValuesList  []int64
	OtherText   *string
	Links       []extLink
	Users       []int64
	Groups      []int64
	Refs        []int64
	Attachments []int64
	IP          string
}

type extLink struct {
	Name string `json:"Name"`
	URL  string `json:"URL"`
}

type idRef struct {
	ID int64 `json:"ID"`
}

type contentRef struct {
	ContentID int64 `json:"ContentID"`
}

// fieldEntry is one FieldContents entry as clients send it.
type fieldEntry struct {
	Type           *int            `json:"Type"`
	Value          json.RawMessage `json:"Value"`
	FieldID        int64           `json:"FieldId"`
	IPAddressBytes *string         `json:"IpAddressBytes"`
}

type contentBody struct {
	Content *struct {
		ID            *int64                     `json:"Id"`
		LevelID       *int64                     `json:"LevelId"`
		FieldContents map[string]json.RawMessage `json:"FieldContents"`
	} `json:"Content"`
}

const contentController = "ContentController"

func msg(key, format string, args ...any) validationMessage {
	return newMessage(contentController, "ValidationMessageTemplates:"+key, fmt.Sprintf(format, args...))
}

// serveContent answers {prefix}/core/content[/...].
func (s *Server) serveContent(req *apiRequest, seg []string) {
	switch {
	case len(seg) == 0 && req.method == http.MethodPost:
		s.handleCreate(req)
	case len(seg) == 0 && req.method == http.MethodPut:
		s.handleUpdate(req)
	case len(seg) == 1 && seg[0] == "attachment" && req.method == http.MethodPost:
		s.handleUploadAttachment(req)
	case len(seg) == 2 && seg[0] == "attachment" && req.method == http.MethodGet:
		s.handleGetAttachment(req, seg[1])
	case len(seg) == 1 && req.method == http.MethodGet:
		s.handleGetContent(req, seg[0])
	case len(seg) == 1 && req.method == http.MethodDelete:
		s.handleDeleteContent(req, seg[0])
	case len(seg) <= 2:
		writeJSON(req.w, http.StatusMethodNotAllowed, map[string]any{"Message": fmt.Sprintf("The requested resource does not support http method '%s'.", req.method)})
	default:
		writeIISError(req.w, http.StatusNotFound)
	}
}

func decodeContent(body []byte) (*contentBody, error) {
	var cb contentBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&cb); err != nil {
		return nil, err
	}
	if cb.Content == nil {
		return nil, fmt.Errorf("no Content object")
	}
	return &cb, nil
}

func (s *Server) handleCreate(req *apiRequest) {
	cb, err := decodeContent(req.body)
	if err != nil {
		writeJSON(req.w, http.StatusOK, failed(msg("InvalidRequest", "The request body is not a valid content object: %v.", err)))
		return
	}
	if cb.Content.LevelID == nil {
		writeJSON(req.w, http.StatusOK, failed(msg("LevelIdRequired", "The LevelId is required.")))
		return
	}
	s.mu.Lock()
	id, msgs := s.createLocked(0, *cb.Content.LevelID, cb.Content.FieldContents)
	hook := s.onCreate
	s.mu.Unlock()
	if len(msgs) > 0 {
		writeJSON(req.w, http.StatusOK, failed(msgs...))
		return
	}
	if hook != nil {
		hook(id)
	}
	writeJSON(req.w, http.StatusOK, ok(map[string]any{"Id": id}))
}

// createLocked validates and stores a new record; fixedID > 0 seeds a record
// with a given id. s.mu must be held.
func (s *Server) createLocked(fixedID, levelID int64, contents map[string]json.RawMessage) (int64, []validationMessage) {
	level := s.md.levels[levelID]
	if level == nil {
		return 0, []validationMessage{msg("InvalidLevel", "The level %d does not exist.", levelID)}
	}
	fields, msgs := s.parseFields(level, contents)
	for k, v := range fields {
		if v == nil { // nothing to clear on a new record
			delete(fields, k)
		}
	}
	msgs = append(msgs, requiredMessages(level, fields)...)
	if len(msgs) > 0 {
		return 0, msgs
	}
	id := fixedID
	if id == 0 {
		id = s.nextContentID
		s.nextContentID++
	} else if id >= s.nextContentID {
		s.nextContentID = id + 1
	}
	now := s.clock().UTC()
	s.records[id] = &record{ID: id, LevelID: levelID, Created: now, Updated: now, Fields: fields}
	s.order = append(s.order, id)
	return id, nil
}

func (s *Server) seed(recs []FixtureRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range recs {
		if _, msgs := s.createLocked(r.ID, r.LevelID, r.FieldContents); len(msgs) > 0 {
			return fmt.Errorf("archer fixture: seed record %d: %s", r.ID, joinMessages(msgs))
		}
	}
	return nil
}

func joinMessages(msgs []validationMessage) string {
	var parts []string
	for _, m := range msgs {
		if m.ResourcedMessage != nil {
			parts = append(parts, *m.ResourcedMessage)
		} else {
			parts = append(parts, m.MessageKey)
		}
	}
	return strings.Join(parts, "; ")
}

// handleUpdate answers PUT {prefix}/core/content as Archer does. The record
// named by Content.Id keeps every field the request does not list; each
// listed field's value is replaced whole (a list is replaced, not merged)
// and an empty value clears it. The request is validated as a create is
// (types, values lists, references, the strict mode), required fields may
// not end up empty, and nothing changes when any message is returned. A
// successful update sets the record's Updated time, which the Last Updated
// field, Records and the record views show, and calls the OnUpdate hook
// before the answer is written.
func (s *Server) handleUpdate(req *apiRequest) {
	cb, err := decodeContent(req.body)
	if err != nil {
		writeJSON(req.w, http.StatusOK, failed(msg("InvalidRequest", "The request body is not a valid content object: %v.", err)))
		return
	}
	if cb.Content.ID == nil {
		writeJSON(req.w, http.StatusOK, failed(msg("ContentIdRequired", "The content Id is required to update a record.")))
		return
	}
	id, hook, msgs := s.update(*cb.Content.ID, cb.Content.LevelID, cb.Content.FieldContents)
	if len(msgs) > 0 {
		writeJSON(req.w, http.StatusOK, failed(msgs...))
		return
	}
	if hook != nil {
		hook(id)
	}
	writeJSON(req.w, http.StatusOK, ok(map[string]any{"Id": id}))
}

// update validates and applies an update of record id, taking s.mu, and
// returns the OnUpdate hook to call; levelID, when given, must be the
// record's level. It changes nothing when it returns messages.
func (s *Server) update(id int64, levelID *int64, contents map[string]json.RawMessage) (int64, func(int64), []validationMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.records[id]
	if rec == nil {
		return 0, nil, []validationMessage{newMessage(contentController, "ValidationMessageTemplates:NoResourceFound", "No resource found.")}
	}
	if levelID != nil && *levelID != rec.LevelID {
		return 0, nil, []validationMessage{msg("InvalidLevel", "The record %d does not belong to level %d.", rec.ID, *levelID)}
	}
	level := s.md.levels[rec.LevelID]
	changes, msgs := s.parseFields(level, contents)
	merged := make(map[int64]*storedValue, len(rec.Fields)+len(changes))
	for k, v := range rec.Fields {
		merged[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(merged, k)
			continue
		}
		merged[k] = v // lists are replaced, not appended, as in Archer
	}
	msgs = append(msgs, requiredMessages(level, merged)...)
	if len(msgs) > 0 {
		return 0, nil, msgs
	}
	rec.Fields = merged
	rec.Updated = s.clock().UTC()
	return rec.ID, s.onUpdate, nil
}

// parseFields converts FieldContents into stored values. A field present
// with a nil value is cleared by the request; a field absent from the result
// was not given or was ignored (Archer's silent acceptance: an input made
// only of unknown references changes nothing).
func (s *Server) parseFields(level *levelMeta, contents map[string]json.RawMessage) (map[int64]*storedValue, []validationMessage) {
	out := map[int64]*storedValue{}
	var msgs []validationMessage
	keys := make([]string, 0, len(contents))
	for k := range contents {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw := contents[k]
		id, err := strconv.ParseInt(strings.TrimSpace(k), 10, 64)
		fm := s.md.fields[id]
		if err != nil || fm == nil || fm.level != level || !fm.active {
			if s.opts.Strict {
				msgs = append(msgs, msg("InvalidField", "Field %s is not an active field of level %d.", k, level.ID))
			}
			continue
		}
		var e fieldEntry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil {
			msgs = append(msgs, msg("InvalidValue", "The value for the %s field is not valid.", fm.Name))
			continue
		}
		if e.Type != nil && *e.Type != fm.Type {
			msgs = append(msgs, msg("InvalidFieldType", "The %s field is of type %d, but the request gives type %d.", fm.Name, fm.Type, *e.Type))
			continue
		}
		switch fm.Type {
		case 6, 21, 22:
			if s.opts.Strict {
				msgs = append(msgs, msg("ReadOnlyField", "The %s field is calculated by the system and cannot be set.", fm.Name))
			}
			continue
		}
		res := s.parseValue(fm, e)
		msgs = append(msgs, res.msgs...)
		if len(res.msgs) == 0 && res.outcome != ignored {
			out[id] = res.value // nil when cleared
		}
	}
	return out, msgs
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

var dateLayouts = []string{
	"1/2/2006 3:04 PM", "01/02/2006 03:04 PM", "1/2/2006 3:04:05 PM", "1/2/2006", "01/02/2006",
	"2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05", "2006-01-02T15:04:05Z07:00", "2006-01-02",
}

func parseArcherDate(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	for _, l := range dateLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// valueOutcome says what an entry does to its field.
type valueOutcome int

const (
	set     valueOutcome = iota // the field takes the value
	cleared                     // the field becomes empty
	ignored                     // the field keeps what it had
)

// parsed is the result of parseValue; msgs, when not empty, reject the
// whole request.
type parsed struct {
	value   *storedValue
	outcome valueOutcome
	msgs    []validationMessage
}

// parseValue converts one entry. Malformed input yields messages. An empty
// value (null, "", an empty list) clears the field. Unknown references are
// dropped, or reported in strict mode; an entry made only of unknown
// references is ignored, as Archer ignores invalid input without a message.
func (s *Server) parseValue(fm *fieldMeta, e fieldEntry) parsed {
	bad := parsed{outcome: ignored, msgs: []validationMessage{msg("InvalidValue", "The value for the %s field is not valid.", fm.Name)}}
	v := &storedValue{Type: fm.Type}
	var msgs []validationMessage
	reject := func(what string, id any) {
		if s.opts.Strict {
			msgs = append(msgs, msg("InvalidReference", "The %s field references %s %v, which does not exist or cannot be selected.", fm.Name, what, id))
		}
	}
	// refs finishes a reference-list field: given is the number of
	// references in the request, kept the number that exist.
	refs := func(given, kept int) parsed {
		switch {
		case kept > 0:
			return parsed{value: v, outcome: set, msgs: msgs}
		case given == 0:
			return parsed{outcome: cleared}
		}
		return parsed{outcome: ignored, msgs: msgs}
	}
	if fm.Type == 19 {
		if e.IPAddressBytes == nil || strings.TrimSpace(*e.IPAddressBytes) == "" {
			return parsed{outcome: cleared}
		}
		addr, err := netip.ParseAddr(strings.TrimSpace(*e.IPAddressBytes))
		if err != nil {
			reject("the IP address", strconv.Quote(*e.IPAddressBytes))
			return parsed{outcome: ignored, msgs: msgs}
		}
		v.IP = addr.String()
		return parsed{value: v, outcome: set}
	}
	if isNull(e.Value) {
		return parsed{outcome: cleared}
	}
	switch fm.Type {
	case 1:
		if json.Unmarshal(e.Value, &v.Text) != nil {
			return bad
		}
		if v.Text == "" {
			return parsed{outcome: cleared}
		}
	case 2:
		var n json.Number
		if json.Unmarshal(e.Value, &n) != nil {
			return bad
		}
		f, err := n.Float64()
		if err != nil {
			return bad
		}
		v.Number = f
	case 3:
		var str string
		if json.Unmarshal(e.Value, &str) != nil {
			return bad
		}
		t, okDate := parseArcherDate(str)
		if !okDate {
			return bad
		}
		v.Date = t
	case 4:
		var in struct {
			ValuesListIDs []int64 `json:"ValuesListIds"`
			OtherText     *string `json:"OtherText"`
		}
		if json.Unmarshal(e.Value, &in) != nil {
			return bad
		}
		for _, id := range in.ValuesListIDs {
			val := s.md.values[id]
			if val == nil || val.listID != fm.RelatedValuesListID || !val.Selectable {
				reject("the values list value", id)
				continue
			}
			if !slices.Contains(v.ValuesList, id) {
				v.ValuesList = append(v.ValuesList, id)
			}
		}
		v.OtherText = in.OtherText
		return refs(len(in.ValuesListIDs), len(v.ValuesList))
	case 7:
		if json.Unmarshal(e.Value, &v.Links) != nil {
			return bad
		}
		for _, l := range v.Links {
			if strings.TrimSpace(l.URL) == "" {
				return bad
			}
		}
		if len(v.Links) == 0 {
			return parsed{outcome: cleared}
		}
	case 8:
		var in struct {
			UserList  []idRef `json:"UserList"`
			GroupList []idRef `json:"GroupList"`
		}
		if json.Unmarshal(e.Value, &in) != nil {
			return bad
		}
		for _, u := range in.UserList {
			if _, known := s.md.userByID[u.ID]; !known {
				reject("the user", u.ID)
				continue
			}
			v.Users = append(v.Users, u.ID)
		}
		for _, g := range in.GroupList {
			if _, known := s.md.groupByID[g.ID]; !known {
				reject("the group", g.ID)
				continue
			}
			v.Groups = append(v.Groups, g.ID)
		}
		return refs(len(in.UserList)+len(in.GroupList), len(v.Users)+len(v.Groups))
	case 9:
		var in []contentRef
		if json.Unmarshal(e.Value, &in) != nil {
			return bad
		}
		for _, r := range in {
			target := s.records[r.ContentID]
			if target == nil || fm.RelatedLevelID != 0 && target.LevelID != fm.RelatedLevelID {
				reject("the record", r.ContentID)
				continue
			}
			v.Refs = append(v.Refs, r.ContentID)
		}
		return refs(len(in), len(v.Refs))
	case 11:
		var in []int64
		if json.Unmarshal(e.Value, &in) != nil {
			return bad
		}
		for _, id := range in {
			if s.attachments[id] == nil {
				reject("the attachment", id)
				continue
			}
			if !slices.Contains(v.Attachments, id) {
				v.Attachments = append(v.Attachments, id)
			}
		}
		return refs(len(in), len(v.Attachments))
	default:
		return bad
	}
	return parsed{value: v, outcome: set}
}

func requiredMessages(level *levelMeta, fields map[int64]*storedValue) []validationMessage {
	var msgs []validationMessage
	for _, fm := range level.fields {
		if fm.IsRequired && fm.active && fields[fm.ID] == nil {
			msgs = append(msgs, msg("RequiredFieldMissing", "The %s field is a required field.", fm.Name))
		}
	}
	return msgs
}

func archerDate(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05")
}

// readEntry renders a field as Archer returns it on GET.
func readEntry(fm *fieldMeta, rec *record) map[string]any {
	e := map[string]any{"Type": fm.Type, "FieldId": fm.ID}
	v := rec.Fields[fm.ID]
	switch fm.Type {
	case 6:
		e["Value"] = rec.ID
		return e
	case 21:
		e["Value"] = archerDate(rec.Created)
		return e
	case 22:
		e["Value"] = archerDate(rec.Updated)
		return e
	case 19:
		if v == nil {
			e["IpAddressBytes"] = nil
		} else {
			e["IpAddressBytes"] = v.IP
		}
		return e
	}
	if v == nil {
		e["Value"] = nil
		return e
	}
	switch fm.Type {
	case 1:
		e["Value"] = v.Text
	case 2:
		e["Value"] = v.Number
	case 3:
		e["Value"] = archerDate(v.Date)
	case 4:
		e["Value"] = map[string]any{"ValuesListIds": v.ValuesList, "OtherText": v.OtherText}
	case 7:
		e["Value"] = v.Links
	case 8:
		users := []idRef{}
		for _, id := range v.Users {
			users = append(users, idRef{ID: id})
		}
		groups := []idRef{}
		for _, id := range v.Groups {
			groups = append(groups, idRef{ID: id})
		}
		e["Value"] = map[string]any{"UserList": users, "GroupList": groups}
	case 9:
		refs := []contentRef{}
		for _, id := range v.Refs {
			refs = append(refs, contentRef{ContentID: id})
		}
		e["Value"] = refs
	case 11:
		e["Value"] = v.Attachments
	}
	return e
}

func (s *Server) contentObject(rec *record) map[string]any {
	level := s.md.levels[rec.LevelID]
	fc := map[string]any{}
	for _, fm := range level.fields {
		if fm.active {
			fc[strconv.FormatInt(fm.ID, 10)] = readEntry(fm, rec)
		}
	}
	return map[string]any{"Id": rec.ID, "LevelId": rec.LevelID, "FieldContents": fc}
}

func (s *Server) handleGetContent(req *apiRequest, idText string) {
	id, err := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	var rec *record
	if err == nil {
		rec = s.records[id]
	}
	var obj map[string]any
	if rec != nil {
		obj = s.contentObject(rec)
	}
	s.mu.Unlock()
	if obj == nil {
		writeJSON(req.w, http.StatusOK, failed(newMessage(contentController, "ValidationMessageTemplates:NoResourceFound", "No resource found.")))
		return
	}
	writeJSON(req.w, http.StatusOK, ok(obj))
}

func (s *Server) handleDeleteContent(req *apiRequest, idText string) {
	id, err := strconv.ParseInt(idText, 10, 64)
	s.mu.Lock()
	found := err == nil && s.records[id] != nil
	if found {
		delete(s.records, id)
		s.order = slices.DeleteFunc(s.order, func(x int64) bool { return x == id })
	}
	s.mu.Unlock()
	if !found {
		writeJSON(req.w, http.StatusOK, failed(newMessage(contentController, "ValidationMessageTemplates:NoResourceFound", "No resource found.")))
		return
	}
	writeJSON(req.w, http.StatusOK, ok(nil))
}
