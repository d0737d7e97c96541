package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func TestConsolePageServesItsFiles(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(ConsolePage())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		path, file, contentType, mustContain string
	}{
		{"/", "console/index.html", "text/html; charset=utf-8", `<script src="console.js"`},
		{"/console.css", "console/console.css", "text/css; charset=utf-8", ".badge-failed"},
		{"/console.js", "console/console.js", "text/javascript; charset=utf-8", "/api/v1/reports"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			want, err := consoleFiles.ReadFile(tc.file)
			if err != nil || len(want) < 200 {
				t.Fatalf("embedded %s: %d bytes, %v", tc.file, len(want), err)
			}
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req, _ := http.NewRequest(method, srv.URL+tc.path, nil)
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s %s: %d", method, tc.path, resp.StatusCode)
				}
				checkHeaders(t, resp.Header, map[string]string{
					"Content-Type":            tc.contentType,
					"Content-Security-Policy": consoleCSP,
					"X-Content-Type-Options":  "nosniff",
					"Cache-Control":           "no-store",
					"Referrer-Policy":         "no-referrer",
					"X-Frame-Options":         "DENY",
				})
				if resp.ContentLength != int64(len(want)) {
					t.Errorf("%s %s: Content-Length %d, want %d", method, tc.path, resp.ContentLength, len(want))
				}
				switch {
				case method == http.MethodHead && len(body) != 0:
					t.Errorf("HEAD %s sent %d bytes of body", tc.path, len(body))
				case method == http.MethodGet && string(body) != string(want):
					t.Errorf("GET %s: the body is not the embedded file", tc.path)
				case method == http.MethodGet && !strings.Contains(string(body), tc.mustContain):
					t.Errorf("GET %s lacks %q", tc.path, tc.mustContain)
				}
			}
		})
	}
}

func checkHeaders(t *testing.T, h http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestConsoleCSPAllowsOnlyItself reads the policy the page is served with:
// everything from the page's own origin, nothing inline, nothing else.
func TestConsoleCSPAllowsOnlyItself(t *testing.T) {
	t.Parallel()
	directives := map[string]string{}
	for _, d := range strings.Split(consoleCSP, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = value
	}
	for name, want := range map[string]string{
		"default-src": "'self'", "script-src": "'self'", "style-src": "'self'", "connect-src": "'self'",
		"object-src": "'none'", "base-uri": "'none'", "frame-ancestors": "'none'", "form-action": "'none'",
		"require-trusted-types-for": "'script'",
	} {
		if got := directives[name]; got != want {
			t.Errorf("%s %q, want %q", name, got, want)
		}
	}
	for _, bad := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "data:", "*"} {
		if strings.Contains(consoleCSP, bad) {
			t.Errorf("the policy allows %s: %s", bad, consoleCSP)
		}
	}
}

func TestConsolePageAnswersNothingElse(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(ConsolePage())
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodGet, "/console/console.js", http.StatusNotFound},
		{http.MethodGet, "/console.js/", http.StatusNotFound},
		{http.MethodGet, "/console.JS", http.StatusNotFound},
		{http.MethodGet, "/favicon.ico", http.StatusNotFound},
		{http.MethodGet, "/api/v1/unknown", http.StatusNotFound},
		{http.MethodGet, "/consolepage.go", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/console.js", http.StatusMethodNotAllowed},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
		}
		if strings.Contains(string(body), "<") || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s answered %q (%s)", tc.method, tc.path, body, resp.Header.Get("Content-Type"))
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: headers %v", tc.method, tc.path, resp.Header)
		}
	}
}

// htmlSinks are the ways a script can turn a string into markup or code.
// The console builds its DOM from text nodes only: every value it shows
// comes from a reported email.
var htmlSinks = []struct {
	name string
	re   *regexp.Regexp
}{
	{"innerHTML", regexp.MustCompile(`(?i)innerHTML`)},
	{"outerHTML", regexp.MustCompile(`(?i)outerHTML`)},
	{"insertAdjacentHTML", regexp.MustCompile(`(?i)insertAdjacentHTML`)},
	{"document.write", regexp.MustCompile(`(?i)document\s*\.\s*write`)},
	{"eval", regexp.MustCompile(`\beval\b`)},
	{"new Function", regexp.MustCompile(`\bnew\s+Function\b`)},
	{"Function(", regexp.MustCompile(`\bFunction\s*\(`)},
	{"a timer given a string", regexp.MustCompile(`set(Timeout|Interval)\s*\(\s*['"` + "`" + `]`)},
	{"srcdoc", regexp.MustCompile(`(?i)srcdoc`)},
	{"createContextualFragment", regexp.MustCompile(`createContextualFragment`)},
	{"DOMParser", regexp.MustCompile(`DOMParser`)},
	{"parseHTMLUnsafe", regexp.MustCompile(`(?i)parseHTML|setHTML`)},
	{"javascript: URL", regexp.MustCompile(`(?i)javascript:`)},
	{"a style attribute", regexp.MustCompile(`setAttribute\s*\(\s*['"](style|on)`)},
}

