package archer

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// FieldType is Archer's numeric field type.
type FieldType int

// Field types as Archer numbers them.
const (
	FieldText           FieldType = 1
	FieldNumeric        FieldType = 2
	FieldDate           FieldType = 3
	FieldValuesList     FieldType = 4
	FieldTrackingID     FieldType = 6
	FieldExternalLinks  FieldType = 7
	FieldUsersGroups    FieldType = 8
	FieldCrossReference FieldType = 9
	FieldAttachment     FieldType = 11
	FieldImage          FieldType = 12
	FieldIPAddress      FieldType = 19
	FieldRecordStatus   FieldType = 20
	FieldFirstPublished FieldType = 21
	FieldLastUpdated    FieldType = 22
	FieldRelatedRecords FieldType = 23
	FieldSubform        FieldType = 24
	FieldHistoryLog     FieldType = 25
)

var fieldTypeNames = map[FieldType]string{
	FieldText: "text", FieldNumeric: "numeric", FieldDate: "date", FieldValuesList: "values list",
	FieldTrackingID: "tracking id", FieldExternalLinks: "external links", FieldUsersGroups: "users/groups list",
	FieldCrossReference: "cross-reference", FieldAttachment: "attachment", FieldImage: "image",
	FieldIPAddress: "IP address", FieldRecordStatus: "record status", FieldFirstPublished: "first published",
	FieldLastUpdated: "last updated", FieldRelatedRecords: "related records", FieldSubform: "sub-form",
	FieldHistoryLog: "history log",
}

// String names the type, e.g. "values list".
func (t FieldType) String() string {
	if n, ok := fieldTypeNames[t]; ok {
		return n
	}
	return "type " + strconv.Itoa(int(t))
}

// System reports whether Archer computes the field itself, so a record must
// not set it.
func (t FieldType) System() bool {
	switch t {
	case FieldTrackingID, FieldRecordStatus, FieldFirstPublished, FieldLastUpdated, FieldHistoryLog, 29:
		return true
	}
	return false
}

// Application is an Archer application (module) with its levels. Values
// returned by Client.Application are shared and must not be modified.
type Application struct {
	ID     int64
	Name   string
	Alias  string
	Levels []Level
}

// Level is one level of an application with its active fields.
type Level struct {
	ID     int64
	Name   string
	Alias  string
	Fields []Field
}

// Field is an active field definition.
type Field struct {
	ID       int64
	Name     string
	Alias    string
	Type     FieldType
	Required bool
	// ValuesListID is the related values list of a values-list field.
	ValuesListID int64
	LevelID      int64
}

// Value is one node of a values list. Path joins the names from the top of
// the tree with "/".
type Value struct {
	ID              int64
	Name            string
	Path            string
	Selectable      bool
	EnableOtherText bool
	Depth           int
}

// LevelByName finds a level by name or alias, exactly first, then ignoring
// case.
func (a *Application) LevelByName(name string) (*Level, bool) {
	for i := range a.Levels {
		if a.Levels[i].Name == name || a.Levels[i].Alias == name {
			return &a.Levels[i], true
		}
	}
	for i := range a.Levels {
		if strings.EqualFold(a.Levels[i].Name, name) || strings.EqualFold(a.Levels[i].Alias, name) {
			return &a.Levels[i], true
		}
	}
	return nil, false
}

// FieldByName finds a field by name, exactly first, then ignoring case.
func (l *Level) FieldByName(name string) (Field, bool) {
	for _, f := range l.Fields {
		if f.Name == name {
			return f, true
		}
	}
	for _, f := range l.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return Field{}, false
}

