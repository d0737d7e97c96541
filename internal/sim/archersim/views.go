package archersim

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// recordsPagePolicy is the Content-Security-Policy of /sim/records. It
// allows no script, no remote resource of any kind, inline styles, data:
// images and same-origin frames. The rich text frames are srcdoc documents,
// which inherit the policy of the page that embeds them (CSP's srcdoc rule,
// W3C webappsec ISSUE-15, resolved "srcdoc inherits parent's policy"; the
// HTML standard clones the parent's policy container for about:srcdoc, and
// the web-platform-tests under content-security-policy/inheritance/ check
// it). So a value's <script> does not run, its remote <img> does not load
// and its links cannot navigate the frame away, while its markup renders.
const recordsPagePolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'"

// recordsPageHead opens the page; it holds no value from a record.
const recordsPageHead = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Simulated Archer records</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em;width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3;width:14em}
th small{font-weight:normal;color:#666}pre{margin:0;white-space:pre-wrap}
iframe{width:100%;border:1px dashed #bbb;background:#fff}</style></head><body>
<h1>Simulated Archer records</h1>
`

// richFrameStyle styles the document inside a rich text frame.
const richFrameStyle = `<style>body{font-family:sans-serif;font-size:14px;margin:4px;overflow-wrap:anywhere}</style>`

// serveRecordsHTML renders every record, newest first, with its Created
// and Updated times and every active field of its level by name, empty
// ones included. Text fields whose display control is a rich text area are
// rendered as Archer renders them, their stored HTML interpreted, but
// inside a sandboxed frame (no allow-scripts, no allow-same-origin) under
// the page's strict policy; every other value, single-line text included,
// is shown as text.
// The page is written with html.EscapeString, not a template engine, so the
// package executes no template.
func (s *Server) serveRecordsHTML(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only view", http.StatusMethodNotAllowed)
		return
	}
	recs := s.Records()
	var b strings.Builder
	b.WriteString(recordsPageHead)
	fmt.Fprintf(&b, "<p>%d record(s). Read-only; the same data, raw, is at <a href=\"records.json\">records.json</a>. Rich text fields are shown as Archer renders them, in sandboxed frames.</p>\n", len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		s.writeRecordHTML(&b, recs[i])
	}
	b.WriteString("</body></html>\n")

	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", recordsPagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	_, _ = io.WriteString(w, b.String())
}

// writeRecordHTML writes one record's section: its Created and Updated
// times, then every active field of its level in the fixture's order, as
// Archer's record page lists the fields of its layout, an empty field
// marked as such. The metadata it reads is immutable, so no lock is needed.
func (s *Server) writeRecordHTML(b *strings.Builder, rec Record) {
	level := s.md.levels[rec.LevelID]
	esc := html.EscapeString
	fmt.Fprintf(b, "<section><h2>%s #%d</h2>\n<table>\n", esc(rec.Level), rec.ID)
	fmt.Fprintf(b, "<tr><th>Created</th><td>%s</td></tr>\n", esc(rec.Created.Format("2006-01-02 15:04:05 MST")))
	fmt.Fprintf(b, "<tr><th>Updated</th><td>%s</td></tr>\n", esc(rec.Updated.Format("2006-01-02 15:04:05 MST")))
	for _, n := range fieldNames(level, rec) {
		v, set := rec.Fields[n]
		if !set {
			fmt.Fprintf(b, "<tr><th>%s</th><td><small>empty</small></td></tr>\n", esc(n))
			continue
		}
		text, isText := v.(string)
		if isText && level != nil && level.richText[n] {
			fmt.Fprintf(b, "<tr><th>%s <small>(rich text)</small></th><td>", esc(n))
			writeRichFrame(b, n, text)
			b.WriteString("</td></tr>\n")
			continue
		}
		fmt.Fprintf(b, "<tr><th>%s</th><td><pre>%s</pre></td></tr>\n", esc(n), esc(display(v)))
	}
	b.WriteString("</table></section>\n")
}

// fieldNames lists the names of the level's active fields in the fixture's
// order, each once (Records keys values by name, a later field of the same
// name winning), then, sorted, any name of the record the level does not
// define.
func fieldNames(level *levelMeta, rec Record) []string {
	seen := map[string]bool{}
	var names []string
	if level != nil {
		for _, fm := range level.fields {
			if fm.active && !seen[fm.Name] {
				seen[fm.Name] = true
				names = append(names, fm.Name)
			}
		}
	}
	var rest []string
	for n := range rec.Fields {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// writeRichFrame writes a sandboxed frame whose document is the stored
// value, unescaped, as Archer would render it. The whole document is
// escaped once more as the srcdoc attribute, so nothing of it is markup of
// this page.
func writeRichFrame(b *strings.Builder, name, value string) {
	doc := `<!DOCTYPE html><html><head><meta charset="utf-8">` + richFrameStyle + `</head><body>` + value + `</body></html>`
	fmt.Fprintf(b, `<iframe sandbox="" referrerpolicy="no-referrer" title="%s" style="height:%dem" srcdoc="%s"></iframe>`,
		html.EscapeString(name), frameHeight(value), html.EscapeString(doc))
}

// frameHeight estimates, in em, the height a rich text value needs: frames
// cannot size themselves without scripts. It counts line breaks, block
// starts and long runs of text, within 3 to 30 em.
func frameHeight(value string) int {
	lower := strings.ToLower(value)
	lines := 1 + strings.Count(value, "\n") + len(value)/100
	for _, tag := range []string{"<br", "<p", "<div", "<li", "<tr", "<h"} {
		lines += strings.Count(lower, tag)
	}
	return min(max(lines*3/2+1, 3), 30)
}

// display renders a non-rich value as text.
func display(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case int64:
		return strconv.FormatInt(x, 10)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// serveRecordsJSON renders every record as JSON, values raw: a rich text
// field holds the stored HTML as a string.
func (s *Server) serveRecordsJSON(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only view", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"records": s.Records()})
}
