package archer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Content is a record as Archer returns it.
type Content struct {
	ID      int64
	LevelID int64
	// Fields holds every field Archer returned, by field id.
	Fields map[int64]FieldValue
}

// FieldValue is one field of a read record. Its accessors decode the value
// in the shape of the field's type.
type FieldValue struct {
	FieldID int64
	Type    FieldType
	// Raw is the JSON of "Value" (null when empty).
	Raw json.RawMessage
	// IPAddress is the value of an IP-address field.
	IPAddress string
}

// Field returns the value of f, and false when Archer did not return it.
func (c *Content) Field(f Field) (FieldValue, bool) {
	v, ok := c.Fields[f.ID]
	return v, ok
}

// IsNull reports whether the field has no value.
func (v FieldValue) IsNull() bool {
	if v.Type == FieldIPAddress {
		return v.IPAddress == ""
	}
	t := bytes.TrimSpace(v.Raw)
	return len(t) == 0 || string(t) == "null"
}

func (v FieldValue) decode(out any) error {
	if v.IsNull() {
		return nil
	}
	if err := json.Unmarshal(v.Raw, out); err != nil {
		return fmt.Errorf("field %d: decode %s value: %w", v.FieldID, v.Type, err)
	}
	return nil
}

// Text returns a text field's value ("" when empty).
func (v FieldValue) Text() (string, error) {
	var s string
	return s, v.decode(&s)
}

// Numeric returns a numeric field's value.
func (v FieldValue) Numeric() (float64, error) {
	var f float64
	return f, v.decode(&f)
}

// Date returns a date field's value, read as UTC when Archer gives no zone.
// The zero time means empty.
func (v FieldValue) Date() (time.Time, error) {
	var s string
	if err := v.decode(&s); err != nil || s == "" {
		return time.Time{}, err
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999", DateLayout, "1/2/2006 3:04:05 PM", "1/2/2006 3:04 PM", "1/2/2006"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("field %d: %q is not a date", v.FieldID, s)
}

// ValuesList returns a values-list field's value ids and its other text.
func (v FieldValue) ValuesList() ([]int64, string, error) {
	var vl valuesListValue
	if err := v.decode(&vl); err != nil {
		return nil, "", err
	}
	other := ""
	if vl.OtherText != nil {
		other = *vl.OtherText
	}
	return vl.ValuesListIDs, other, nil
}

// ExternalLinks returns an external-links field's links.
func (v FieldValue) ExternalLinks() ([]Link, error) {
	var l []Link
	return l, v.decode(&l)
}

// UsersGroups returns a users/groups field's user and group ids.
func (v FieldValue) UsersGroups() (users, groups []int64, err error) {
	var ug usersGroupsValue
	if err := v.decode(&ug); err != nil {
		return nil, nil, err
	}
	for _, u := range ug.UserList {
		users = append(users, u.ID)
	}
	for _, g := range ug.GroupList {
		groups = append(groups, g.ID)
	}
	return users, groups, nil
}

// CrossReference returns a cross-reference field's content ids.
func (v FieldValue) CrossReference() ([]int64, error) {
	var refs []contentRef
	if err := v.decode(&refs); err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(refs))
	for _, r := range refs {
		ids = append(ids, r.ContentID)
	}
	return ids, nil
}

// Attachments returns an attachment field's attachment ids.
func (v FieldValue) Attachments() ([]int64, error) {
	var ids []int64
	return ids, v.decode(&ids)
}

// IP returns an IP-address field's value.
func (v FieldValue) IP() string { return v.IPAddress }

type idObject struct {
	ID int64 `json:"Id"`
}

