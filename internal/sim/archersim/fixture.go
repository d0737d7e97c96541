package archersim

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

//go:embed fixtures/security-incidents.json
var defaultFixtureJSON []byte

// Fixture describes the metadata and seed content of a simulated Archer
// instance. It is read from a JSON file (see fixtures/security-incidents.json)
// so that users can mirror their own Archer application in the sandbox.
type Fixture struct {
	// FirstContentID is the id given to the first record created; later
	// records count up from it. Zero means 239643.
	FirstContentID int64 `json:"FirstContentId"`
	// FirstAttachmentID is the id given to the first uploaded attachment.
	// Zero means 901.
	FirstAttachmentID int64 `json:"FirstAttachmentId"`
	// Applications are the applications (modules) with their levels and fields.
	Applications []FixtureApplication `json:"Applications"`
	// ValuesLists are the values lists that values-list fields refer to.
	ValuesLists []FixtureValuesList `json:"ValuesLists"`
	// Users are the users a users/groups field may reference.
	Users []FixtureUser `json:"Users"`
	// Groups are the groups a users/groups field may reference.
	Groups []FixtureGroup `json:"Groups"`
	// Records are content records present at start, for example the targets
	// of cross-reference fields. They use the write shape of FieldContents.
	Records []FixtureRecord `json:"Records"`
}

// FixtureApplication is one application with its levels.
type FixtureApplication struct {
	ID     int64          `json:"Id"`
	Name   string         `json:"Name"`
	Alias  string         `json:"Alias"`
	Levels []FixtureLevel `json:"Levels"`
}

// FixtureLevel is one level of an application with its field definitions.
// Its Alias names the Content API endpoint of the level.
type FixtureLevel struct {
	ID     int64          `json:"Id"`
	Name   string         `json:"Name"`
	Alias  string         `json:"Alias"`
	Fields []FixtureField `json:"Fields"`
}

// FixtureField is one field definition.
type FixtureField struct {
	ID    int64  `json:"Id"`
	Name  string `json:"Name"`
	Alias string `json:"Alias"`
	// Type is Archer's numeric field type (1 text, 2 numeric, 3 date, 4
	// values list, 6 tracking id, 7 external links, 8 users/groups, 9
	// cross-reference, 11 attachment, 19 IP address, 21 first published,
	// 22 last updated).
	Type       int  `json:"Type"`
	IsRequired bool `json:"IsRequired"`
	// IsActive defaults to true when absent.
	IsActive            *bool `json:"IsActive,omitempty"`
	RelatedValuesListID int64 `json:"RelatedValuesListId,omitempty"`
	// RelatedLevelID restricts a cross-reference field to records of one
	// level; zero accepts records of any level.
	RelatedLevelID int64 `json:"RelatedLevelId,omitempty"`
	// DisplayControl says how a text field (type 1) is shown in a record:
	// DisplaySingleLine or DisplayRichText, Archer's two display controls for
	// text fields ("Single line text field" and "Multi-line rich text area"
	// in the field's Display Control section). Empty means DisplayRichText.
	// The simulator uses it only to render /sim/records; the field
	// definitions Archer's REST API documents carry no such property, so the
	// metadata endpoints do not expose it and the service's mapping file
	// declares it on its side.
	DisplayControl string `json:"DisplayControl,omitempty"`
}

// Display controls of text fields, the values of FixtureField.DisplayControl.
const (
	// DisplaySingleLine is a single-line text box: Archer shows the value as
	// text.
	DisplaySingleLine = "SingleLine"
	// DisplayRichText is a multi-line rich text area: Archer stores the value
	// as HTML and renders it.
	DisplayRichText = "RichText"
)

// IsRichText reports whether the field is a text field that Archer renders
// as HTML.
func (f FixtureField) IsRichText() bool {
	return f.Type == 1 && (f.DisplayControl == "" || f.DisplayControl == DisplayRichText)
}

// FixtureValuesList is a values list with its (possibly nested) values.
type FixtureValuesList struct {
	ID     int64          `json:"Id"`
	Name   string         `json:"Name"`
	Values []FixtureValue `json:"Values"`
}

// FixtureValue is one node of a values list tree. Parent nodes are usually
// not selectable.
type FixtureValue struct {
	ID              int64          `json:"Id"`
	Name            string         `json:"Name"`
	Selectable      bool           `json:"Selectable"`
	EnableOtherText bool           `json:"EnableOtherText,omitempty"`
	Children        []FixtureValue `json:"Children,omitempty"`
}

// FixtureUser is an Archer user that users/groups fields can reference.
type FixtureUser struct {
	ID          int64  `json:"Id"`
	UserName    string `json:"UserName"`
	DisplayName string `json:"DisplayName"`
}

// FixtureGroup is an Archer group that users/groups fields can reference.
type FixtureGroup struct {
	ID   int64  `json:"Id"`
	Name string `json:"Name"`
}

// FixtureRecord is a seeded content record.
type FixtureRecord struct {
	ID            int64                      `json:"Id"`
	LevelID       int64                      `json:"LevelId"`
	FieldContents map[string]json.RawMessage `json:"FieldContents"`
}

// DefaultFixture returns a fresh copy of the built-in fixture: a "Security
// Incidents" application (level 232) with the fields a SOC incident
// application typically has, plus a small "Devices" application that the
// cross-reference field points to.
func DefaultFixture() *Fixture {
	f, err := ParseFixture(defaultFixtureJSON)
	if err != nil {
		// The embedded file is validated by the package tests; reaching this
		// means the binary was built from a broken source tree.
		panic(fmt.Sprintf("archersim: embedded fixture is invalid: %v", err))
	}
	return f
}

