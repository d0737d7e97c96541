package graphsim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// serveGraph authenticates, records, throttles and routes a /v1.0 request.
func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("request-id", newGUID())
	body, berr := readBody(r, maxRequestBody)
	s.record(r, body)
	// A Reset fault lets the request be handled, swallows the answer and
	// then aborts the connection (HTTP/1.1) or the stream (HTTP/2).
	rs := &resetState{}
	r = r.WithContext(context.WithValue(r.Context(), resetKey{}, rs))
	w = &resetWriter{ResponseWriter: w, state: rs}
	defer func() {
		if rs.reset {
			panic(http.ErrAbortHandler)
		}
	}()
	g, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if berr != nil {
		if errors.Is(berr, errBodyTooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large.")
			return
		}
		writeError(w, http.StatusBadRequest, "BadRequest", "The request body could not be read: "+berr.Error())
		return
	}
	s.mu.Lock()
	reject := s.gzip415 && strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip")
	s.mu.Unlock()
	if reject {
		writeError(w, http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Encoding gzip is not supported.")
		return
	}
	segs, ok := splitPath(strings.TrimPrefix(r.URL.EscapedPath(), "/v1.0/"))
	if !ok || len(segs) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "Invalid request path.")
		return
	}
	switch strings.ToLower(segs[0]) {
	case "subscriptions":
		s.routeSubscriptions(w, r, segs[1:], body)
	case "users":
		if len(segs) < 3 {
			writeError(w, http.StatusBadRequest, "BadRequest", "Unsupported request: a user and a resource are required.")
			return
		}
		s.routeUser(w, r, g, segs[1], segs[2:], body)
	case "me":
		writeError(w, http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+segs[0]+"'.")
	}
}

// splitPath splits an escaped path and unescapes each segment, so ids with
// encoded characters ('=', '/', '+') survive.
func splitPath(p string) ([]string, bool) {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil, true
	}
	raw := strings.Split(p, "/")
	out := make([]string, 0, len(raw))
	for _, seg := range raw {
		v, err := url.PathUnescape(seg)
		if err != nil || v == "" {
			return nil, false
		}
		out = append(out, v)
	}
	return out, true
}

// withFault applies an injected fault for the route; it reports whether
// the request was answered.
func (s *Server) withFault(w http.ResponseWriter, r *http.Request, route Route, mailboxID string) bool {
	if f := s.fault(route, mailboxID); f != nil {
		return s.applyFault(w, r, f)
	}
	return false
}

func (s *Server) routeSubscriptions(w http.ResponseWriter, r *http.Request, rest []string, body []byte) {
	var route Route
	switch {
	case len(rest) == 0 && r.Method == http.MethodPost:
		route = RouteCreateSubscription
	case len(rest) == 0 && r.Method == http.MethodGet:
		route = RouteListSubscriptions
	case len(rest) == 1 && r.Method == http.MethodGet:
		route = RouteGetSubscription
	case len(rest) == 1 && r.Method == http.MethodPatch:
		route = RouteUpdateSubscription
	case len(rest) == 1 && r.Method == http.MethodDelete:
		route = RouteDeleteSubscription
	case len(rest) == 2 && strings.EqualFold(rest[1], "reauthorize") && r.Method == http.MethodPost:
		route = RouteReauthorize
	default:
		writeError(w, http.StatusMethodNotAllowed, "BadRequest", "The request method or segment is not supported on subscriptions.")
		return
	}
	if s.withFault(w, r, route, "") || !s.admitSubscriptionCall(w, route) {
		return
	}
	switch route {
	case RouteCreateSubscription:
		s.createSubscription(w, r, body)
	case RouteListSubscriptions:
		s.listSubscriptions(w, r)
	case RouteGetSubscription:
		s.getSubscription(w, rest[0])
	case RouteUpdateSubscription:
		s.updateSubscription(w, r, rest[0], body)
	case RouteDeleteSubscription:
		s.deleteSubscription(w, rest[0])
	case RouteReauthorize:
		s.reauthorize(w, rest[0])
	}
}

// folderSegment reads "mailFolders('x')" or "mailFolders" followed by "x".
func folderSegment(segs []string) (name string, consumed int, ok bool) {
	if len(segs) == 0 {
		return "", 0, false
	}
	head := segs[0]
	lower := strings.ToLower(head)
	if strings.HasPrefix(lower, "mailfolders('") && strings.HasSuffix(head, "')") {
		return head[len("mailFolders('") : len(head)-2], 1, true
	}
	if lower == "mailfolders" {
		if len(segs) < 2 {
			return "", 1, true
		}
		return segs[1], 2, true
	}
	return "", 0, false
}

