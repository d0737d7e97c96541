package graphsim

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// messageFields are the message properties the simulator renders, by
// lower-case name. internetMessageHeaders only appears when selected.
var messageFields = []string{
	"id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories", "receivedDateTime",
	"sentDateTime", "hasAttachments", "internetMessageId", "subject", "bodyPreview", "importance",
	"parentFolderId", "conversationId", "isRead", "isDraft", "webLink", "body", "sender", "from",
	"toRecipients", "ccRecipients", "bccRecipients", "replyTo", "internetMessageHeaders", "uniqueBody",
}

var messageFieldByLower = func() map[string]string {
	m := map[string]string{}
	for _, f := range messageFields {
		m[strings.ToLower(f)] = f
	}
	return m
}()

// preferences reads the Prefer headers that matter here.
type preferences struct {
	immutable   bool
	bodyType    string // "", "text" or "html"
	maxPageSize int
}

func readPreferences(r *http.Request) preferences {
	var p preferences
	for _, v := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
			k = strings.ToLower(strings.TrimSpace(k))
			val = strings.Trim(strings.TrimSpace(val), `"`)
			switch k {
			case "idtype":
				p.immutable = strings.EqualFold(val, "ImmutableId")
			case "outlook.body-content-type":
				if strings.EqualFold(val, "text") || strings.EqualFold(val, "html") {
					p.bodyType = strings.ToLower(val)
				}
			case "odata.maxpagesize":
				if n, err := strconv.Atoi(val); err == nil && n > 0 {
					p.maxPageSize = n
				}
			}
		}
	}
	return p
}

func (p preferences) applied(w http.ResponseWriter, withBody bool) {
	var out []string
	if p.immutable {
		out = append(out, `IdType="ImmutableId"`)
	}
	if withBody && p.bodyType != "" {
		out = append(out, `outlook.body-content-type="`+p.bodyType+`"`)
	}
	if len(out) > 0 {
		w.Header().Set("Preference-Applied", strings.Join(out, ", "))
	}
}

// parseSelect validates $select; nil means the default property set.
func parseSelect(raw string) ([]string, string, bool) {
	if strings.TrimSpace(raw) == "" {
		return nil, "", true
	}
	var out []string
	for _, f := range strings.Split(raw, ",") {
		f = strings.TrimSpace(f)
		canon, ok := messageFieldByLower[strings.ToLower(f)]
		if !ok {
			return nil, f, false
		}
		out = append(out, canon)
	}
	return out, "", true
}

func selectError(w http.ResponseWriter, field string) {
	writeError(w, http.StatusBadRequest, "RequestBroker--ParseUri", "Could not find a property named '"+field+"' on type 'microsoft.graph.message'.")
}

