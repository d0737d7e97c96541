package server

import (
	"context"
	"net/http"
	"time"
)

type componentStatus struct {
	Status string `json:"status"`
	Detail string `json:"detail,omitempty"`
}

type readiness struct {
	Status     string                     `json:"status"`
	Components map[string]componentStatus `json:"components"`
}

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
}

// readiness runs every readiness check with a short deadline.
func (s *Server) readiness(ctx context.Context) readiness {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	out := readiness{Status: "ready", Components: map[string]componentStatus{}}
	for _, c := range s.opts.Checks {
		detail, err := c.Fn(ctx)
		if err != nil {
			out.Status = "not ready"
			if detail == "" {
				detail = err.Error()
			}
			out.Components[c.Name] = componentStatus{Status: "fail", Detail: detail}
			continue
		}
		out.Components[c.Name] = componentStatus{Status: "ok", Detail: detail}
	}
	return out
}

// handleReadyz answers 200 when every readiness check passes, 503
// otherwise, with each component's state.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	out := s.readiness(r.Context())
	status := http.StatusOK
	if out.Status != "ready" {
		status = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, out)
}
