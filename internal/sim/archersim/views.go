package archersim

import (
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
)

var recordsPage = template.Must(template.New("records").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Simulated Archer records</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
pre{margin:0;white-space:pre-wrap}</style></head><body>
<h1>Simulated Archer records</h1>
<p>{{len .}} record(s). Read-only; the same data is at <a href="records.json">records.json</a>.</p>
{{range .}}<h2>{{.Level}} #{{.ID}}</h2>
<table><tr><th>Created</th><td>{{.Created.Format "2006-01-02 15:04:05 MST"}}</td></tr>
<tr><th>Updated</th><td>{{.Updated.Format "2006-01-02 15:04:05 MST"}}</td></tr>
{{range .Rows}}<tr><th>{{.Name}}</th><td><pre>{{.Value}}</pre></td></tr>
{{end}}</table>
{{end}}</body></html>
`))

type viewRow struct {
	Name  string
	Value string
}

type viewRecord struct {
	Record
	Rows []viewRow
}

func (s *Server) serveRecordsHTML(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only view", http.StatusMethodNotAllowed)
		return
	}
	recs := s.Records()
	views := make([]viewRecord, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- { // newest first
		v := viewRecord{Record: recs[i]}
		names := make([]string, 0, len(v.Fields))
		for n := range v.Fields {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v.Rows = append(v.Rows, viewRow{Name: n, Value: display(v.Fields[n])})
		}
		views = append(views, v)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	if err := recordsPage.Execute(w, views); err != nil {
		s.log.Warn().Err(err).Msg("render records page")
	}
}

func display(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64, int64:
		return fmt.Sprint(x)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func (s *Server) serveRecordsJSON(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "read-only view", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"records": s.Records()})
}