// htmlSinksIn names the sinks found in a script.
func htmlSinksIn(js string) []string {
	var found []string
	for _, s := range htmlSinks {
		if s.re.MatchString(js) {
			found = append(found, s.name)
		}
	}
	return found
}

func TestConsoleScriptNeverParsesData(t *testing.T) {
	t.Parallel()
	// The check itself first: each of these must be caught.
	for _, bad := range []string{
		`row.innerHTML = r.subject;`, `td.outerHTML = x`, `el.insertAdjacentHTML('beforeend', s)`,
		`document.write(s)`, `document .write(s)`, `eval(s)`, `window['eval'](s)`, `new Function('return ' + s)`,
		`Function(s)()`, `setTimeout("refresh()", 10)`, "setInterval(`x`, 1)", `frame.srcdoc = s`,
		`range.createContextualFragment(s)`, `new DOMParser().parseFromString(s, 'text/html')`,
		`Document.parseHTMLUnsafe(s)`, `el.setHTML(s)`, `a.href = 'javascript:alert(1)'`,
		`el.setAttribute('onclick', s)`, `el.setAttribute("style", s)`,
	} {
		if len(htmlSinksIn(bad)) == 0 {
			t.Errorf("the check misses %q", bad)
		}
	}
	for _, good := range []string{`td.textContent = r.subject;`, `setTimeout(tick, POLL_MS)`, `a.href = url;`} {
		if found := htmlSinksIn(good); len(found) != 0 {
			t.Errorf("the check flags %q: %v", good, found)
		}
	}

	js, err := consoleFiles.ReadFile("console/console.js")
	if err != nil {
		t.Fatal(err)
	}
	if found := htmlSinksIn(string(js)); len(found) != 0 {
		t.Errorf("console.js uses %s: build the DOM with createElement and textContent", strings.Join(found, ", "))
	}
	if !strings.Contains(string(js), "textContent") || !strings.Contains(string(js), "createElement") {
		t.Error("console.js builds no DOM with createElement and textContent")
	}
	// A record link only from an http(s) URL.
	if !strings.Contains(string(js), `/^https?:\/\/`) {
		t.Error("console.js makes links without checking for an http(s) URL")
	}
}

// TestConsoleLoadsNothingFromElsewhere: no inline script or style, no
// event-handler attribute, no external origin in the three files.
func TestConsoleLoadsNothingFromElsewhere(t *testing.T) {
	t.Parallel()
	read := func(name string) string {
		b, err := consoleFiles.ReadFile("console/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	html, css, js := read("index.html"), read("console.css"), read("console.js")
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(html, -1)
	if len(scripts) != 1 {
		t.Fatalf("%d script elements, want 1", len(scripts))
	}
	if !strings.Contains(scripts[0][1], `src="console.js"`) || strings.TrimSpace(scripts[0][2]) != "" {
		t.Errorf("the page's script is not console.js alone: %q", scripts[0][0])
	}
	for _, bad := range []struct{ name, re, text string }{
		{"an event-handler attribute", `(?i)\son[a-z]+\s*=`, html},
		{"a style attribute or element", `(?i)\sstyle\s*=|<style`, html},
		{"an external or protocol-relative URL", `(?i)(src|href|action)\s*=\s*["']?(https?:)?//`, html},
		{"a URL in the style sheet", `(?i)url\s*\(|@import`, css},
		{"an absolute URL", `(?i)https?://`, html + css + js},
		{"a request to another origin", `(?i)fetch\s*\(\s*['"]?(https?:)?//`, js},
	} {
		if regexp.MustCompile(bad.re).MatchString(bad.text) {
			t.Errorf("the console has %s", bad.name)
		}
	}
}