// DefaultFixtureJSON returns the bytes of the built-in fixture file, for
// users who want to copy and edit it.
func DefaultFixtureJSON() []byte {
	return bytes.Clone(defaultFixtureJSON)
}

// LoadFixture reads and validates a fixture file.
func LoadFixture(path string) (*Fixture, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read archer fixture: %w", err)
	}
	f, err := ParseFixture(data)
	if err != nil {
		return nil, fmt.Errorf("archer fixture %s: %w", path, err)
	}
	return f, nil
}

// ParseFixture decodes and validates a fixture. Unknown keys are errors so
// that a misspelt key does not silently drop a field.
func ParseFixture(data []byte) (*Fixture, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Fixture
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decode fixture: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode fixture: trailing data after the JSON object")
	}
	if err := f.validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

var knownFieldTypes = map[int]bool{1: true, 2: true, 3: true, 4: true, 6: true, 7: true, 8: true, 9: true, 11: true, 19: true, 21: true, 22: true}

func (f *Fixture) validate() error {
	var errs []error
	lists := map[int64]bool{}
	valueIDs := map[int64]bool{}
	for _, vl := range f.ValuesLists {
		if vl.ID <= 0 || lists[vl.ID] {
			errs = append(errs, fmt.Errorf("values list %q: id %d is missing or duplicated", vl.Name, vl.ID))
		}
		lists[vl.ID] = true
		var walk func(vs []FixtureValue, depth int)
		walk = func(vs []FixtureValue, depth int) {
			for _, v := range vs {
				if depth > 16 {
					errs = append(errs, fmt.Errorf("values list %q: nesting deeper than 16", vl.Name))
					return
				}
				if v.ID <= 0 || valueIDs[v.ID] {
					errs = append(errs, fmt.Errorf("values list %q: value %q has a missing or duplicated id %d", vl.Name, v.Name, v.ID))
				}
				if strings.TrimSpace(v.Name) == "" {
					errs = append(errs, fmt.Errorf("values list %q: value %d has no name", vl.Name, v.ID))
				}
				valueIDs[v.ID] = true
				walk(v.Children, depth+1)
			}
		}
		walk(vl.Values, 0)
	}
	apps := map[int64]bool{}
	levels := map[int64]bool{}
	fields := map[int64]bool{}
	aliases := map[string]bool{}
	for _, a := range f.Applications {
		if a.ID <= 0 || apps[a.ID] || strings.TrimSpace(a.Name) == "" {
			errs = append(errs, fmt.Errorf("application %q: id %d is missing or duplicated, or the name is empty", a.Name, a.ID))
		}
		apps[a.ID] = true
		if len(a.Levels) == 0 {
			errs = append(errs, fmt.Errorf("application %q has no levels", a.Name))
		}
		for _, l := range a.Levels {
			if l.ID <= 0 || levels[l.ID] {
				errs = append(errs, fmt.Errorf("application %q: level id %d is missing or duplicated", a.Name, l.ID))
			}
			levels[l.ID] = true
			if l.Alias == "" || aliases[l.Alias] {
				errs = append(errs, fmt.Errorf("level %d: alias %q is missing or duplicated", l.ID, l.Alias))
			}
			aliases[l.Alias] = true
			for _, fd := range l.Fields {
				if fd.ID <= 0 || fields[fd.ID] {
					errs = append(errs, fmt.Errorf("level %d: field %q has a missing or duplicated id %d", l.ID, fd.Name, fd.ID))
				}
				fields[fd.ID] = true
				if strings.TrimSpace(fd.Name) == "" || fd.Alias == "" {
					errs = append(errs, fmt.Errorf("level %d: field %d needs a name and an alias", l.ID, fd.ID))
				}
				if !knownFieldTypes[fd.Type] {
					errs = append(errs, fmt.Errorf("field %q: type %d is not supported by the simulator", fd.Name, fd.Type))
				}
				switch {
				case fd.DisplayControl == "":
				case fd.Type != 1:
					errs = append(errs, fmt.Errorf("field %q: DisplayControl applies to text fields (type 1) only", fd.Name))
				case fd.DisplayControl != DisplaySingleLine && fd.DisplayControl != DisplayRichText:
					errs = append(errs, fmt.Errorf("field %q: DisplayControl %q is neither %q nor %q", fd.Name, fd.DisplayControl, DisplaySingleLine, DisplayRichText))
				}
				if fd.Type == 4 && !lists[fd.RelatedValuesListID] {
					errs = append(errs, fmt.Errorf("field %q: values list %d does not exist", fd.Name, fd.RelatedValuesListID))
				}
			}
		}
	}
	for _, a := range f.Applications {
		for _, l := range a.Levels {
			for _, fd := range l.Fields {
				if fd.Type == 9 && fd.RelatedLevelID != 0 && !levels[fd.RelatedLevelID] {
					errs = append(errs, fmt.Errorf("field %q: related level %d does not exist", fd.Name, fd.RelatedLevelID))
				}
			}
		}
	}
	seen := map[int64]bool{}
	for _, r := range f.Records {
		if r.ID <= 0 || seen[r.ID] {
			errs = append(errs, fmt.Errorf("record %d: id is missing or duplicated", r.ID))
		}
		seen[r.ID] = true
		if !levels[r.LevelID] {
			errs = append(errs, fmt.Errorf("record %d: level %d does not exist", r.ID, r.LevelID))
		}
		for k := range r.FieldContents {
			if _, err := strconv.ParseInt(k, 10, 64); err != nil {
				errs = append(errs, fmt.Errorf("record %d: field key %q is not a field id", r.ID, k))
			}
		}
	}
	return errors.Join(errs...)
}