// CreateRecord creates the record and returns its content id. Archer's
// validation messages (a required field missing, a wrong type) come back as
// a *ValidationError.
func (c *Client) CreateRecord(ctx context.Context, r *Record) (int64, error) {
	if err := r.Err(); err != nil {
		return 0, fmt.Errorf("create record in level %d: %w", r.levelID, err)
	}
	body, err := json.Marshal(r.wire(0))
	if err != nil {
		return 0, fmt.Errorf("create record in level %d: %w", r.levelID, err)
	}
	op := fmt.Sprintf("create record in level %d", r.levelID)
	data, err := c.do(ctx, apiCall{op: op, method: http.MethodPost, url: c.restURL("content"), body: body})
	if err != nil {
		return 0, err
	}
	var out idObject
	if err := decodeWrapper(op, data, &out, nil); err != nil {
		return 0, err
	}
	if out.ID <= 0 {
		return 0, fmt.Errorf("archer %s: the answer carries no record id", op)
	}
	return out.ID, nil
}

type contentDTO struct {
	ID            int64                      `json:"Id"`
	LevelID       int64                      `json:"LevelId"`
	FieldContents map[string]json.RawMessage `json:"FieldContents"`
}

// GetRecord reads a record. A record that does not exist gives an error
// matching ErrNotFound.
func (c *Client) GetRecord(ctx context.Context, id int64) (*Content, error) {
	op := fmt.Sprintf("read record %d", id)
	data, err := c.do(ctx, apiCall{op: op, method: http.MethodGet, override: true, url: c.restURL("content/" + strconv.FormatInt(id, 10))})
	if err != nil {
		return nil, err
	}
	var dto contentDTO
	if err := decodeWrapper(op, data, &dto, nil); err != nil {
		return nil, err
	}
	out := &Content{ID: dto.ID, LevelID: dto.LevelID, Fields: make(map[int64]FieldValue, len(dto.FieldContents))}
	for k, raw := range dto.FieldContents {
		fid, err := strconv.ParseInt(k, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("archer %s: field key %q is not an id", op, k)
		}
		var e struct {
			Type           int             `json:"Type"`
			Value          json.RawMessage `json:"Value"`
			FieldID        int64           `json:"FieldId"`
			IPAddressBytes *string         `json:"IpAddressBytes"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("archer %s: field %s: %w", op, k, err)
		}
		fv := FieldValue{FieldID: fid, Type: FieldType(e.Type), Raw: e.Value}
		if e.IPAddressBytes != nil {
			fv.IPAddress = *e.IPAddressBytes
		}
		out.Fields[fid] = fv
	}
	return out, nil
}

// UpdateRecord changes the fields the record sets and leaves the others.
// Attachment fields are merged: the record's existing attachments are kept
// and the new ids added (Archer itself would replace the list).
func (c *Client) UpdateRecord(ctx context.Context, id int64, r *Record) error {
	op := fmt.Sprintf("update record %d", id)
	if err := r.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	wire := r.wire(id)
	content := wire["Content"]
	var current *Content
	for _, fid := range r.fieldIDs() {
		e := content.FieldContents[strconv.FormatInt(fid, 10)]
		if e.Type != FieldAttachment {
			continue
		}
		if current == nil {
			var err error
			if current, err = c.GetRecord(ctx, id); err != nil {
				return fmt.Errorf("%s: read existing attachments: %w", op, err)
			}
		}
		var existing []int64
		if fv, ok := current.Fields[fid]; ok {
			var err error
			if existing, err = fv.Attachments(); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
		}
		added, _ := e.Value.([]int64)
		merged := slices.Clone(existing)
		for _, a := range added {
			if !slices.Contains(merged, a) {
				merged = append(merged, a)
			}
		}
		e.Value = merged
		content.FieldContents[strconv.FormatInt(fid, 10)] = e
	}
	wire["Content"] = content
	body, err := json.Marshal(wire)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	data, err := c.do(ctx, apiCall{op: op, method: http.MethodPut, url: c.restURL("content"), body: body})
	if err != nil {
		return err
	}
	return decodeWrapper(op, data, nil, nil)
}

// maxFindPages bounds how many 1000-record pages FindByField reads.
const maxFindPages = 50

// FindByField returns the ids of the level's records whose text field f
// equals value exactly. It queries the Content API
// ({base}/contentapi/{LevelAlias}?$filter=<FieldAlias> eq 'value') with the
// same session, and compares the returned values itself, so a server that
// ignored the filter cannot produce a false match. If the level alias is not
// an endpoint, "{ApplicationAlias}_{LevelAlias}" (Archer's name when several
// levels share an alias) is tried.
func (c *Client) FindByField(ctx context.Context, app *Application, level *Level, f Field, value string) ([]int64, error) {
	if level == nil || level.Alias == "" {
		return nil, fmt.Errorf("find by field %q: %w: the level has no alias, and the Content API addresses levels by alias", f.Name, ErrNoContentAPI)
	}
	if f.Type != FieldText {
		return nil, fmt.Errorf("find by field %q: only text fields can be looked up, this is a %s field", f.Name, f.Type)
	}
	if f.Alias == "" {
		return nil, fmt.Errorf("find by field %q: %w: the field has no alias, and the Content API names fields by alias", f.Name, ErrNoContentAPI)
	}
	endpoints := []string{level.Alias}
	if app != nil && app.Alias != "" {
		endpoints = append(endpoints, app.Alias+"_"+level.Alias)
	}
	var lastErr error
	for _, ep := range endpoints {
		ids, err := c.findIn(ctx, ep, f, value)
		var se *StatusError
		var he *HTMLError
		switch {
		case err != nil && (errors.As(err, &se) && se.StatusCode == http.StatusNotFound || errors.As(err, &he) && he.StatusCode == http.StatusNotFound):
			lastErr = err
			continue
		case err != nil && errors.As(err, &se) && (se.StatusCode == http.StatusForbidden || se.StatusCode == http.StatusUnauthorized):
			return nil, fmt.Errorf("find by field %q: %w: the Content API refused to read level %q (may the API user read it?): %w", f.Name, ErrNoContentAPI, ep, err)
		}
		return ids, err
	}
	return nil, fmt.Errorf("find by field %q: %w: no Content API endpoint for level %q (is the Content API enabled and may the API user read the level?): %w", f.Name, ErrNoContentAPI, level.Alias, lastErr)
}

func (c *Client) findIn(ctx context.Context, endpoint string, f Field, value string) ([]int64, error) {
	op := fmt.Sprintf("find %s records by %s", endpoint, f.Alias)
	filter := f.Alias + " eq " + odataString(value)
	var ids []int64
	for page := 0; page < maxFindPages; page++ {
		q := "$filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20")
		if page > 0 {
			q += "&$skip=" + strconv.Itoa(page*1000)
		}
		data, err := c.do(ctx, apiCall{op: op, method: http.MethodGet, url: c.contentAPIURL(endpoint) + "?" + q, cookie: true})
		if err != nil {
			return nil, err
		}
		var res struct {
			Value []map[string]json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(data, &res); err != nil {
			return nil, fmt.Errorf("archer %s: decode answer: %w (body starts %q)", op, err, snippet(data))
		}
		for _, rec := range res.Value {
			var got string
			if raw, ok := lookupKey(rec, f.Alias); !ok || json.Unmarshal(raw, &got) != nil || got != value {
				continue
			}
			raw, ok := lookupKey(rec, endpoint+"_Id")
			if !ok {
				return nil, fmt.Errorf("archer %s: a matching record has no %s_Id", op, endpoint)
			}
			var id int64
			if err := json.Unmarshal(raw, &id); err != nil {
				return nil, fmt.Errorf("archer %s: %s_Id: %w", op, endpoint, err)
			}
			if !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(res.Value) < 1000 {
			return ids, nil
		}
	}
	return ids, nil
}

func lookupKey(m map[string]json.RawMessage, key string) (json.RawMessage, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}
