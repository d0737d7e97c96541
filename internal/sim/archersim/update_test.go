package archersim_test

import (
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// updateBase is the record every update case starts from.
var updateBase = fmt.Sprintf(validRecord, `,
 "16132":{"Type":1,"Value":"Original title","FieldId":16132},
 "16172":{"Type":4,"Value":{"ValuesListIds":[301001],"OtherText":null},"FieldId":16172},
 "20741":{"Type":9,"Value":[{"ContentID":205522}],"FieldId":20741},
 "24313":{"Type":8,"Value":{"UserList":[{"ID":20}],"GroupList":[{"ID":30}]},"FieldId":24313},
 "24312":{"Type":7,"Value":[{"Name":"first","URL":"https://one.example/"}],"FieldId":24312},
 "24310":{"Type":19,"IpAddressBytes":"192.0.2.1","FieldId":24310},
 "24311":{"Type":2,"Value":2,"FieldId":24311}`)

func updateBody(id int64, entries string) string {
	return fmt.Sprintf(`{"Content":{"Id":%d,"LevelId":232,"FieldContents":{%s}}}`, id, entries)
}

// record returns the stored record with the given id.
func (b *bundle) record(t *testing.T, id int64) archersim.Record {
	t.Helper()
	for _, r := range b.sim.Records() {
		if r.ID == id {
			return r
		}
	}
	t.Fatalf("record %d not found", id)
	return archersim.Record{}
}

func TestUpdateReplacesListedFieldsKeepsTheRestAndValidatesLikeCreate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		strict  bool
		entries string
		// want maps field names to their rendering after a successful
		// update; "-" means the field is empty. Fields not named must be
		// unchanged.
		want map[string]string
		// refused, when not empty, is the expected message list; the record
		// must then be unchanged.
		refused string
	}{
		{name: "a listed values list is replaced, not merged",
			entries: `"24188":{"Type":4,"Value":{"ValuesListIds":[201694,201695]},"FieldId":24188}`,
			want:    map[string]string{"Incident Category": "[Spam Business Email Compromise]"}},
		{name: "a listed cross-reference is replaced",
			entries: `"20741":{"Type":9,"Value":[{"ContentID":205523}],"FieldId":20741}`,
			want:    map[string]string{"Related Device": "[205523]"}},
		{name: "users and groups are replaced together",
			entries: `"24313":{"Type":8,"Value":{"UserList":[{"ID":21}]},"FieldId":24313}`,
			want:    map[string]string{"Assigned Analysts": "[SOC Lead]"}},
		{name: "external links are replaced",
			entries: `"24312":{"Type":7,"Value":[{"Name":"second","URL":"https://two.example/"}],"FieldId":24312}`,
			want:    map[string]string{"Reference Links": "[{second https://two.example/}]"}},
		{name: "text and numbers are replaced whole",
			entries: `"16132":{"Type":1,"Value":"New title","FieldId":16132},"24311":{"Type":2,"Value":5,"FieldId":24311}`,
			want:    map[string]string{"Title": "New title", "Attachment Count": "5"}},
		{name: "null clears an optional field",
			entries: `"16172":{"Type":4,"Value":null,"FieldId":16172},"24310":{"Type":19,"IpAddressBytes":null,"FieldId":24310}`,
			want:    map[string]string{"Source": "-", "Sender IP": "-"}},
		{name: "an empty list clears an optional field",
			entries: `"24313":{"Type":8,"Value":{"UserList":[],"GroupList":[]},"FieldId":24313},"20741":{"Type":9,"Value":[],"FieldId":20741}`,
			want:    map[string]string{"Assigned Analysts": "-", "Related Device": "-"}},
		{name: "an empty update changes no value",
			entries: ``, want: map[string]string{}},
		{name: "unknown references are ignored and the old value kept",
			entries: `"16172":{"Type":4,"Value":{"ValuesListIds":[999999]},"FieldId":16172},"20741":{"Type":9,"Value":[{"ContentID":1}],"FieldId":20741},"24310":{"Type":19,"IpAddressBytes":"999.1.2.3","FieldId":24310}`,
			want:    map[string]string{}},
		{name: "known references are kept and unknown ones dropped",
			entries: `"20741":{"Type":9,"Value":[{"ContentID":1},{"ContentID":205523}],"FieldId":20741}`,
			want:    map[string]string{"Related Device": "[205523]"}},
		{name: "strict: unknown references are refused", strict: true,
			entries: `"16172":{"Type":4,"Value":{"ValuesListIds":[999999]},"FieldId":16172}`,
			refused: "[The Source field references the values list value 999999, which does not exist or cannot be selected.]"},
		{name: "strict: a non-selectable parent value is refused", strict: true,
			entries: `"24188":{"Type":4,"Value":{"ValuesListIds":[201690]},"FieldId":24188}`,
			refused: "[The Incident Category field references the values list value 201690, which does not exist or cannot be selected.]"},
		{name: "a required text cannot be emptied",
			entries: `"16132":{"Type":1,"Value":"","FieldId":16132}`,
			refused: "[The Title field is a required field.]"},
		{name: "a required values list cannot be emptied",
			entries: `"24188":{"Type":4,"Value":{"ValuesListIds":[]},"FieldId":24188}`,
			refused: "[The Incident Category field is a required field.]"},
		{name: "a wrong type refuses the whole update",
			entries: `"16132":{"Type":1,"Value":"New title","FieldId":16132},"24194":{"Type":1,"Value":"High","FieldId":24194}`,
			refused: "[The Criticality SOC field is of type 4, but the request gives type 1.]"},
		{name: "a bad date refuses the whole update",
			entries: `"16132":{"Type":1,"Value":"New title","FieldId":16132},"24307":{"Type":3,"Value":"yesterday","FieldId":24307}`,
			refused: "[The value for the Date Reported field is not valid.]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, archersim.Options{Strict: tc.strict, IdleTimeout: 24 * time.Hour})
			token := b.login(t)
			id := b.create(t, token, updateBase)
			before := b.record(t, id)
			b.clock.Advance(90 * time.Minute)

			w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/platformapi/core/content", auth(token), updateBody(id, tc.entries)))
			after := b.record(t, id)
			if tc.refused != "" {
				if w.IsSuccessful || fmt.Sprint(messages(w)) != tc.refused {
					t.Fatalf("answer %v %v, want refused with %s", w.IsSuccessful, messages(w), tc.refused)
				}
				if fmt.Sprint(after) != fmt.Sprint(before) {
					t.Fatalf("a refused update changed the record:\nbefore %+v\nafter  %+v", before, after)
				}
				return
			}
			if !w.IsSuccessful || string(w.RequestedObject) != fmt.Sprintf(`{"Id":%d}`, id) {
				t.Fatalf("update answer %v %s %v", w.IsSuccessful, w.RequestedObject, messages(w))
			}
			if got, want := after.Fields["Last Updated"], after.Updated.Format("2006-01-02T15:04:05"); got != want {
				t.Errorf("Last Updated = %v, want %s", got, want)
			}
			for name, old := range before.Fields {
				if name == "Last Updated" {
					continue
				}
				want, listed := tc.want[name]
				got, present := after.Fields[name]
				switch {
				case !listed && fmt.Sprint(got) != fmt.Sprint(old):
					t.Errorf("%s changed from %v to %v, want it kept", name, old, got)
				case listed && want == "-" && present:
					t.Errorf("%s = %v, want it cleared", name, got)
				case listed && want != "-" && fmt.Sprint(got) != want:
					t.Errorf("%s = %v, want %s", name, got, want)
				}
			}
			if !after.Created.Equal(before.Created) || !after.Updated.Equal(before.Updated.Add(90*time.Minute)) {
				t.Errorf("Created %v → %v, Updated %v → %v; want Created kept and Updated 90 minutes later",
					before.Created, after.Created, before.Updated, after.Updated)
			}
		})
	}
}