func (s *Server) routeUser(w http.ResponseWriter, r *http.Request, g grant, user string, rest []string, body []byte) {
	s.mu.Lock()
	mb := s.mailboxLocked(user)
	var mbID string
	var access Access
	if mb != nil {
		mbID, access = mb.id, mb.access
	}
	s.mu.Unlock()
	if mb == nil {
		writeError(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+user+"' is invalid.")
		return
	}
	release := s.admit(w, mbID)
	if release == nil {
		return
	}
	// The request stops counting as in flight once its answer starts, so
	// a client that saw the response may send the next one at once.
	var once sync.Once
	done := func() { once.Do(release) }
	defer done()
	w = &releaseOnWrite{ResponseWriter: w, release: done}
	if access.level() == AccessNone {
		writeError(w, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
		return
	}
	if len(rest) == 1 && isSendMailSegment(rest[0]) {
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "sendMail supports POST only.")
			return
		}
		if s.withFault(w, r, RouteSendMail, mbID) {
			return
		}
		if !access.canSend() || !g.hasRole("Mail.Send") {
			// What Graph answers an application without Mail.Send, in
			// its token or for this mailbox (AzureCAT-GSI/DevCamp#44,
			// msgraph-sdk-php#1204).
			writeError(w, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
			return
		}
		s.sendMail(w, r, mb, body)
		return
	}

	folderName := ""
	if name, n, ok := folderSegment(rest); ok {
		if n == 1 && name == "" {
			// GET users/{u}/mailFolders
			if len(rest) == 1 && r.Method == http.MethodGet {
				if !s.withFault(w, r, RouteListFolders, mbID) {
					s.listFolders(w, r, mb)
				}
				return
			}
			writeError(w, http.StatusBadRequest, "BadRequest", "Unsupported request on mailFolders.")
			return
		}
		folderName = name
		rest = rest[n:]
		if len(rest) == 0 {
			if r.Method == http.MethodGet && !s.withFault(w, r, RouteGetFolder, mbID) {
				s.getFolder(w, r, mb, folderName)
			} else if r.Method != http.MethodGet {
				writeError(w, http.StatusMethodNotAllowed, "BadRequest", "Unsupported method on a mail folder.")
			}
			return
		}
	}
	if len(rest) == 0 || !strings.EqualFold(rest[0], "messages") {
		writeError(w, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+strings.Join(rest, "/")+"'.")
		return
	}
	rest = rest[1:]
	if len(rest) == 1 && (strings.EqualFold(rest[0], "delta") || strings.EqualFold(rest[0], "delta()")) {
		if folderName == "" {
			writeError(w, http.StatusBadRequest, "BadRequest", "Change tracking is not supported on users/messages; use a mail folder.")
			return
		}
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "BadRequest", "Delta supports GET only.")
			return
		}
		if !s.withFault(w, r, RouteDelta, mbID) {
			s.delta(w, r, mb, folderName)
		}
		return
	}
	if len(rest) == 0 {
		writeError(w, http.StatusBadRequest, "BadRequest", "Listing messages is not simulated; use delta.")
		return
	}
	id := rest[0]
	rest = rest[1:]
	var route Route
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		route = RouteGetMessage
	case len(rest) == 0 && r.Method == http.MethodPatch:
		route = RouteUpdateMessage
	case len(rest) == 0 && r.Method == http.MethodDelete:
		route = RouteDeleteMessage
	case len(rest) == 1 && rest[0] == "$value" && r.Method == http.MethodGet:
		route = RouteGetMIME
	case len(rest) == 1 && strings.EqualFold(rest[0], "attachments") && r.Method == http.MethodGet:
		route = RouteListAttachments
	case len(rest) >= 2 && strings.EqualFold(rest[0], "attachments") && r.Method == http.MethodGet:
		route = RouteGetAttachment
	case len(rest) == 1 && strings.EqualFold(rest[0], "move") && r.Method == http.MethodPost:
		route = RouteMoveMessage
	default:
		writeError(w, http.StatusBadRequest, "BadRequest", "Unsupported request on a message.")
		return
	}
	if s.withFault(w, r, route, mbID) {
		return
	}
	if (route == RouteUpdateMessage || route == RouteMoveMessage || route == RouteDeleteMessage) && access.level() != AccessReadWrite {
		writeError(w, http.StatusForbidden, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
		return
	}
	switch route {
	case RouteGetMessage:
		s.getMessage(w, r, mb, folderName, id)
	case RouteUpdateMessage:
		s.patchMessage(w, r, mb, folderName, id, body)
	case RouteDeleteMessage:
		s.deleteMessage(w, mb, folderName, id)
	case RouteGetMIME:
		s.getMIME(w, mb, folderName, id)
	case RouteListAttachments:
		s.listAttachments(w, r, mb, folderName, id)
	case RouteGetAttachment:
		s.getAttachment(w, r, mb, folderName, id, rest[1:])
	case RouteMoveMessage:
		s.moveMessage(w, r, mb, folderName, id, body)
	}
}

// releaseOnWrite calls release when the response header is written.
type releaseOnWrite struct {
	http.ResponseWriter
	release func()
}

func (w *releaseOnWrite) WriteHeader(code int) {
	w.release()
	w.ResponseWriter.WriteHeader(code)
}

func (w *releaseOnWrite) Write(p []byte) (int, error) {
	w.release()
	return w.ResponseWriter.Write(p)
}
