package archersim

import (
	"fmt"
	"net/http"
	"strings"
)

// contentAPIPageSize is the most records one Content API response carries.
const contentAPIPageSize = 1000

// serveContentAPI answers the Content API: GET {vdir}/contentapi/ lists the
// level endpoints, GET {vdir}/contentapi/{LevelAlias} returns the level's
// records as OData, keyed by field alias, with the record id under
// "{LevelAlias}_Id". Level aliases are case-sensitive, as in Archer.
//
// The session comes in the Authorization header or the session cookie (see
// sessionCookie), or only the cookie under ContentAPICookieOnly.
//
// Under ForbidContentAPI the API user may read no level. The Archer
// documentation says what such a user sees but not what a read answers: the
// Content API "Get Level Metadata" and "Get Endpoints" pages
// (help.archerirm.cloud/platform_612/en-us/content/api/contentapi/contentapi_get_level_metadata.htm)
// say results "vary based on the Read permissions granted to the session
// token" and that a level is returned only if the user "would be able to see
// a level in the Archer User Interface". No page found gives the status or
// body of a read of a level the user may not read, so the simulator lists no
// endpoint and answers such a read with 403 and the OData error object its
// other Content API errors use; a client should key on the status, not the
// text.
func (s *Server) serveContentAPI(req *apiRequest, alias string) {
	src := sessionFromHeaderOrCookie
	if req.quirks.cookieOnly {
		src = sessionFromCookie
	}
	if !s.authenticateFrom(req, src) {
		return
	}
	if req.method != http.MethodGet {
		writeJSON(req.w, http.StatusMethodNotAllowed, odataError(fmt.Sprintf("The requested resource does not support http method '%s'.", req.method)))
		return
	}
	base := strings.TrimSuffix(req.r.URL.Path, alias)
	alias = strings.TrimSuffix(alias, "/")
	if alias == "" {
		entries := []map[string]any{}
		// Without aliases (OmitAliases) no level has an endpoint; without
		// read rights (ForbidContentAPI) none is listed.
		if !req.quirks.omitAliases && !req.quirks.forbidContentAPI {
			for _, l := range s.md.levelOrder {
				entries = append(entries, map[string]any{"name": l.Alias, "kind": "EntitySet", "url": l.Alias})
			}
		}
		writeJSON(req.w, http.StatusOK, map[string]any{"@odata.context": base + "$metadata", "value": entries})
		return
	}
	level := s.md.levelByAlias[alias]
	if level == nil || req.quirks.omitAliases {
		writeJSON(req.w, http.StatusNotFound, odataError(fmt.Sprintf("No HTTP resource was found that matches the request URI '%s'.", req.r.URL.Path)))
		return
	}
	if req.quirks.forbidContentAPI {
		writeJSON(req.w, http.StatusForbidden, odataError(fmt.Sprintf("The user may not read the level '%s'.", alias)))
		return
	}
	q, err := parseOData(req.r.URL.RawQuery, nil)
	if err != nil {
		writeJSON(req.w, http.StatusBadRequest, odataError("The query specified in the URI is not valid. "+err.Error()))
		return
	}
	s.mu.Lock()
	objs := make([]map[string]any, 0)
	for _, id := range s.order {
		rec := s.records[id]
		if rec.LevelID == level.ID {
			objs = append(objs, s.odataRecord(level, rec))
		}
	}
	s.mu.Unlock()
	if q.top < 0 || q.top > contentAPIPageSize {
		q.top = contentAPIPageSize
	}
	objs, err = q.apply(objs)
	if err != nil {
		writeJSON(req.w, http.StatusBadRequest, odataError("The query specified in the URI is not valid. "+err.Error()))
		return
	}
	if objs == nil {
		objs = []map[string]any{}
	}
	writeJSON(req.w, http.StatusOK, map[string]any{"@odata.context": base + "$metadata#" + alias, "value": objs})
}

func odataError(text string) map[string]any {
	return map[string]any{"error": map[string]any{"code": "", "message": text}}
}

// odataRecord renders a record for the Content API. s.mu must be held.
func (s *Server) odataRecord(level *levelMeta, rec *record) map[string]any {
	o := map[string]any{level.Alias + "_Id": rec.ID}
	for _, fm := range level.fields {
		if !fm.active {
			continue
		}
		o[fm.Alias] = s.plainValue(fm, rec)
	}
	return o
}

// plainValue renders a field in a readable form: text as is, values lists
// as value names, users and groups as names, references as ids.
func (s *Server) plainValue(fm *fieldMeta, rec *record) any {
	switch fm.Type {
	case 6:
		return rec.ID
	case 21:
		return archerDate(rec.Created)
	case 22:
		return archerDate(rec.Updated)
	}
	v := rec.Fields[fm.ID]
	if v == nil {
		return nil
	}
	switch fm.Type {
	case 1:
		return v.Text
	case 2:
		return v.Number
	case 3:
		return archerDate(v.Date)
	case 4:
		names := []string{}
		for _, id := range v.ValuesList {
			if val := s.md.values[id]; val != nil {
				names = append(names, val.Name)
			}
		}
		if v.OtherText != nil && *v.OtherText != "" {
			names = append(names, *v.OtherText)
		}
		return names
	case 7:
		return v.Links
	case 8:
		names := []string{}
		for _, id := range v.Users {
			names = append(names, s.md.userByID[id].DisplayName)
		}
		for _, id := range v.Groups {
			names = append(names, s.md.groupByID[id].Name)
		}
		return names
	case 9:
		return v.Refs
	case 11:
		out := []map[string]any{}
		for _, id := range v.Attachments {
			if a := s.attachments[id]; a != nil {
				out = append(out, map[string]any{"Id": id, "Name": a.Name, "Size": len(a.Data)})
			}
		}
		return out
	case 19:
		return v.IP
	}
	return nil
}