func TestUpdatedTimeIsShownInEveryView(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{IdleTimeout: 24 * time.Hour})
	token := b.login(t)
	id := b.create(t, token, updateBase)
	b.clock.Advance(3*time.Hour + 25*time.Minute)
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/api/core/content", auth(token), updateBody(id, `"16132":{"Type":1,"Value":"Renamed","FieldId":16132}`))); !w.IsSuccessful {
		t.Fatalf("update: %v", messages(w))
	}
	const created, updated = "2026-03-01T12:00:00", "2026-03-01T15:25:00"

	if r := b.record(t, id); r.Created.Format("2006-01-02T15:04:05") != created || r.Updated.Format("2006-01-02T15:04:05") != updated {
		t.Errorf("Records: Created %v, Updated %v", r.Created, r.Updated)
	}

	var view struct {
		Records []struct {
			ID      int64 `json:"Id"`
			Created string
			Updated string
		} `json:"records"`
	}
	if err := json.Unmarshal(b.call(t, "GET", "/sim/records.json", nil, "").body, &view); err != nil {
		t.Fatal(err)
	}
	last := view.Records[len(view.Records)-1]
	if last.ID != id || last.Created != created+"Z" || last.Updated != updated+"Z" {
		t.Errorf("JSON view: %+v", last)
	}

	page := string(b.call(t, "GET", "/sim/records", nil, "").body)
	section := page[strings.Index(page, fmt.Sprintf("#%d<", id)):]
	for _, want := range []string{
		"<tr><th>Created</th><td>2026-03-01 12:00:00 UTC</td></tr>",
		"<tr><th>Updated</th><td>2026-03-01 15:25:00 UTC</td></tr>",
		"<tr><th>Title</th><td><pre>" + html.EscapeString("Renamed") + "</pre></td></tr>",
	} {
		if !strings.Contains(section, want) {
			t.Errorf("records page lacks %s", want)
		}
	}

	w := decodeWrapper(t, b.call(t, "GET", fmt.Sprintf("/RSAArcher/platformapi/core/content/%d", id), auth(token), ""))
	var rec struct {
		FieldContents map[string]struct{ Value any }
	}
	if err := json.Unmarshal(w.RequestedObject, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.FieldContents["16101"].Value != created || rec.FieldContents["16102"].Value != updated {
		t.Errorf("First Published %v, Last Updated %v", rec.FieldContents["16101"].Value, rec.FieldContents["16102"].Value)
	}
}
