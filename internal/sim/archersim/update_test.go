package archersim_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
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
 "24311":{"Type":2,"Value":2,"FieldId":24311},
 "24307":{"Type":3,"Value":"2026-02-27T08:00:00","FieldId":24307},
 "24309":{"Type":11,"Value":[901],"FieldId":24309}`)

func updateBody(id int64, entries string) string {
	return fmt.Sprintf(`{"Content":{"Id":%d,"LevelId":232,"FieldContents":{%s}}}`, id, entries)
}

// upload stores an attachment and returns its id.
func (b *bundle) upload(t *testing.T, token, name string, data []byte) int64 {
	t.Helper()
	w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content/attachment", auth(token),
		fmt.Sprintf(`{"AttachmentName":%s,"AttachmentBytes":"%s"}`, jsonString(name), base64.StdEncoding.EncodeToString(data))))
	var up struct {
		ID int64 `json:"Id"`
	}
	if !w.IsSuccessful || json.Unmarshal(w.RequestedObject, &up) != nil || up.ID == 0 {
		t.Fatalf("upload %s: %s %v", name, w.RequestedObject, messages(w))
	}
	return up.ID
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
		{name: "an attachment list is replaced, not merged",
			entries: `"24309":{"Type":11,"Value":[902],"FieldId":24309}`,
			want:    map[string]string{"Email Attachments": "[map[Id:902 Name:second.eml Size:6]]"}},
		{name: "a date is replaced",
			entries: `"24307":{"Type":3,"Value":"3/1/2026 1:30 PM","FieldId":24307}`,
			want:    map[string]string{"Date Reported": "2026-03-01T13:30:00"}},
		{name: "an IP address is replaced",
			entries: `"24310":{"Type":19,"IpAddressBytes":"2001:db8::7","FieldId":24310}`,
			want:    map[string]string{"Sender IP": "2001:db8::7"}},
		{name: "fields the record never had are set",
			entries: `"24315":{"Type":2,"Value":3,"FieldId":24315},"24316":{"Type":1,"Value":"alice@contoso.com<br>bob@contoso.com","FieldId":24316},"24317":{"Type":3,"Value":"2026-03-01T13:29:00","FieldId":24317}`,
			want:    map[string]string{"Number of Reports": "3", "Reporters": "alice@contoso.com<br>bob@contoso.com", "Latest Report": "2026-03-01T13:29:00"}},
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
		{name: "a number given as text refuses the whole update",
			entries: `"24315":{"Type":2,"Value":"three","FieldId":24315},"16132":{"Type":1,"Value":"New title","FieldId":16132}`,
			refused: "[The value for the Number of Reports field is not valid.]"},
		{name: "strict: an unknown field refuses the whole update", strict: true,
			entries: `"16132":{"Type":1,"Value":"New title","FieldId":16132},"99999":{"Type":1,"Value":"x","FieldId":99999}`,
			refused: "[Field 99999 is not an active field of level 232.]"},
		{name: "strict: a system field refuses the whole update", strict: true,
			entries: `"16102":{"Type":22,"Value":"2020-01-01T00:00:00","FieldId":16102}`,
			refused: "[The Last Updated field is calculated by the system and cannot be set.]"},
		{name: "strict: an unknown attachment is refused", strict: true,
			entries: `"24309":{"Type":11,"Value":[902,4711],"FieldId":24309}`,
			refused: "[The Email Attachments field references the attachment 4711, which does not exist or cannot be selected.]"},
		{name: "a bad date refuses the whole update",
			entries: `"16132":{"Type":1,"Value":"New title","FieldId":16132},"24307":{"Type":3,"Value":"yesterday","FieldId":24307}`,
			refused: "[The value for the Date Reported field is not valid.]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, archersim.Options{Strict: tc.strict, IdleTimeout: 24 * time.Hour})
			token := b.login(t)
			for i, name := range []string{"first.eml", "second.eml"} {
				if got := b.upload(t, token, name, []byte(name[:len(name)-4])); got != int64(901+i) {
					t.Fatalf("attachment %s has id %d, want %d", name, got, 901+i)
				}
			}
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
			names := map[string]bool{}
			for _, fields := range []map[string]any{before.Fields, after.Fields} {
				for name := range fields {
					names[name] = true
				}
			}
			for name := range tc.want {
				names[name] = true
			}
			for name := range names {
				if name == "Last Updated" {
					continue
				}
				want, listed := tc.want[name]
				old, had := before.Fields[name]
				got, present := after.Fields[name]
				switch {
				case !listed && (had != present || fmt.Sprint(got) != fmt.Sprint(old)):
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

// campaignUpdate is an update of the three campaign fields.
func campaignUpdate(id int64, reports int, reporters, latest string) string {
	return updateBody(id, fmt.Sprintf(`"24315":{"Type":2,"Value":%d,"FieldId":24315},"24316":{"Type":1,"Value":%s,"FieldId":24316},"24317":{"Type":3,"Value":%s,"FieldId":24317}`,
		reports, jsonString(reporters), jsonString(latest)))
}

func TestCampaignFieldsAreReplacedByEachUpdateAndShownInEveryView(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{IdleTimeout: 24 * time.Hour, Strict: true})
	token := b.login(t)
	b.upload(t, token, "first.eml", []byte("first"))
	id := b.create(t, token, updateBase)
	quiet := b.create(t, token, strings.Replace(updateBase, "key-1", "key-2", 1))

	// Two later reports: each update carries the whole list of reporters,
	// which replaces the stored one.
	const (
		two   = `alice@contoso.com (2026-03-01 12:05)<br>bob@contoso.com (2026-03-01 12:40)`
		three = two + `<br>carol &lt;carol@contoso.com&gt; (2026-03-01 13:10)`
	)
	b.clock.Advance(40 * time.Minute)
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/platformapi/core/content", auth(token), campaignUpdate(id, 2, two, "2026-03-01T12:40:00"))); !w.IsSuccessful {
		t.Fatalf("first update: %v", messages(w))
	}
	b.clock.Advance(30 * time.Minute)
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/platformapi/core/content", auth(token), campaignUpdate(id, 3, three, "2026-03-01T13:10:00"))); !w.IsSuccessful {
		t.Fatalf("second update: %v", messages(w))
	}

	r := b.record(t, id)
	if r.Fields["Number of Reports"] != float64(3) || r.Fields["Reporters"] != three || r.Fields["Latest Report"] != "2026-03-01T13:10:00" {
		t.Errorf("campaign fields: %v, %q, %v", r.Fields["Number of Reports"], r.Fields["Reporters"], r.Fields["Latest Report"])
	}
	if r.Fields["Title"] != "Original title" || !r.Updated.Equal(r.Created.Add(70*time.Minute)) {
		t.Errorf("Title %v, Created %v, Updated %v", r.Fields["Title"], r.Created, r.Updated)
	}

	// The Content API, which lookups use, reads them by alias.
	odata := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents?$filter=Number_of_Reports%20eq%203", auth(token), "")
	var list struct {
		Value []map[string]any `json:"value"`
	}
	if err := json.Unmarshal(odata.body, &list); err != nil || len(list.Value) != 1 {
		t.Fatalf("Content API: %d %s", odata.status, odata.body)
	}
	if got := list.Value[0]; got["Security_Incidents_Id"] != float64(id) || got["Reporters"] != three || got["Latest_Report"] != "2026-03-01T13:10:00" {
		t.Errorf("Content API record: %v", got)
	}

	// The page lists every field of the level, set or not, in the
	// fixture's order, after Created and Updated; the record that was not
	// updated shows the campaign fields empty.
	page := string(b.call(t, "GET", "/sim/records", nil, "").body)
	updated := page[strings.Index(page, fmt.Sprintf("#%d<", id)):]
	other := page[strings.Index(page, fmt.Sprintf("#%d<", quiet)):strings.Index(page, fmt.Sprintf("#%d<", id))]
	order := []string{"<th>Created</th><td>2026-03-01 12:00:00 UTC</td>", "<th>Updated</th><td>2026-03-01 13:10:00 UTC</td>",
		"<th>Tracking ID</th>", "<th>Title</th>", "<th>Assigned Analysts</th>",
		"<th>Number of Reports</th><td><pre>3</pre></td>",
		"<th>Reporters <small>(rich text)</small></th><td><iframe",
		"<th>Latest Report</th><td><pre>2026-03-01T13:10:00</pre></td>"}
	at := 0
	for _, want := range order {
		i := strings.Index(updated[at:], want)
		if i < 0 {
			t.Fatalf("record %d's section lacks %s after position %d", id, want, at)
		}
		at += i + len(want)
	}
	if !strings.Contains(updated, html.EscapeString("<br>carol &lt;carol@contoso.com&gt; (2026-03-01 13:10)</body>")) {
		t.Errorf("the Reporters frame does not hold the stored value")
	}
	if strings.Contains(updated, "Legacy Notes") {
		t.Error("an inactive field is shown")
	}
	for _, name := range []string{"Number of Reports", "Reporters", "Latest Report", "Observables"} {
		if want := "<tr><th>" + name + "</th><td><small>empty</small></td></tr>"; !strings.Contains(other, want) {
			t.Errorf("record %d's section lacks %s", quiet, want)
		}
	}
	if n := strings.Count(other, "<iframe"); n != 1 {
		t.Errorf("record %d has %d frames, want 1 (Incident Description): an empty rich text field is no frame", quiet, n)
	}
}

func TestOnUpdateRunsAfterTheUpdateIsStoredAndBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{IdleTimeout: 24 * time.Hour})
	token := b.login(t)
	id := b.create(t, token, updateBase)

	// A refused update does not call the hook: the refusal answers at once.
	called := make(chan int64, 1)
	b.sim.OnUpdate(func(got int64) { called <- got })
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/platformapi/core/content", auth(token), updateBody(id, `"16132":{"Type":1,"Value":"","FieldId":16132}`))); w.IsSuccessful {
		t.Fatal("clearing the title was accepted")
	}
	select {
	case got := <-called:
		t.Fatalf("the hook ran for a refused update of %d", got)
	default:
	}

	// An accepted update: the hook sees the stored change while the client
	// still waits for its answer.
	release := make(chan struct{})
	seen := make(chan archersim.Record, 1)
	b.sim.OnUpdate(func(got int64) {
		for _, r := range b.sim.Records() {
			if r.ID == got {
				seen <- r
			}
		}
		<-release
	})
	answered := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, b.srv.URL+"/RSAArcher/platformapi/core/content",
			strings.NewReader(updateBody(id, `"16132":{"Type":1,"Value":"Renamed","FieldId":16132}`)))
		for k, v := range auth(token) {
			req.Header.Set(k, v)
		}
		resp, err := b.srv.Client().Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		answered <- err
	}()
	r := <-seen
	if r.Fields["Title"] != "Renamed" {
		t.Errorf("the hook saw Title %v, want the update stored", r.Fields["Title"])
	}
	select {
	case err := <-answered:
		t.Fatalf("the client was answered (%v) while the hook ran", err)
	default:
	}
	close(release)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	b.sim.OnUpdate(nil)
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/platformapi/core/content", auth(token), updateBody(id, ""))); !w.IsSuccessful {
		t.Fatalf("update without a hook: %v", messages(w))
	}
}
