package graphsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

type subscription struct {
	id              string
	appID           string
	resource        string
	mailboxID       string
	folderID        string // "" for the whole mailbox
	changeTypes     []string
	changeType      string
	notificationURL string
	lifecycleURL    string
	clientState     string
	expires         time.Time
	immutable       bool
	tls             string
	order           string
	paused          bool
	held            []pendingNote
}

// Subscription is the control view of an active subscription.
type Subscription struct {
	ID                       string
	Resource                 string
	ChangeType               string
	NotificationURL          string
	LifecycleNotificationURL string
	ClientState              string
	ExpiresAt                time.Time
	// ImmutableIDs is true when it was created with Prefer: IdType="ImmutableId".
	ImmutableIDs bool
	// LatestSupportedTLSVersion is as requested (default v1_2).
	LatestSupportedTLSVersion string
	// Paused is true while it waits for reauthorization.
	Paused bool
}

// Subscriptions returns the active (unexpired) subscriptions, oldest first.
func (s *Server) Subscriptions() []Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	var out []Subscription
	for _, sub := range s.sortedSubsLocked() {
		if !sub.expires.After(now) {
			continue
		}
		out = append(out, Subscription{ID: sub.id, Resource: sub.resource, ChangeType: sub.changeType,
			NotificationURL: sub.notificationURL, LifecycleNotificationURL: sub.lifecycleURL,
			ClientState: sub.clientState, ExpiresAt: sub.expires, ImmutableIDs: sub.immutable,
			LatestSupportedTLSVersion: sub.tls, Paused: sub.paused})
	}
	return out
}

// sortedSubsLocked returns subscriptions in creation order; s.mu must be held.
func (s *Server) sortedSubsLocked() []*subscription {
	out := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		out = append(out, sub)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].order < out[j].order })
	return out
}

// activeSubLocked returns the subscription if it exists and has not expired;
// expired ones are forgotten.
func (s *Server) activeSubLocked(id string) *subscription {
	sub := s.subs[id]
	if sub == nil {
		return nil
	}
	if !sub.expires.After(s.nowLocked()) {
		delete(s.subs, id)
		return nil
	}
	return sub
}

type subscriptionBody struct {
	ChangeType                *string `json:"changeType"`
	NotificationURL           *string `json:"notificationUrl"`
	LifecycleNotificationURL  *string `json:"lifecycleNotificationUrl"`
	Resource                  *string `json:"resource"`
	ExpirationDateTime        *string `json:"expirationDateTime"`
	ClientState               *string `json:"clientState"`
	LatestSupportedTLSVersion *string `json:"latestSupportedTlsVersion"`
	IncludeResourceData       *bool   `json:"includeResourceData"`
	EncryptionCertificate     *string `json:"encryptionCertificate"`
	EncryptionCertificateID   *string `json:"encryptionCertificateId"`
	ODataType                 *string `json:"@odata.type"`
}

func str(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// resourcePattern matches the mail resources Graph accepts for subscriptions.
var resourcePattern = regexp.MustCompile(`(?i)^/?(users|me)(?:/([^/]+))?(?:/mailfolders(?:\('([^']+)'\)|/([^/]+)))?/messages$`)

// parseResource resolves a subscription resource to a mailbox and folder.
func (s *Server) parseResourceLocked(res string) (mb *mailbox, folderID string, status int, code, msg string) {
	m := resourcePattern.FindStringSubmatch(strings.TrimSpace(res))
	if m == nil {
		return nil, "", http.StatusBadRequest, "InvalidRequest", "Resource '" + res + "' is not supported."
	}
	if strings.EqualFold(m[1], "me") {
		if m[2] != "" && !strings.EqualFold(m[2], "mailFolders") {
			return nil, "", http.StatusBadRequest, "InvalidRequest", "Resource '" + res + "' is not supported."
		}
		return nil, "", http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow."
	}
	user, err := url.PathUnescape(m[2])
	if err != nil || user == "" {
		return nil, "", http.StatusBadRequest, "InvalidRequest", "Resource '" + res + "' is not supported."
	}
	mb = s.mailboxLocked(user)
	if mb == nil {
		return nil, "", http.StatusNotFound, "ExtensionError", "Operation: Create; Exception: [Status Code: NotFound; Reason: The requested user '" + user + "' is invalid.]"
	}
	if mb.access.level() == AccessNone {
		return nil, "", http.StatusForbidden, "ExtensionError", "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]"
	}
	fname := m[3]
	if fname == "" {
		fname = m[4]
	}
	if fname != "" {
		f := mb.folderByIDOrWellKnown(fname)
		if f == nil {
			return nil, "", http.StatusNotFound, "ExtensionError", "Operation: Create; Exception: [Status Code: NotFound; Reason: The specified folder could not be found in the store.]"
		}
		folderID = f.id
	}
	return mb, folderID, 0, "", ""
}

func validChangeTypes(ct string) ([]string, bool) {
	var out []string
	for _, p := range strings.Split(ct, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		switch p {
		case "created", "updated", "deleted":
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		default:
			return nil, false
		}
	}
	return out, len(out) > 0
}

func (s *Server) checkURL(field, raw string) (string, bool) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return field + " '" + raw + "' is not a valid absolute URL.", false
	}
	if u.Scheme != "https" && !(s.opts.AllowHTTP && u.Scheme == "http") {
		return "Subscription " + field + " must be an HTTPS URL.", false
	}
	return "", true
}

