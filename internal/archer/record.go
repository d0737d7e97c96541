package archer

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"time"
)

// DateLayout is the layout dates are written in: ISO 8601 without a zone,
// in UTC. Set the Archer API user's time zone to UTC so that Archer does not
// shift them.
const DateLayout = "2006-01-02T15:04:05"

// Link is one entry of an external-links field.
type Link struct {
	Name string `json:"Name"`
	URL  string `json:"URL"`
}

// Record collects field values for one content record of one level and
// serializes them to Archer's {"Content":{"LevelId":…,"FieldContents":{…}}}
// shape. Setting a value checks it against the field definition; mistakes
// are collected and reported by Err (and by CreateRecord/UpdateRecord), so
// the builder can be chained. A Record is not safe for concurrent use.
type Record struct {
	levelID int64
	entries map[int64]wireEntry
	errs    []error
}

// wireEntry is one FieldContents entry in the order Archer documents it.
type wireEntry struct {
	Type           FieldType `json:"Type"`
	Tag            string    `json:"Tag,omitempty"`
	Value          any       `json:"Value,omitempty"`
	IPAddressBytes *string   `json:"IpAddressBytes,omitempty"`
	FieldID        int64     `json:"FieldId"`
}

type valuesListValue struct {
	ValuesListIDs []int64 `json:"ValuesListIds"`
	OtherText     *string `json:"OtherText"`
}

type idRef struct {
	ID int64 `json:"ID"`
}

type usersGroupsValue struct {
	UserList  []idRef `json:"UserList"`
	GroupList []idRef `json:"GroupList"`
}

type contentRef struct {
	ContentID int64 `json:"ContentID"`
}

// NewRecord starts a record of the given level.
func NewRecord(levelID int64) *Record {
	return &Record{levelID: levelID, entries: map[int64]wireEntry{}}
}

// LevelID returns the record's level.
func (r *Record) LevelID() int64 { return r.levelID }

// Err returns every mistake made while setting values, or nil.
func (r *Record) Err() error { return errors.Join(r.errs...) }

// Has reports whether the record sets the field.
func (r *Record) Has(f Field) bool {
	_, ok := r.entries[f.ID]
	return ok
}

func (r *Record) check(f Field, want FieldType) bool {
	switch {
	case f.ID <= 0:
		r.errs = append(r.errs, fmt.Errorf("field %q has no id (was it resolved from Archer's metadata?)", f.Name))
	case f.Type != want:
		r.errs = append(r.errs, fmt.Errorf("field %q is a %s field; it cannot take a %s value", f.Name, f.Type, want))
	case f.LevelID != 0 && f.LevelID != r.levelID:
		r.errs = append(r.errs, fmt.Errorf("field %q belongs to level %d, not to the record's level %d", f.Name, f.LevelID, r.levelID))
	default:
		return true
	}
	return false
}

func (r *Record) set(f Field, v any) *Record {
	r.entries[f.ID] = wireEntry{Type: f.Type, Tag: f.Name, Value: v, FieldID: f.ID}
	return r
}

// TextValue returns the text a text field was set to, if it was.
func (r *Record) TextValue(f Field) (string, bool) {
	e, ok := r.entries[f.ID]
	if !ok || e.Type != FieldText {
		return "", false
	}
	s, ok := e.Value.(string)
	return s, ok
}

// Text sets a text field; Archer accepts plain text or HTML.
func (r *Record) Text(f Field, s string) *Record {
	if r.check(f, FieldText) {
		r.set(f, s)
	}
	return r
}

// Numeric sets a numeric field. NaN and infinities are refused.
func (r *Record) Numeric(f Field, v float64) *Record {
	if !r.check(f, FieldNumeric) {
		return r
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.errs = append(r.errs, fmt.Errorf("field %q: %v is not a number Archer can store", f.Name, v))
		return r
	}
	return r.set(f, v)
}

