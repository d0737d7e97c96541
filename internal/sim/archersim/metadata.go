package archersim

import (
	"fmt"
	"net/http"
	"strconv"
)

// metadata is the immutable, indexed form of a fixture.
type metadata struct {
	apps         []*appMeta
	appByID      map[int64]*appMeta
	levels       map[int64]*levelMeta
	levelOrder   []*levelMeta
	levelByAlias map[string]*levelMeta
	fields       map[int64]*fieldMeta
	lists        map[int64]*FixtureValuesList
	values       map[int64]*valueMeta
	users        []FixtureUser
	userByID     map[int64]FixtureUser
	groups       []FixtureGroup
	groupByID    map[int64]FixtureGroup
}

type appMeta struct {
	FixtureApplication
	levels []*levelMeta
}

type levelMeta struct {
	FixtureLevel
	app    *appMeta
	fields []*fieldMeta
	// richText names the active fields rendered as HTML (see
	// FixtureField.IsRichText), keyed by field name as Records keys values.
	richText map[string]bool
}

type fieldMeta struct {
	FixtureField
	level  *levelMeta
	active bool
}

type valueMeta struct {
	FixtureValue
	listID   int64
	parentID int64
	depth    int
}

func buildMetadata(f *Fixture) *metadata {
	md := &metadata{
		appByID:      map[int64]*appMeta{},
		levels:       map[int64]*levelMeta{},
		levelByAlias: map[string]*levelMeta{},
		fields:       map[int64]*fieldMeta{},
		lists:        map[int64]*FixtureValuesList{},
		values:       map[int64]*valueMeta{},
		userByID:     map[int64]FixtureUser{},
		groupByID:    map[int64]FixtureGroup{},
	}
	for _, a := range f.Applications {
		am := &appMeta{FixtureApplication: a}
		md.apps = append(md.apps, am)
		md.appByID[a.ID] = am
		for _, l := range a.Levels {
			lm := &levelMeta{FixtureLevel: l, app: am, richText: map[string]bool{}}
			am.levels = append(am.levels, lm)
			md.levels[l.ID] = lm
			md.levelOrder = append(md.levelOrder, lm)
			md.levelByAlias[l.Alias] = lm
			for _, fd := range l.Fields {
				fm := &fieldMeta{FixtureField: fd, level: lm, active: fd.IsActive == nil || *fd.IsActive}
				lm.fields = append(lm.fields, fm)
				md.fields[fd.ID] = fm
				if fm.active {
					// A later field of the same name wins, as in Records.
					lm.richText[fd.Name] = fd.IsRichText()
				}
			}
		}
	}
	for i := range f.ValuesLists {
		vl := &f.ValuesLists[i]
		md.lists[vl.ID] = vl
		var walk func(vs []FixtureValue, parent int64, depth int)
		walk = func(vs []FixtureValue, parent int64, depth int) {
			for _, v := range vs {
				md.values[v.ID] = &valueMeta{FixtureValue: v, listID: vl.ID, parentID: parent, depth: depth}
				walk(v.Children, v.ID, depth+1)
			}
		}
		walk(vl.Values, 0, 0)
	}
	md.users = f.Users
	for _, u := range f.Users {
		md.userByID[u.ID] = u
	}
	md.groups = f.Groups
	for _, g := range f.Groups {
		md.groupByID[g.ID] = g
	}
	return md
}

func appObject(a *appMeta) map[string]any {
	return map[string]any{
		"Id": a.ID, "Name": a.Name, "Alias": a.Alias, "Type": 2, "LanguageId": 1, "Status": 1,
		"Guid": fmt.Sprintf("7d2a1c0e-0000-4000-8000-%012d", a.ID),
	}
}