// parseExpiry applies the 45-minute floor and the configured maximum.
func (s *Server) parseExpiry(raw string, now time.Time) (time.Time, int, string, string) {
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, http.StatusBadRequest, "InvalidRequest", "expirationDateTime '" + raw + "' is not a valid DateTimeOffset."
	}
	t = t.UTC()
	if !t.After(now) {
		return time.Time{}, http.StatusBadRequest, "InvalidRequest", "Subscription expiration date time must be in the future."
	}
	if t.Before(now.Add(45 * time.Minute)) {
		t = now.Add(45 * time.Minute)
	}
	if t.After(now.Add(s.opts.MaxExpiry)) {
		return time.Time{}, http.StatusBadRequest, "ExtensionError",
			fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(s.opts.MaxExpiry/time.Minute))
	}
	return t, 0, "", ""
}

func (s *Server) createSubscription(w http.ResponseWriter, r *http.Request, body []byte) {
	var in subscriptionBody
	if err := json.Unmarshal(body, &in); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	switch {
	case str(in.ChangeType) == "":
		writeError(w, http.StatusBadRequest, "InvalidRequest", "The property 'changeType' is required.")
		return
	case str(in.NotificationURL) == "":
		writeError(w, http.StatusBadRequest, "InvalidRequest", "The property 'notificationUrl' is required.")
		return
	case str(in.Resource) == "":
		writeError(w, http.StatusBadRequest, "InvalidRequest", "The property 'resource' is required.")
		return
	case str(in.ExpirationDateTime) == "":
		writeError(w, http.StatusBadRequest, "InvalidRequest", "The property 'expirationDateTime' is required.")
		return
	}
	types, ok := validChangeTypes(*in.ChangeType)
	if !ok {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "Invalid changeType '"+*in.ChangeType+"'. Allowed values are created, updated and deleted.")
		return
	}
	if msg, ok := s.checkURL("notificationUrl", *in.NotificationURL); !ok {
		writeError(w, http.StatusBadRequest, "InvalidRequest", msg)
		return
	}
	lifecycle := str(in.LifecycleNotificationURL)
	if lifecycle != "" {
		if msg, ok := s.checkURL("lifecycleNotificationUrl", lifecycle); !ok {
			writeError(w, http.StatusBadRequest, "InvalidRequest", msg)
			return
		}
	}
	if n := len([]rune(str(in.ClientState))); n > 128 {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "clientState has exceeded the maximum allowed length of 128 characters.")
		return
	}
	tls := str(in.LatestSupportedTLSVersion)
	if tls == "" {
		tls = "v1_2"
	}
	if !slices.Contains([]string{"v1_0", "v1_1", "v1_2", "v1_3"}, tls) {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "Invalid latestSupportedTlsVersion '"+tls+"'.")
		return
	}
	if in.IncludeResourceData != nil && *in.IncludeResourceData {
		if str(in.EncryptionCertificate) == "" || str(in.EncryptionCertificateID) == "" {
			writeError(w, http.StatusBadRequest, "InvalidRequest", "encryptionCertificate and encryptionCertificateId are required when includeResourceData is true.")
			return
		}
		writeError(w, http.StatusBadRequest, "InvalidRequest", "Rich notifications (includeResourceData) are not simulated.")
		return
	}
	immutable := preferImmutable(r)

	s.mu.Lock()
	now := s.nowLocked()
	expires, st, code, msg := s.parseExpiry(*in.ExpirationDateTime, now)
	if st == 0 {
		var mb *mailbox
		var folderID string
		mb, folderID, st, code, msg = s.parseResourceLocked(*in.Resource)
		if st == 0 {
			st, code, msg = s.checkQuotaLocked(mb, folderID, types, now)
		}
	}
	s.mu.Unlock()
	if st != 0 {
		writeError(w, st, code, msg)
		return
	}

	// The handshake runs before the subscription exists, outside the lock.
	if err := s.handshake(r.Context(), *in.NotificationURL); err != nil {
		writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
		return
	}
	if lifecycle != "" {
		if err := s.handshake(r.Context(), lifecycle); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
			return
		}
	}

	s.mu.Lock()
	now = s.nowLocked()
	mb, folderID, st, code, msg := s.parseResourceLocked(*in.Resource)
	if st == 0 {
		st, code, msg = s.checkQuotaLocked(mb, folderID, types, now)
	}
	if st != 0 {
		s.mu.Unlock()
		writeError(w, st, code, msg)
		return
	}
	s.seq++
	sub := &subscription{
		id: newGUID(), appID: s.opts.AppID, resource: *in.Resource, mailboxID: mb.id, folderID: folderID,
		changeTypes: types, changeType: strings.Join(types, ","), notificationURL: *in.NotificationURL,
		lifecycleURL: lifecycle, clientState: str(in.ClientState), expires: expires, immutable: immutable,
		tls: tls, order: fmt.Sprintf("%020d", s.seq),
	}
	s.subs[sub.id] = sub
	out := s.subJSON(sub, true)
	s.mu.Unlock()
	out["@odata.context"] = externalBase(r) + "/v1.0/$metadata#subscriptions/$entity"
	writeJSON(w, http.StatusCreated, out)
}