func itemNotFound(w http.ResponseWriter) {
	writeError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

// findLocked looks a message up by REST or immutable id, within a folder
// when the URL names one; s.mu must be held.
func findLocked(mb *mailbox, folderName, id string) *message {
	m := mb.byID[id]
	if m == nil {
		return nil
	}
	if folderName != "" {
		f := mb.folderByIDOrWellKnown(folderName)
		if f == nil || f.id != m.folderID {
			return nil
		}
	}
	return m
}

// messageJSON renders a message; fields nil means the default set.
func (s *Server) messageJSON(mb *mailbox, m *message, fields []string, p preferences) map[string]any {
	v := m.view
	id := m.restID
	if p.immutable {
		id = m.immutableID
	}
	all := fields == nil
	want := map[string]bool{}
	for _, f := range fields {
		want[f] = true
	}
	out := map[string]any{"@odata.etag": `W/"` + m.changeKey + `"`, "id": id}
	put := func(name string, val func() any) {
		if name == "internetMessageHeaders" || name == "uniqueBody" {
			if !want[name] {
				return
			}
		} else if !all && !want[name] {
			return
		}
		out[name] = val()
	}
	recips := func(list []emailAddress) any {
		out := make([]map[string]any, 0, len(list))
		for _, a := range list {
			out = append(out, map[string]any{"emailAddress": a})
		}
		return out
	}
	one := func(a *emailAddress) any {
		if a == nil {
			return nil
		}
		return map[string]any{"emailAddress": *a}
	}
	body := func() any {
		bt := p.bodyType
		if bt == "" {
			bt = "html"
			if v.html == "" {
				bt = "text"
			}
		}
		if bt == "text" {
			return map[string]any{"contentType": "text", "content": v.text}
		}
		h := v.html
		if h == "" {
			h = textAsHTML(v.text)
		}
		return map[string]any{"contentType": "html", "content": h}
	}
	hasAttachments := false
	for _, a := range v.attachments {
		if !a.inline {
			hasAttachments = true
		}
	}
	sent := m.received
	if !v.sent.IsZero() {
		sent = v.sent
	}
	put("createdDateTime", func() any { return m.received.Format(time.RFC3339) })
	put("lastModifiedDateTime", func() any { return m.lastModified.Format(time.RFC3339) })
	put("changeKey", func() any { return m.changeKey })
	put("categories", func() any { return append([]string{}, m.categories...) })
	put("receivedDateTime", func() any { return m.received.Format(time.RFC3339) })
	put("sentDateTime", func() any { return sent.Format(time.RFC3339) })
	put("hasAttachments", func() any { return hasAttachments })
	put("internetMessageId", func() any { return v.internetMessageID })
	put("subject", func() any { return v.subject })
	put("bodyPreview", func() any {
		t := v.text
		if t == "" && v.html != "" {
			t = v.html
		}
		return bodyPreview(t)
	})
	put("importance", func() any { return v.importance })
	put("parentFolderId", func() any { return m.folderID })
	put("conversationId", func() any { return conversationID(v.conversationKey) })
	put("isRead", func() any { return m.isRead })
	put("isDraft", func() any { return false })
	put("webLink", func() any {
		return "https://outlook.office365.com/owa/?ItemID=" + url.QueryEscape(id) + "&exvsurl=1&viewmodel=ReadMessageItem"
	})
	put("body", body)
	put("uniqueBody", body)
	put("sender", func() any { return one(v.sender) })
	put("from", func() any { return one(v.from) })
	put("toRecipients", func() any { return recips(v.to) })
	put("ccRecipients", func() any { return recips(v.cc) })
	put("bccRecipients", func() any { return recips(v.bcc) })
	put("replyTo", func() any { return recips(v.replyTo) })
	put("internetMessageHeaders", func() any { return append([]headerField{}, v.headers...) })
	return out
}

func (s *Server) getMessage(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName, id string) {
	fields, bad, ok := parseSelect(r.URL.Query().Get("$select"))
	if !ok {
		selectError(w, bad)
		return
	}
	p := readPreferences(r)
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	if m == nil {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	out := s.messageJSON(mb, m, fields, p)
	s.mu.Unlock()
	out["@odata.context"] = externalBase(r) + "/v1.0/$metadata#users('" + mb.id + "')/messages/$entity"
	p.applied(w, true)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getMIME(w http.ResponseWriter, mb *mailbox, folderName, id string) {
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	var data []byte
	if m != nil {
		data = m.mime
	}
	s.mu.Unlock()
	if m == nil {
		itemNotFound(w)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

func (s *Server) attachmentJSON(m *message, i int, withContent bool) map[string]any {
	a := m.view.attachments[i]
	out := map[string]any{
		"id": m.attachIDs[i], "lastModifiedDateTime": m.received.Format(time.RFC3339),
		"name": a.name, "contentType": a.contentType, "size": len(a.content), "isInline": a.inline,
	}
	if a.item {
		out["@odata.type"] = "#microsoft.graph.itemAttachment"
		return out
	}
	out["@odata.type"] = "#microsoft.graph.fileAttachment"
	out["contentId"] = nullable(a.contentID)
	out["contentLocation"] = nil
	if withContent {
		out["contentBytes"] = base64.StdEncoding.EncodeToString(a.content)
	}
	return out
}

func (s *Server) listAttachments(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName, id string) {
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	if m == nil {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	list := make([]map[string]any, 0, len(m.attachIDs))
	for i := range m.attachIDs {
		list = append(list, s.attachmentJSON(m, i, true))
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": externalBase(r) + "/v1.0/$metadata#users('" + mb.id + "')/messages('" + id + "')/attachments",
		"value":          list,
	})
}

// getAttachment serves attachments/{id} and attachments/{id}/$value (the
// raw bytes, or the MIME of an attached message).
func (s *Server) getAttachment(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName, id string, rest []string) {
	if len(rest) == 0 || len(rest) > 2 || (len(rest) == 2 && rest[1] != "$value") {
		writeError(w, http.StatusBadRequest, "BadRequest", "Unsupported request on an attachment.")
		return
	}
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	idx := -1
	if m != nil {
		for i, aid := range m.attachIDs {
			if aid == rest[0] {
				idx = i
			}
		}
	}
	if idx < 0 {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	if len(rest) == 2 {
		data := m.view.attachments[idx].content
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(data)
		return
	}
	out := s.attachmentJSON(m, idx, true)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) patchMessage(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName, id string, body []byte) {
	var in map[string]json.RawMessage
	if err := json.Unmarshal(body, &in); err != nil || in == nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	var cats []string
	var isRead *bool
	for k, v := range in {
		switch k {
		case "categories":
			if err := json.Unmarshal(v, &cats); err != nil {
				writeError(w, http.StatusBadRequest, "BadRequest", "Invalid value for property 'categories': an array of strings is expected.")
				return
			}
			if cats == nil {
				cats = []string{}
			}
			for _, c := range cats {
				if c == "" || len(c) > 255 {
					writeError(w, http.StatusBadRequest, "ErrorInvalidArgument", "A category name must have 1 to 255 characters.")
					return
				}
			}
		case "isRead":
			var b bool
			if err := json.Unmarshal(v, &b); err != nil {
				writeError(w, http.StatusBadRequest, "BadRequest", "Invalid value for property 'isRead'.")
				return
			}
			isRead = &b
		case "@odata.type":
		default:
			writeError(w, http.StatusBadRequest, "ErrorInvalidProperty", "The property '"+k+"' cannot be updated by the simulator.")
			return
		}
	}
	p := readPreferences(r)
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	if m == nil {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	if cats != nil {
		m.categories = cats
	}
	if isRead != nil {
		m.isRead = *isRead
	}
	m.lastModified = s.nowLocked()
	m.changeKey = newItemID("CQAAABYAAAD", 12)
	s.recordChangeLocked(mb, change{folderID: m.folderID, msg: m, restID: m.restID})
	notes := s.notificationsLocked(mb, m, m.folderID, "updated")
	out := s.messageJSON(mb, m, nil, p)
	s.mu.Unlock()
	s.dispatch(notes)
	p.applied(w, false)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) moveMessage(w http.ResponseWriter, r *http.Request, mb *mailbox, folderName, id string, body []byte) {
	var in struct {
		DestinationID string `json:"destinationId"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.DestinationID == "" {
		writeError(w, http.StatusBadRequest, "ErrorInvalidIdMalformed", "The destinationId is missing or malformed.")
		return
	}
	p := readPreferences(r)
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	if m == nil {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	dst := mb.folderByIDOrWellKnown(in.DestinationID)
	if dst == nil {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "ErrorItemNotFound", "The specified destination folder was not found in the store.")
		return
	}
	notes := s.moveLocked(mb, m, dst)
	out := s.messageJSON(mb, m, nil, p)
	s.mu.Unlock()
	s.dispatch(notes)
	p.applied(w, false)
	writeJSON(w, http.StatusCreated, out)
}

// deleteMessage moves the message to Deleted Items, as Graph's DELETE does.
func (s *Server) deleteMessage(w http.ResponseWriter, mb *mailbox, folderName, id string) {
	s.mu.Lock()
	m := findLocked(mb, folderName, id)
	if m == nil {
		s.mu.Unlock()
		itemNotFound(w)
		return
	}
	notes := s.moveLocked(mb, m, mb.folderByIDOrWellKnown("deleteditems"))
	s.mu.Unlock()
	s.dispatch(notes)
	w.WriteHeader(http.StatusNoContent)
}

func folderJSON(mb *mailbox, f *folder) map[string]any {
	total := 0
	for id, m := range mb.byID {
		if m.folderID == f.id && id == m.immutableID {
			total++
		}
	}
	return map[string]any{"id": f.id, "displayName": f.name, "parentFolderId": nil, "childFolderCount": 0,
		"unreadItemCount": 0, "totalItemCount": total, "isHidden": false}
}

// listFolders serves users/{u}/mailFolders, with $filter=displayName eq '…'.
func (s *Server) listFolders(w http.ResponseWriter, r *http.Request, mb *mailbox) {
	filter := strings.TrimSpace(r.URL.Query().Get("$filter"))
	var name string
	if filter != "" {
		const prefix = "displayName eq '"
		if !strings.HasPrefix(filter, prefix) || !strings.HasSuffix(filter, "'") || len(filter) < len(prefix)+1 {
			writeError(w, http.StatusBadRequest, "BadRequest", "Only $filter=displayName eq '…' is simulated on mailFolders.")
			return
		}
		name = strings.ReplaceAll(filter[len(prefix):len(filter)-1], "''", "'")
	}
	s.mu.Lock()
	list := []map[string]any{}
	for _, f := range mb.folders {
		if filter == "" || strings.EqualFold(f.name, name) {
			list = append(list, folderJSON(mb, f))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": externalBase(r) + "/v1.0/$metadata#users('" + mb.id + "')/mailFolders", "value": list})
}

func (s *Server) getFolder(w http.ResponseWriter, r *http.Request, mb *mailbox, name string) {
	s.mu.Lock()
	f := mb.folderByIDOrWellKnown(name)
	var out map[string]any
	if f != nil {
		out = folderJSON(mb, f)
	}
	s.mu.Unlock()
	if f == nil {
		writeError(w, http.StatusNotFound, "ErrorInvalidIdMalformed", "Id is malformed.")
		return
	}
	writeJSON(w, http.StatusOK, out)
}