// levelObject renders a level definition; noAlias leaves its Alias out (see
// OmitAliases).
func levelObject(l *levelMeta, noAlias bool) map[string]any {
	o := map[string]any{
		"Id": l.ID, "Name": l.Name, "Alias": l.Alias, "ModuleId": l.app.ID, "ModuleName": l.app.Name,
		"IsDeleted": false, "Guid": fmt.Sprintf("5b3e2f10-0000-4000-8000-%012d", l.ID),
	}
	if noAlias {
		delete(o, "Alias")
	}
	return o
}

// fieldObject renders a field definition; noAlias leaves its Alias out (see
// OmitAliases).
func fieldObject(f *fieldMeta, noAlias bool) map[string]any {
	o := map[string]any{
		"Id": f.ID, "Name": f.Name, "Alias": f.Alias, "Type": f.Type, "LevelId": f.level.ID,
		"IsRequired": f.IsRequired, "IsActive": f.active, "RelatedValuesListId": nil,
		"Guid": fmt.Sprintf("9c4d3e21-0000-4000-8000-%012d", f.ID),
	}
	if f.Type == 4 {
		o["RelatedValuesListId"] = f.RelatedValuesListID
	}
	if noAlias {
		delete(o, "Alias")
	}
	return o
}

func valueObject(v *valueMeta) map[string]any {
	return map[string]any{
		"Id": v.ID, "Name": v.Name, "Alias": aliasOf(v.Name), "NumericValue": nil, "Description": "",
		"EnableOtherText": v.EnableOtherText, "IsSelectable": v.Selectable, "ValuesListId": v.listID,
		"ParentId": nullableID(v.parentID), "Depth": v.depth,
	}
}