// Date sets a date field, written in UTC with DateLayout.
func (r *Record) Date(f Field, t time.Time) *Record {
	if !r.check(f, FieldDate) {
		return r
	}
	if t.IsZero() {
		r.errs = append(r.errs, fmt.Errorf("field %q: the date is zero", f.Name))
		return r
	}
	return r.set(f, t.UTC().Format(DateLayout))
}

// ValuesList sets a values-list field to value ids (see ResolveValue);
// otherText fills the "Other" box of values that enable it and may be empty.
func (r *Record) ValuesList(f Field, ids []int64, otherText string) *Record {
	if !r.check(f, FieldValuesList) {
		return r
	}
	if len(ids) == 0 {
		r.errs = append(r.errs, fmt.Errorf("field %q: no value ids given", f.Name))
		return r
	}
	v := valuesListValue{ValuesListIDs: slices.Clone(ids)}
	if otherText != "" {
		v.OtherText = &otherText
	}
	return r.set(f, v)
}

// ExternalLinks sets an external-links field.
func (r *Record) ExternalLinks(f Field, links []Link) *Record {
	if !r.check(f, FieldExternalLinks) {
		return r
	}
	for _, l := range links {
		if l.URL == "" {
			r.errs = append(r.errs, fmt.Errorf("field %q: link %q has no URL", f.Name, l.Name))
			return r
		}
	}
	return r.set(f, slices.Clone(links))
}

// UsersGroups sets a users/groups field to user and group ids.
func (r *Record) UsersGroups(f Field, users, groups []int64) *Record {
	if !r.check(f, FieldUsersGroups) {
		return r
	}
	v := usersGroupsValue{UserList: []idRef{}, GroupList: []idRef{}}
	for _, id := range users {
		v.UserList = append(v.UserList, idRef{ID: id})
	}
	for _, id := range groups {
		v.GroupList = append(v.GroupList, idRef{ID: id})
	}
	return r.set(f, v)
}

// CrossReference sets a cross-reference field to content ids. Archer drops
// ids that do not exist without saying so.
func (r *Record) CrossReference(f Field, contentIDs []int64) *Record {
	if !r.check(f, FieldCrossReference) {
		return r
	}
	refs := make([]contentRef, 0, len(contentIDs))
	for _, id := range contentIDs {
		refs = append(refs, contentRef{ContentID: id})
	}
	return r.set(f, refs)
}

// Attachments sets an attachment field to uploaded attachment ids. On
// UpdateRecord the ids are added to the record's existing attachments.
func (r *Record) Attachments(f Field, ids []int64) *Record {
	if !r.check(f, FieldAttachment) {
		return r
	}
	return r.set(f, slices.Clone(ids))
}

// IP sets an IP-address field. The address is checked here because Archer
// silently drops one it cannot parse.
func (r *Record) IP(f Field, addr string) *Record {
	if !r.check(f, FieldIPAddress) {
		return r
	}
	a, err := netip.ParseAddr(addr)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("field %q: %q is not an IP address", f.Name, addr))
		return r
	}
	s := a.String()
	r.entries[f.ID] = wireEntry{Type: f.Type, IPAddressBytes: &s, FieldID: f.ID}
	return r
}

type wireContent struct {
	ID            int64                `json:"Id,omitempty"`
	LevelID       int64                `json:"LevelId"`
	FieldContents map[string]wireEntry `json:"FieldContents"`
}

// wire builds the request body; id is zero for a create.
func (r *Record) wire(id int64) map[string]wireContent {
	fc := make(map[string]wireEntry, len(r.entries))
	for fid, e := range r.entries {
		fc[strconv.FormatInt(fid, 10)] = e
	}
	return map[string]wireContent{"Content": {ID: id, LevelID: r.levelID, FieldContents: fc}}
}

// MarshalJSON produces the create body
// {"Content":{"LevelId":…,"FieldContents":{"<id>":{"Type":…,"Tag":…,"Value":…,"FieldId":…}}}}.
func (r *Record) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.wire(0))
}

// fieldIDs returns the ids the record sets, sorted.
func (r *Record) fieldIDs() []int64 {
	ids := make([]int64, 0, len(r.entries))
	for id := range r.entries {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
