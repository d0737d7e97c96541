package server

import (
	"embed"
	"net/http"
	"strconv"
)

// consoleFiles are the operator console's page, style sheet and script.
//
//go:embed console/index.html console/console.css console/console.js
var consoleFiles embed.FS

// consoleCSP allows the page its own script, style sheet and API calls and
// nothing else: no inline script or style, no other origin, no framing,
// and Trusted Types so that no string can reach an HTML sink.
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; " +
	"require-trusted-types-for 'script'; trusted-types 'none'"

// consoleAssets maps each served path to its embedded file and content type.
var consoleAssets = map[string]struct{ file, contentType string }{
	"/":            {"console/index.html", "text/html; charset=utf-8"},
	"/console.css": {"console/console.css", "text/css; charset=utf-8"},
	"/console.js":  {"console/console.js", "text/javascript; charset=utf-8"},
}

// ConsolePage serves the operator console: the page at /, its style sheet
// at /console.css and its script at /console.js, all embedded in the
// binary. It is meant to be mounted at the root of the admin listener,
// outside the admin token check: the page holds no data and asks for the
// token itself when the API answers 401. Every other path is 404, every
// method but GET and HEAD 405.
func ConsolePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		asset, ok := consoleAssets[r.URL.Path]
		if !ok {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no such route"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed"})
			return
		}
		data, err := consoleFiles.ReadFile(asset.file)
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, errorBody{Error: "console asset missing"})
			return
		}
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Type", asset.contentType)
		h.Set("Content-Length", strconv.Itoa(len(data)))
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(data)
		}
	})
}