func nullableID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func aliasOf(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// serveMetadata answers {prefix}/core/system/... requests.
func (s *Server) serveMetadata(req *apiRequest, seg []string) {
	if req.method != http.MethodGet {
		writeJSON(req.w, http.StatusMethodNotAllowed, map[string]any{"Message": fmt.Sprintf("The requested resource does not support http method '%s'.", req.method)})
		return
	}
	md := s.md
	noAlias := req.quirks.omitAliases
	id := func(i int) (int64, bool) {
		if i >= len(seg) {
			return 0, false
		}
		n, err := strconv.ParseInt(seg[i], 10, 64)
		return n, err == nil
	}
	notFound := func() {
		writeWrapperError(req.w, http.StatusOK, "SystemController", "ValidationMessageTemplates:NoResourceFound", "No resource found.")
	}
	switch {
	case len(seg) == 1 && seg[0] == "application":
		var objs []map[string]any
		for _, a := range md.apps {
			objs = append(objs, appObject(a))
		}
		s.writeList(req, objs)
	case len(seg) == 2 && seg[0] == "application":
		n, okID := id(1)
		a := md.appByID[n]
		if !okID || a == nil {
			notFound()
			return
		}
		writeJSON(req.w, http.StatusOK, ok(appObject(a)))
	case len(seg) == 1 && seg[0] == "level":
		var objs []map[string]any
		for _, l := range md.levelOrder {
			objs = append(objs, levelObject(l, noAlias))
		}
		s.writeList(req, objs)
	case len(seg) == 2 && seg[0] == "level":
		n, okID := id(1)
		l := md.levels[n]
		if !okID || l == nil {
			notFound()
			return
		}
		writeJSON(req.w, http.StatusOK, ok(levelObject(l, noAlias)))
	case len(seg) == 3 && seg[0] == "level" && seg[1] == "module":
		n, _ := id(2)
		objs := []map[string]any{}
		if a := md.appByID[n]; a != nil {
			for _, l := range a.levels {
				objs = append(objs, levelObject(l, noAlias))
			}
		}
		s.writeList(req, objs)
	case len(seg) == 3 && seg[0] == "fielddefinition" && seg[1] == "level":
		n, _ := id(2)
		objs := []map[string]any{}
		if l := md.levels[n]; l != nil {
			for _, f := range l.fields {
				objs = append(objs, fieldObject(f, noAlias))
			}
		}
		s.writeList(req, objs)
	case len(seg) == 3 && seg[0] == "fielddefinition" && seg[1] == "application":
		n, _ := id(2)
		objs := []map[string]any{}
		if a := md.appByID[n]; a != nil {
			for _, l := range a.levels {
				for _, f := range l.fields {
					objs = append(objs, fieldObject(f, noAlias))
				}
			}
		}
		s.writeList(req, objs)
	case len(seg) == 2 && seg[0] == "fielddefinition":
		n, okID := id(1)
		f := md.fields[n]
		if !okID || f == nil {
			notFound()
			return
		}
		writeJSON(req.w, http.StatusOK, ok(fieldObject(f, noAlias)))
	case len(seg) == 3 && seg[0] == "valueslistvalue" && seg[1] == "valueslist":
		n, okID := id(2)
		vl := md.lists[n]
		if !okID || vl == nil {
			notFound()
			return
		}
		writeJSON(req.w, http.StatusOK, ok(map[string]any{
			"Id": vl.ID, "Name": vl.Name, "Children": s.treeNodes(vl.Values, 0),
		}))
	case len(seg) == 4 && seg[0] == "valueslistvalue" && seg[1] == "flat" && seg[2] == "valueslist":
		n, okID := id(3)
		vl := md.lists[n]
		if !okID || vl == nil {
			notFound()
			return
		}
		objs := []map[string]any{}
		var walk func(vs []FixtureValue)
		walk = func(vs []FixtureValue) {
			for _, v := range vs {
				objs = append(objs, valueObject(md.values[v.ID]))
				walk(v.Children)
			}
		}
		walk(vl.Values)
		s.writeList(req, objs)
	case len(seg) == 2 && seg[0] == "valueslist":
		n, okID := id(1)
		vl := md.lists[n]
		if !okID || vl == nil {
			notFound()
			return
		}
		writeJSON(req.w, http.StatusOK, ok(map[string]any{"Id": vl.ID, "Name": vl.Name, "Alias": aliasOf(vl.Name), "IsValuesListGlobal": true}))
	case len(seg) == 1 && seg[0] == "user":
		objs := []map[string]any{}
		for _, u := range md.users {
			objs = append(objs, map[string]any{"Id": u.ID, "UserName": u.UserName, "DisplayName": u.DisplayName, "AccountStatus": 1})
		}
		s.writeList(req, objs)
	case len(seg) == 1 && seg[0] == "group":
		objs := []map[string]any{}
		for _, g := range md.groups {
			objs = append(objs, map[string]any{"Id": g.ID, "Name": g.Name})
		}
		s.writeList(req, objs)
	default:
		writeIISError(req.w, http.StatusNotFound)
	}
}

func (s *Server) treeNodes(vs []FixtureValue, depth int) []map[string]any {
	nodes := []map[string]any{}
	for _, v := range vs {
		nodes = append(nodes, map[string]any{
			"Data":     valueObject(s.md.values[v.ID]),
			"Children": s.treeNodes(v.Children, depth+1),
			"Depth":    depth,
		})
	}
	return nodes
}

// writeList answers a list endpoint: an array of wrappers, after applying
// the request's OData options.
func (s *Server) writeList(req *apiRequest, objs []map[string]any) {
	q, err := parseOData(req.r.URL.RawQuery, req.body)
	if err != nil {
		writeJSON(req.w, http.StatusBadRequest, map[string]any{"Message": "The query specified in the URI is not valid. " + err.Error()})
		return
	}
	objs, err = q.apply(objs)
	if err != nil {
		writeJSON(req.w, http.StatusBadRequest, map[string]any{"Message": "The query specified in the URI is not valid. " + err.Error()})
		return
	}
	out := make([]wrapper, 0, len(objs))
	for _, o := range objs {
		out = append(out, ok(o))
	}
	writeJSON(req.w, http.StatusOK, out)
}