// checkQuotaLocked returns 409 for a duplicate and 403 past the per-mailbox quota.
func (s *Server) checkQuotaLocked(mb *mailbox, folderID string, types []string, now time.Time) (int, string, string) {
	count := 0
	want := slices.Sorted(slices.Values(types))
	for _, sub := range s.sortedSubsLocked() {
		if !sub.expires.After(now) || sub.mailboxID != mb.id {
			continue
		}
		count++
		if sub.appID == s.opts.AppID && sub.folderID == folderID && slices.Equal(slices.Sorted(slices.Values(sub.changeTypes)), want) {
			return http.StatusConflict, "ExtensionError", "Subscription Id " + sub.id + " already exists for the requested combination"
		}
	}
	if count >= s.opts.MaxSubscriptionsPerMailbox {
		return http.StatusForbidden, "ExtensionError", fmt.Sprintf("Operation: Create; Exception: [Status Code: Forbidden; Reason: Number of subscriptions exceeds the limit of %d for this mailbox.]", s.opts.MaxSubscriptionsPerMailbox)
	}
	return 0, "", ""
}

func preferImmutable(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "IdType") && strings.EqualFold(strings.Trim(strings.TrimSpace(val), `"`), "ImmutableId") {
				return true
			}
		}
	}
	return false
}

// subJSON renders a subscription; clientState only when withState.
func (s *Server) subJSON(sub *subscription, withState bool) map[string]any {
	out := map[string]any{
		"id": sub.id, "resource": sub.resource, "applicationId": sub.appID, "changeType": sub.changeType,
		"clientState": nil, "notificationUrl": sub.notificationURL,
		"notificationQueryOptions": nil, "lifecycleNotificationUrl": nullable(sub.lifecycleURL),
		"expirationDateTime": sub.expires.Format(graphTime), "creatorId": s.opts.AppID,
		"includeResourceData": nil, "latestSupportedTlsVersion": sub.tls, "encryptionCertificate": nil,
		"encryptionCertificateId": nil, "notificationUrlAppId": nil, "notificationContentType": "application/json",
	}
	if withState {
		out["clientState"] = nullable(sub.clientState)
	}
	return out
}

// validationError is a failed handshake, worded as Graph words it.
type validationError struct{ msg string }

func (e *validationError) Error() string { return e.msg }