// FieldNames lists the names of the level's fields, sorted.
func (l *Level) FieldNames() []string {
	names := make([]string, 0, len(l.Fields))
	for _, f := range l.Fields {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return names
}

type appDTO struct {
	ID    int64  `json:"Id"`
	Name  string `json:"Name"`
	Alias string `json:"Alias"`
}

type levelDTO struct {
	ID    int64  `json:"Id"`
	Name  string `json:"Name"`
	Alias string `json:"Alias"`
}

type fieldDTO struct {
	ID                  int64  `json:"Id"`
	Name                string `json:"Name"`
	Alias               string `json:"Alias"`
	Type                int    `json:"Type"`
	LevelID             int64  `json:"LevelId"`
	IsRequired          bool   `json:"IsRequired"`
	IsActive            *bool  `json:"IsActive"`
	RelatedValuesListID *int64 `json:"RelatedValuesListId"`
}

// Application returns the application with the given name, its levels and
// their active field definitions. The result is cached until Refresh. The
// name matches exactly first, then ignoring case; when nothing matches, the
// error lists the applications the API user can see.
func (c *Client) Application(ctx context.Context, name string) (*Application, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	c.metaMu.Lock()
	app := c.apps[key]
	c.metaMu.Unlock()
	if app != nil {
		return app, nil
	}
	app, err := c.fetchApplication(ctx, strings.TrimSpace(name))
	if err != nil {
		return nil, err
	}
	c.metaMu.Lock()
	c.apps[key] = app
	c.metaMu.Unlock()
	return app, nil
}

func (c *Client) fetchApplication(ctx context.Context, name string) (*Application, error) {
	op := fmt.Sprintf("find application %q", name)
	data, err := c.do(ctx, apiCall{op: op, method: http.MethodGet, override: true, url: c.restURL("system/application"),
		body: odataBody("$filter=Name eq " + odataString(name))})
	if err != nil {
		return nil, err
	}
	apps, err := decodeList[appDTO](op, data)
	if err != nil {
		return nil, err
	}
	found := pickApp(apps, name)
	if found == nil {
		// The filter may be unsupported or exact; list everything to match
		// ignoring case and to name the alternatives.
		data, err := c.do(ctx, apiCall{op: "list applications", method: http.MethodGet, override: true, url: c.restURL("system/application")})
		if err != nil {
			return nil, err
		}
		all, err := decodeList[appDTO]("list applications", data)
		if err != nil {
			return nil, err
		}
		if found = pickApp(all, name); found == nil {
			names := make([]string, 0, len(all))
			for _, a := range all {
				names = append(names, a.Name)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("archer application %q not found; the API user sees: %s", name, strings.Join(names, ", "))
		}
	}
	app := &Application{ID: found.ID, Name: found.Name, Alias: found.Alias}

	op = fmt.Sprintf("levels of application %d", app.ID)
	data, err = c.do(ctx, apiCall{op: op, method: http.MethodGet, override: true, url: c.restURL("system/level/module/" + strconv.FormatInt(app.ID, 10))})
	if err != nil {
		return nil, err
	}
	levels, err := decodeList[levelDTO](op, data)
	if err != nil {
		return nil, err
	}
	if len(levels) == 0 {
		return nil, fmt.Errorf("archer application %q has no levels the API user can see", app.Name)
	}
	for _, l := range levels {
		lvl := Level{ID: l.ID, Name: l.Name, Alias: l.Alias}
		op := fmt.Sprintf("fields of level %d", l.ID)
		data, err := c.do(ctx, apiCall{op: op, method: http.MethodGet, override: true, url: c.restURL("system/fielddefinition/level/" + strconv.FormatInt(l.ID, 10))})
		if err != nil {
			return nil, err
		}
		fields, err := decodeList[fieldDTO](op, data)
		if err != nil {
			return nil, err
		}
		for _, f := range fields {
			if f.IsActive != nil && !*f.IsActive {
				continue
			}
			fd := Field{ID: f.ID, Name: f.Name, Alias: f.Alias, Type: FieldType(f.Type), Required: f.IsRequired, LevelID: l.ID}
			if f.RelatedValuesListID != nil {
				fd.ValuesListID = *f.RelatedValuesListID
			}
			lvl.Fields = append(lvl.Fields, fd)
		}
		app.Levels = append(app.Levels, lvl)
	}
	return app, nil
}

func pickApp(apps []appDTO, name string) *appDTO {
	for i := range apps {
		if apps[i].Name == name {
			return &apps[i]
		}
	}
	for i := range apps {
		if strings.EqualFold(apps[i].Name, name) {
			return &apps[i]
		}
	}
	return nil
}

type treeNode struct {
	Data struct {
		ID              int64  `json:"Id"`
		Name            string `json:"Name"`
		IsSelectable    *bool  `json:"IsSelectable"`
		EnableOtherText bool   `json:"EnableOtherText"`
	} `json:"Data"`
	Children []treeNode `json:"Children"`
	Depth    int        `json:"Depth"`
}

// ValuesListValues returns every node of a values list, depth first, with
// its path. The result is cached until Refresh and must not be modified.
func (c *Client) ValuesListValues(ctx context.Context, listID int64) ([]Value, error) {
	c.metaMu.Lock()
	vals, ok := c.lists[listID]
	c.metaMu.Unlock()
	if ok {
		return vals, nil
	}
	op := fmt.Sprintf("values of values list %d", listID)
	data, err := c.do(ctx, apiCall{op: op, method: http.MethodGet, override: true,
		url: c.restURL("system/valueslistvalue/valueslist/" + strconv.FormatInt(listID, 10))})
	if err != nil {
		return nil, err
	}
	var tree struct {
		Children []treeNode `json:"Children"`
	}
	if err := decodeWrapper(op, data, &tree, nil); err != nil {
		return nil, err
	}
	vals = []Value{}
	var walk func(nodes []treeNode, parent string, depth int) error
	walk = func(nodes []treeNode, parent string, depth int) error {
		if depth > 32 {
			return fmt.Errorf("archer %s: the tree is deeper than 32 levels", op)
		}
		for _, n := range nodes {
			path := n.Data.Name
			if parent != "" {
				path = parent + "/" + n.Data.Name
			}
			sel := n.Data.IsSelectable == nil || *n.Data.IsSelectable
			vals = append(vals, Value{ID: n.Data.ID, Name: n.Data.Name, Path: path, Selectable: sel, EnableOtherText: n.Data.EnableOtherText, Depth: depth})
			if err := walk(n.Children, path, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(tree.Children, "", 0); err != nil {
		return nil, err
	}
	c.metaMu.Lock()
	c.lists[listID] = vals
	c.metaMu.Unlock()
	return vals, nil
}

// MatchValue finds the selectable value called name among a values-list
// field's values (as ValuesListValues returns them). name is a value's name
// or its full path ("Email Threats/Phishing"), compared ignoring case and
// surrounding spaces. A name that several selectable values share must be
// given as a path. When nothing matches, the *UnknownValueError lists the
// selectable values (or, for a category that cannot be selected, its
// selectable children). It does no I/O.
func MatchValue(field Field, vals []Value, name string) (int64, error) {
	if field.Type != FieldValuesList {
		return 0, fmt.Errorf("archer field %q is a %s field, not a values list", field.Name, field.Type)
	}
	want := strings.TrimSpace(name)
	var available []string
	for _, v := range vals {
		if v.Selectable {
			available = append(available, v.Path)
		}
	}
	for _, v := range vals {
		if v.Selectable && strings.EqualFold(v.Path, want) {
			return v.ID, nil
		}
	}
	var byName, parents []Value
	for _, v := range vals {
		if strings.EqualFold(v.Name, want) || strings.EqualFold(v.Path, want) {
			if v.Selectable {
				byName = append(byName, v)
			} else {
				parents = append(parents, v)
			}
		}
	}
	switch {
	case len(byName) == 1:
		return byName[0].ID, nil
	case len(byName) > 1:
		var paths []string
		for _, v := range byName {
			paths = append(paths, v.Path)
		}
		return 0, &UnknownValueError{Field: field.Name, Name: name, Reason: "several values are named", Available: paths}
	case len(parents) > 0:
		var children []string
		for _, v := range vals {
			if v.Selectable && strings.HasPrefix(strings.ToLower(v.Path), strings.ToLower(parents[0].Path)+"/") {
				children = append(children, v.Path)
			}
		}
		return 0, &UnknownValueError{Field: field.Name, Name: name, Reason: "a category that cannot be selected is named", Available: children}
	}
	return 0, &UnknownValueError{Field: field.Name, Name: name, Reason: "no selectable value is named", Available: available}
}

// Refresh drops the cached applications and values lists, so the next calls
// read Archer's metadata again.
func (c *Client) Refresh() {
	c.metaMu.Lock()
	defer c.metaMu.Unlock()
	c.apps = map[string]*Application{}
	c.lists = map[int64][]Value{}
}
