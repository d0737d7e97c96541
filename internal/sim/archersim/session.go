package archersim

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// loginRequest binds the login body; encoding/json matches the keys without
// regard to case, like Archer's .NET model binder.
type loginRequest struct {
	InstanceName string
	Username     string
	UserDomain   string
	Password     string
}

// sessionContext is the login answer's RequestedObject. SessionToken comes
// first so that the response starts with the 47-character prefix the Archer
// documentation's VBScript sample relies on.
type sessionContext struct {
	SessionToken string `json:"SessionToken"`
}

func (s *Server) handleLogin(req *apiRequest) {
	if req.method != http.MethodPost {
		writeJSON(req.w, http.StatusMethodNotAllowed, map[string]any{"Message": fmt.Sprintf("The requested resource does not support http method '%s'.", req.method)})
		return
	}
	var in loginRequest
	if err := json.Unmarshal(req.body, &in); err != nil {
		writeWrapperError(req.w, http.StatusOK, "SecurityController", "ValidationMessageTemplates:LoginNotValid", "")
		return
	}
	s.mu.Lock()
	want, known := s.opts.Users[in.Username]
	valid := known && in.Username != "" && want == in.Password && strings.EqualFold(in.InstanceName, s.opts.Instance)
	if !valid {
		s.mu.Unlock()
		writeWrapperError(req.w, http.StatusOK, "SecurityController", "ValidationMessageTemplates:LoginNotValid", "")
		return
	}
	if s.opts.SingleSession {
		for tok, sess := range s.sessions {
			if sess.user == in.Username {
				delete(s.sessions, tok)
			}
		}
	}
	tok := newToken()
	s.sessions[tok] = &session{token: tok, user: in.Username, lastUsed: s.clock()}
	s.loginCount++
	s.mu.Unlock()
	writeJSON(req.w, http.StatusOK, ok(sessionContext{SessionToken: tok}))
}

func (s *Server) handleLogout(req *apiRequest) {
	if req.method != http.MethodPost {
		writeJSON(req.w, http.StatusMethodNotAllowed, map[string]any{"Message": fmt.Sprintf("The requested resource does not support http method '%s'.", req.method)})
		return
	}
	var in struct{ Value string }
	if err := json.Unmarshal(req.body, &in); err != nil || in.Value == "" {
		writeWrapperError(req.w, http.StatusOK, "SecurityController", "ValidationMessageTemplates:InvalidSessionToken", "The session token to log out is missing.")
		return
	}
	s.mu.Lock()
	if sess := s.sessions[in.Value]; sess != nil && sess.user == req.user {
		delete(s.sessions, in.Value)
	}
	s.mu.Unlock()
	writeJSON(req.w, http.StatusOK, ok(nil))
}