// handshake performs Graph's validation request against one URL.
func (s *Server) handshake(ctx context.Context, target string) error {
	token := "Validation: Testing client application reachability for subscription Request-Id: " + newGUID()
	u, err := url.Parse(target)
	if err != nil {
		return &validationError{"Subscription validation request failed. Notification URL is invalid."}
	}
	q := u.RawQuery
	if q != "" {
		q += "&"
	}
	u.RawQuery = q + "validationToken=" + url.QueryEscape(token)
	ctx, cancel := context.WithTimeout(ctx, s.opts.ValidationTimeout)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), http.NoBody)
	if err != nil {
		return &validationError{"Subscription validation request failed. Notification URL is invalid."}
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &validationError{"Subscription validation request timed out."}
		}
		return &validationError{"Subscription validation request failed. Exception: " + err.Error()}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return &validationError{"Subscription validation request timed out."}
		}
		return &validationError{"Subscription validation request failed. Exception: " + err.Error()}
	}
	if resp.StatusCode != http.StatusOK {
		return &validationError{fmt.Sprintf("Subscription validation request failed. HTTP status code is '%s'.", strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", ""))}
	}
	if ct := strings.ToLower(resp.Header.Get("Content-Type")); !strings.HasPrefix(ct, "text/plain") {
		return &validationError{"Subscription validation request failed. Response must be of content type 'text/plain'."}
	}
	if string(data) != token {
		return &validationError{"Subscription validation request failed. Must respond with 200 OK to this request with the decoded validation token in the body."}
	}
	return nil
}

func (s *Server) getSubscription(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sub := s.activeSubLocked(id)
	if sub == nil {
		s.mu.Unlock()
		subNotFound(w, id)
		return
	}
	out := s.subJSON(sub, false)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func subNotFound(w http.ResponseWriter, id string) {
	writeError(w, http.StatusNotFound, "ResourceNotFound", "The object was not found.")
}

func (s *Server) updateSubscription(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		writeError(w, http.StatusBadRequest, "BadRequest", "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.")
		return
	}
	var in subscriptionBody
	_ = json.Unmarshal(body, &in)
	for k := range raw {
		switch k {
		case "expirationDateTime", "notificationUrl", "@odata.type":
		case "lifecycleNotificationUrl":
			writeError(w, http.StatusBadRequest, "InvalidRequest", "lifecycleNotificationUrl cannot be updated; delete and recreate the subscription.")
			return
		default:
			writeError(w, http.StatusBadRequest, "InvalidRequest", "Only expirationDateTime and notificationUrl can be updated; '"+k+"' cannot.")
			return
		}
	}
	newURL := str(in.NotificationURL)
	if newURL != "" {
		if msg, ok := s.checkURL("notificationUrl", newURL); !ok {
			writeError(w, http.StatusBadRequest, "InvalidRequest", msg)
			return
		}
	}
	s.mu.Lock()
	sub := s.activeSubLocked(id)
	if sub == nil {
		s.mu.Unlock()
		subNotFound(w, id)
		return
	}
	var expires time.Time
	if in.ExpirationDateTime != nil {
		var st int
		var code, msg string
		expires, st, code, msg = s.parseExpiry(*in.ExpirationDateTime, s.nowLocked())
		if st != 0 {
			s.mu.Unlock()
			writeError(w, st, code, msg)
			return
		}
	}
	s.mu.Unlock()
	if newURL != "" {
		if err := s.handshake(r.Context(), newURL); err != nil {
			writeError(w, http.StatusBadRequest, "InvalidRequest", err.Error())
			return
		}
	}
	s.mu.Lock()
	sub = s.activeSubLocked(id)
	if sub == nil {
		s.mu.Unlock()
		subNotFound(w, id)
		return
	}
	if !expires.IsZero() {
		sub.expires = expires
	}
	if newURL != "" {
		sub.notificationURL = newURL
	}
	held := s.resumeLocked(sub)
	out := s.subJSON(sub, false)
	s.mu.Unlock()
	s.dispatch(held)
	out["@odata.context"] = externalBase(r) + "/v1.0/$metadata#subscriptions/$entity"
	writeJSON(w, http.StatusOK, out)
}

// resumeLocked ends a reauthorization pause and returns the held notes.
func (s *Server) resumeLocked(sub *subscription) []pendingNote {
	sub.paused = false
	held := sub.held
	sub.held = nil
	for i := range held {
		held[i].url = sub.notificationURL
	}
	return held
}

func (s *Server) deleteSubscription(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sub := s.activeSubLocked(id)
	if sub == nil {
		s.mu.Unlock()
		subNotFound(w, id)
		return
	}
	delete(s.subs, id)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) reauthorize(w http.ResponseWriter, id string) {
	s.mu.Lock()
	sub := s.activeSubLocked(id)
	if sub == nil {
		s.mu.Unlock()
		subNotFound(w, id)
		return
	}
	held := s.resumeLocked(sub)
	s.mu.Unlock()
	s.dispatch(held)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	offset := 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		raw, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(string(raw))
		if err != nil || err2 != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "InvalidRequest", "The $skiptoken is not valid.")
			return
		}
		offset = n
	} else if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, "InvalidRequest", "OData query options are not supported on subscriptions.")
		return
	}
	s.mu.Lock()
	now := s.nowLocked()
	var all []map[string]any
	for _, sub := range s.sortedSubsLocked() {
		if sub.expires.After(now) && sub.appID == s.opts.AppID {
			all = append(all, s.subJSON(sub, false))
		}
	}
	s.mu.Unlock()
	page := []map[string]any{}
	if offset < len(all) {
		end := min(offset+s.opts.PageSize, len(all))
		page = all[offset:end]
	}
	out := map[string]any{"@odata.context": externalBase(r) + "/v1.0/$metadata#subscriptions", "value": page}
	if offset+s.opts.PageSize < len(all) {
		out["@odata.nextLink"] = externalBase(r) + "/v1.0/subscriptions?$skiptoken=" + base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset+s.opts.PageSize)))
	}
	writeJSON(w, http.StatusOK, out)
}
