package archersim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// fakeClock is a settable clock for idle-timeout tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type bundle struct {
	sim   *archersim.Server
	srv   *httptest.Server
	clock *fakeClock
}

func setup(t *testing.T, opts archersim.Options) *bundle {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	if opts.Clock == nil {
		opts.Clock = clock.Now
	}
	if opts.VirtualDir == "" {
		opts.VirtualDir = "/RSAArcher"
	}
	sim, err := archersim.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &bundle{sim: sim, srv: srv, clock: clock}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (b *bundle) call(t *testing.T, method, path string, header map[string]string, body string) response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, b.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

const loginBody = `{"InstanceName":"Default","Username":"mail2archer","UserDomain":"","Password":"mail2archer-sandbox"}`

func (b *bundle) login(t *testing.T) string {
	t.Helper()
	r := b.call(t, "POST", "/RSAArcher/platformapi/core/security/login", map[string]string{"Content-Type": "application/json"}, loginBody)
	var w struct {
		RequestedObject struct{ SessionToken string }
		IsSuccessful    bool
	}
	if err := json.Unmarshal(r.body, &w); err != nil || !w.IsSuccessful {
		t.Fatalf("login failed: %d %s", r.status, r.body)
	}
	return w.RequestedObject.SessionToken
}

func auth(token string) map[string]string {
	return map[string]string{"Authorization": `Archer session-id="` + token + `"`, "Content-Type": "application/json"}
}

type wrapperOut struct {
	Links              []any
	RequestedObject    json.RawMessage
	IsSuccessful       bool
	ValidationMessages []struct {
		MessageKey       string
		ResourcedMessage *string
	}
}

func decodeWrapper(t *testing.T, r response) wrapperOut {
	t.Helper()
	var w wrapperOut
	if err := json.Unmarshal(r.body, &w); err != nil {
		t.Fatalf("status %d, body %q is not a wrapper: %v", r.status, r.body, err)
	}
	return w
}

func messages(w wrapperOut) []string {
	var out []string
	for _, m := range w.ValidationMessages {
		if m.ResourcedMessage != nil {
			out = append(out, *m.ResourcedMessage)
		} else {
			out = append(out, m.MessageKey)
		}
	}
	return out
}

func TestShippedFixtureFileLoadsAndEqualsTheEmbeddedOne(t *testing.T) {
	t.Parallel()
	f, err := archersim.LoadFixture("fixtures/security-incidents.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Applications) == 0 || f.Applications[0].Name != "Security Incidents" || f.Applications[0].Levels[0].ID != 232 {
		t.Fatalf("unexpected fixture head: %+v", f.Applications[0])
	}
	file, _ := os.ReadFile("fixtures/security-incidents.json")
	if !bytes.Equal(file, archersim.DefaultFixtureJSON()) {
		t.Fatal("embedded fixture differs from the shipped file")
	}
	want := map[string]struct {
		id   int64
		typ  int
		req  bool
		list bool
	}{
		"Title": {16132, 1, true, false}, "Incident Description": {16109, 1, true, false},
		"Incident Category": {24188, 4, true, true}, "Source": {16172, 4, false, true},
		"Criticality SOC": {24194, 4, false, true}, "SIEM Name": {24203, 1, false, false},
		"Other Incident Related?": {24189, 4, false, true}, "Impact to Business": {24196, 4, false, true},
		"Related Device": {20741, 9, false, false}, "Reported Email Key": {24304, 1, true, false},
		"Date Reported": {24307, 3, false, false}, "Date Received": {24308, 3, false, false},
		"Email Attachments": {24309, 11, false, false},
	}
	got := map[string]archersim.FixtureField{}
	for _, fd := range f.Applications[0].Levels[0].Fields {
		got[fd.Name] = fd
	}
	for name, w := range want {
		fd, ok := got[name]
		if !ok || fd.ID != w.id || fd.Type != w.typ || fd.IsRequired != w.req || (fd.RelatedValuesListID != 0) != w.list {
			t.Errorf("field %q = %+v, want %+v", name, fd, w)
		}
	}
}

func TestMalformedFixturesAreRejectedWithAReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, json, want string
	}{
		{"not json", `{`, "decode fixture"},
		{"unknown key", `{"Aplications":[]}`, "unknown field"},
		{"trailing data", `{} {}`, "trailing data"},
		{"level without alias", `{"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Fields":[]}]}]}`, "alias"},
		{"missing values list", `{"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Alias":"L","Fields":[{"Id":3,"Name":"F","Alias":"F","Type":4,"RelatedValuesListId":9}]}]}]}`, "values list 9 does not exist"},
		{"unsupported type", `{"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Alias":"L","Fields":[{"Id":3,"Name":"F","Alias":"F","Type":16}]}]}]}`, "not supported"},
		{"duplicate value id", `{"ValuesLists":[{"Id":1,"Name":"V","Values":[{"Id":5,"Name":"a","Selectable":true},{"Id":5,"Name":"b","Selectable":true}]}]}`, "duplicated id 5"},
		{"record on unknown level", `{"Records":[{"Id":1,"LevelId":99,"FieldContents":{}}]}`, "level 99 does not exist"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := archersim.ParseFixture([]byte(tc.json))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	// A seed record that misses a required field is refused by New.
	f, err := archersim.ParseFixture([]byte(`{"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Alias":"L","Fields":[{"Id":3,"Name":"F","Alias":"F","Type":1,"IsRequired":true}]}]}],"Records":[{"Id":7,"LevelId":2,"FieldContents":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archersim.New(archersim.Options{Fixture: f}); err == nil || !strings.Contains(err.Error(), "The F field is a required field.") {
		t.Fatalf("New err = %v", err)
	}
}

func TestLoginAnswersWithArchersExactShapes(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	r := b.call(t, "POST", "/RSAArcher/platformapi/core/security/login", map[string]string{"Content-Type": "application/json"}, loginBody)
	const prefix = `{"Links":[],"RequestedObject":{"SessionToken":"`
	if r.status != 200 || !bytes.HasPrefix(r.body, []byte(prefix)) || len(prefix) != 47 {
		t.Fatalf("login answer %d %s", r.status, r.body)
	}
	token := string(r.body[47 : 47+32])
	if !regexp.MustCompile(`^[0-9A-F]{32}$`).MatchString(token) {
		t.Fatalf("token %q is not 32 upper-case hex characters", token)
	}
	if !bytes.HasPrefix(r.body[47+32:], []byte(`"},"IsSuccessful":true,"ValidationMessages":[]}`)) {
		t.Fatalf("login answer tail: %s", r.body[47+32:])
	}

	// Lower-case keys, as one client sends them, bind too.
	lower := b.call(t, "POST", "/RSAArcher/api/core/security/login", nil, `{"instanceName":"default","username":"mail2archer","userDomain":"","password":"mail2archer-sandbox"}`)
	if w := decodeWrapper(t, lower); !w.IsSuccessful {
		t.Fatalf("lower-case login refused: %s", lower.body)
	}

	for _, body := range []string{
		`{"InstanceName":"Default","Username":"mail2archer","UserDomain":"","Password":"wrong"}`,
		`{"InstanceName":"Other","Username":"mail2archer","UserDomain":"","Password":"mail2archer-sandbox"}`,
		`{"InstanceName":"Default","Username":"nobody","Password":""}`,
		`not json`,
	} {
		r := b.call(t, "POST", "/RSAArcher/platformapi/core/security/login", nil, body)
		var raw map[string]any
		if err := json.Unmarshal(r.body, &raw); err != nil || r.status != 200 {
			t.Fatalf("failed login: %d %s", r.status, r.body)
		}
		msgs := raw["ValidationMessages"].([]any)
		m := msgs[0].(map[string]any)
		if raw["IsSuccessful"] != false || raw["RequestedObject"] != nil || m["MessageKey"] != "ValidationMessageTemplates:LoginNotValid" ||
			m["ResourcedMessage"] != nil || m["Reason"] != "Validation" || m["Severity"] != float64(3) || m["Location"] != float64(-1) {
			t.Fatalf("failed login shape: %s", r.body)
		}
	}
	if got := b.sim.LoginCount(); got != 2 {
		t.Fatalf("LoginCount = %d, want 2", got)
	}
}

func TestBothBasePathsUnderAnyCasingOfTheVirtualDirectory(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{VirtualDir: "/RSAArcher"})
	token := b.login(t)
	cases := []struct {
		path   string
		status int
		html   bool
	}{
		{"/RSAArcher/platformapi/core/system/application", 200, false},
		{"/RSAArcher/api/core/system/application", 200, false},
		{"/rsaarcher/PlatformAPI/Core/System/Application", 200, false},
		{"/Archer/platformapi/core/system/application", 404, true},
		{"/RSAArcher/restapi/core/system/application", 404, true},
		{"/platformapi/core/system/application", 404, true},
		{"/RSAArcherX/api/core/system/application", 404, true},
		{"/RSA%C4%B0rcher/api/core/system/application", 404, true},
		{"/RSAArcher/%C4%B0api/core/system/application", 404, true},
		{"/RSAArcher/api/core/system/applicat%E2%84%AAon", 404, true},
		{"/RSAArcher/ContentAPI/Security_Incidents", 200, false},
	}
	for _, tc := range cases {
		r := b.call(t, "GET", tc.path, auth(token), "")
		if r.status != tc.status || strings.Contains(r.header.Get("Content-Type"), "html") != tc.html {
			t.Errorf("%s: %d %s", tc.path, r.status, r.header.Get("Content-Type"))
		}
	}
}

func TestSessionHeaderIsAcceptedQuotedAndUnquoted(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	cases := []struct {
		header string
		status int
	}{
		{`Archer session-id="` + token + `"`, 200},
		{`Archer session-id=` + token, 200},
		{`archer Session-Id = "` + token + `"`, 200},
		{``, 401},
		{`Bearer ` + token, 401},
		{`Archer session-id=""`, 401},
		{`Archer session-id="0123456789ABCDEF0123456789ABCDEF"`, 401},
		{`Archer session-id="` + token, 401},
	}
	for _, tc := range cases {
		r := b.call(t, "GET", "/RSAArcher/platformapi/core/system/application", map[string]string{"Authorization": tc.header}, "")
		if r.status != tc.status {
			t.Errorf("header %q: status %d, want %d", tc.header, r.status, tc.status)
		}
		if r.status == 401 && !json.Valid(r.body) {
			t.Errorf("401 body is not JSON: %s", r.body)
		}
	}
}

func TestIdleTimeoutSlidesWithEachCall(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{IdleTimeout: 10 * time.Minute})
	token := b.login(t)
	get := func() int {
		return b.call(t, "GET", "/RSAArcher/platformapi/core/system/application", auth(token), "").status
	}
	b.clock.Advance(9 * time.Minute)
	if s := get(); s != 200 {
		t.Fatalf("after 9 min: %d", s)
	}
	b.clock.Advance(9 * time.Minute) // 18 min after login, 9 after last use
	if s := get(); s != 200 {
		t.Fatalf("sliding timeout: %d", s)
	}
	b.clock.Advance(10 * time.Minute)
	if s := get(); s != 401 {
		t.Fatalf("after 10 idle minutes: %d, want 401", s)
	}
}

func TestSingleSessionModeRevokesTheOlderToken(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{SingleSession: true})
	first := b.login(t)
	second := b.login(t)
	if s := b.call(t, "GET", "/RSAArcher/api/core/system/application", auth(first), "").status; s != 401 {
		t.Fatalf("old token: %d", s)
	}
	if s := b.call(t, "GET", "/RSAArcher/api/core/system/application", auth(second), "").status; s != 200 {
		t.Fatalf("new token: %d", s)
	}
	multi := setup(t, archersim.Options{})
	a, c := multi.login(t), multi.login(t)
	for _, tok := range []string{a, c} {
		if s := multi.call(t, "GET", "/RSAArcher/api/core/system/application", auth(tok), "").status; s != 200 {
			t.Fatalf("without single-session mode both tokens work: %d", s)
		}
	}
}

func TestLogoutInvalidatesTheToken(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	r := b.call(t, "POST", "/RSAArcher/platformapi/core/security/logout", auth(token), `{"Value":"`+token+`"}`)
	if w := decodeWrapper(t, r); !w.IsSuccessful {
		t.Fatalf("logout: %s", r.body)
	}
	if s := b.call(t, "GET", "/RSAArcher/platformapi/core/system/application", auth(token), "").status; s != 401 {
		t.Fatalf("after logout: %d", s)
	}
}

func TestMetadataHonoursMethodOverrideAndODataInURLOrBody(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	override := auth(token)
	override["X-Http-Method-Override"] = "get"
	names := func(r response) []string {
		var list []struct {
			RequestedObject struct{ Name string }
			IsSuccessful    bool
		}
		if err := json.Unmarshal(r.body, &list); err != nil {
			t.Fatalf("%d %s", r.status, r.body)
		}
		var out []string
		for _, w := range list {
			out = append(out, w.RequestedObject.Name)
		}
		return out
	}
	if got := names(b.call(t, "POST", "/RSAArcher/platformapi/core/system/application", override, `{"Value":"?$filter=Name eq 'Security Incidents'"}`)); fmt.Sprint(got) != "[Security Incidents]" {
		t.Fatalf("filter in body: %v", got)
	}
	if got := names(b.call(t, "GET", "/RSAArcher/platformapi/core/system/application?$filter=Name%20eq%20'Devices'", auth(token), "")); fmt.Sprint(got) != "[Devices]" {
		t.Fatalf("filter in URL: %v", got)
	}
	if got := names(b.call(t, "GET", "/RSAArcher/platformapi/core/system/application?$top=1", auth(token), "")); len(got) != 1 {
		t.Fatalf("$top: %v", got)
	}
	active := names(b.call(t, "GET", "/RSAArcher/platformapi/core/system/fielddefinition/application/75?$filter=IsActive%20eq%20true", auth(token), ""))
	all := names(b.call(t, "GET", "/RSAArcher/platformapi/core/system/fielddefinition/level/232", auth(token), ""))
	if len(all) != len(active)+1 || strings.Contains(fmt.Sprint(active), "Legacy Notes") {
		t.Fatalf("IsActive filter: %d active of %d", len(active), len(all))
	}
	// A verb the resource does not take, after the override, is refused.
	post := auth(token)
	post["X-Http-Method-Override"] = "DELETE"
	if s := b.call(t, "POST", "/RSAArcher/platformapi/core/system/application", post, "").status; s != 405 {
		t.Fatalf("override DELETE on metadata: %d", s)
	}
	for _, bad := range []string{"$filter=Name%20gt%201", "$filter=Name%20eq%20'x", "$top=-1", "$filter=Nope%20eq%201"} {
		if s := b.call(t, "GET", "/RSAArcher/platformapi/core/system/application?"+bad, auth(token), "").status; s != 400 {
			t.Errorf("%s: %d, want 400", bad, s)
		}
	}
}

func TestValuesListsComeAsTreeAndFlat(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	r := b.call(t, "GET", "/RSAArcher/platformapi/core/system/valueslistvalue/valueslist/1001", auth(token), "")
	var tree struct {
		RequestedObject struct {
			Children []struct {
				Data struct {
					ID           int64 `json:"Id"`
					Name         string
					IsSelectable bool
				}
				Children []struct {
					Data  struct{ Name string }
					Depth int
				}
				Depth int
			}
		}
		IsSuccessful bool
	}
	if err := json.Unmarshal(r.body, &tree); err != nil || !tree.IsSuccessful {
		t.Fatalf("tree: %s", r.body)
	}
	top := tree.RequestedObject.Children[0]
	if top.Data.Name != "Email Threats" || top.Data.IsSelectable || top.Depth != 0 || top.Children[0].Data.Name != "Phishing" || top.Children[0].Depth != 1 {
		t.Fatalf("tree head: %+v", top)
	}
	flat := b.call(t, "GET", "/RSAArcher/platformapi/core/system/valueslistvalue/flat/valueslist/1001", auth(token), "")
	var list []struct {
		RequestedObject struct {
			ID              int64 `json:"Id"`
			Name            string
			EnableOtherText bool
		}
	}
	if err := json.Unmarshal(flat.body, &list); err != nil || len(list) != 8 {
		t.Fatalf("flat: %s", flat.body)
	}
	if w := decodeWrapper(t, b.call(t, "GET", "/RSAArcher/platformapi/core/system/valueslistvalue/valueslist/4242", auth(token), "")); w.IsSuccessful || messages(w)[0] != "No resource found." {
		t.Fatalf("unknown list: %+v", w)
	}
}

const validRecord = `{"Content":{"LevelId":232,"FieldContents":{
 "16132":{"Type":1,"Tag":"Title","Value":"Phishing: invoice.zip","FieldId":16132},
 "16109":{"Type":1,"Value":"Reported by a user","FieldId":16109},
 "24304":{"Type":1,"Value":"key-1","FieldId":24304},
 "24188":{"Type":4,"Tag":"Incident Category","Value":{"ValuesListIds":[201693],"OtherText":null},"FieldId":24188}%s}}}`

func TestCreateValidatesRequiredFieldsAndTypes(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	r := b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), `{"Content":{"LevelId":232,"FieldContents":{"16132":{"Type":1,"Value":"only a title","FieldId":16132}}}}`)
	w := decodeWrapper(t, r)
	want := []string{"The Incident Description field is a required field.", "The Incident Category field is a required field.", "The Reported Email Key field is a required field."}
	if r.status != 200 || w.IsSuccessful || fmt.Sprint(messages(w)) != fmt.Sprint(want) {
		t.Fatalf("missing required: %d %s", r.status, r.body)
	}
	cases := []struct {
		name, extra, want string
	}{
		{"type mismatch", `,"24194":{"Type":1,"Value":"High","FieldId":24194}`, "The Criticality SOC field is of type 4, but the request gives type 1."},
		{"bad date", `,"24307":{"Type":3,"Value":"yesterday","FieldId":24307}`, "The value for the Date Reported field is not valid."},
		{"text as number", `,"24301":{"Type":1,"Value":12,"FieldId":24301}`, "The value for the Reporter field is not valid."},
		{"link without URL", `,"24312":{"Type":7,"Value":[{"Name":"x"}],"FieldId":24312}`, "The value for the Reference Links field is not valid."},
	}
	for _, tc := range cases {
		w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), fmt.Sprintf(validRecord, tc.extra)))
		if w.IsSuccessful || fmt.Sprint(messages(w)) != "["+tc.want+"]" {
			t.Errorf("%s: %+v", tc.name, messages(w))
		}
	}
	if w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), `{"Content":{"LevelId":999,"FieldContents":{}}}`)); w.IsSuccessful {
		t.Fatal("unknown level accepted")
	}
	for _, hostile := range []string{`{`, `[]`, `{"Content":null}`, `{"Content":{"LevelId":"x"}}`, `{"Content":{"LevelId":232,"FieldContents":{"abc":{}}}}`} {
		r := b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), hostile)
		if w := decodeWrapper(t, r); w.IsSuccessful {
			t.Errorf("hostile body %q accepted", hostile)
		}
	}
}

func TestCreateIsLenientLikeArcherUnlessStrict(t *testing.T) {
	t.Parallel()
	extra := `,"24310":{"Type":19,"IpAddressBytes":"999.1.2.3","FieldId":24310},"20741":{"Type":9,"Value":[{"ContentID":1}],"FieldId":20741},"24194":{"Type":4,"Value":{"ValuesListIds":[201693]},"FieldId":24194},"99999":{"Type":1,"Value":"x","FieldId":99999},"16100":{"Type":6,"Value":5,"FieldId":16100}`
	lenient := setup(t, archersim.Options{})
	token := lenient.login(t)
	w := decodeWrapper(t, lenient.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), fmt.Sprintf(validRecord, extra)))
	if !w.IsSuccessful {
		t.Fatalf("lenient create refused: %v", messages(w))
	}
	var created struct {
		ID int64 `json:"Id"`
	}
	_ = json.Unmarshal(w.RequestedObject, &created)
	if created.ID != 239643 {
		t.Fatalf("first id %d", created.ID)
	}
	got := decodeWrapper(t, lenient.call(t, "GET", fmt.Sprintf("/RSAArcher/platformapi/core/content/%d", created.ID), auth(token), ""))
	var rec struct {
		FieldContents map[string]struct {
			Value          json.RawMessage
			IpAddressBytes *string
		}
	}
	_ = json.Unmarshal(got.RequestedObject, &rec)
	if ip := rec.FieldContents["24310"].IpAddressBytes; ip != nil {
		t.Errorf("bad IP stored: %q", *ip)
	}
	for _, id := range []string{"20741", "24194"} {
		if v := string(rec.FieldContents[id].Value); v != "null" {
			t.Errorf("field %s should have been dropped, is %s", id, v)
		}
	}
	if v := string(rec.FieldContents["16100"].Value); v != "239643" {
		t.Errorf("tracking id = %s", v)
	}

	strict := setup(t, archersim.Options{Strict: true})
	token = strict.login(t)
	w = decodeWrapper(t, strict.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), fmt.Sprintf(validRecord, extra)))
	if w.IsSuccessful || len(w.ValidationMessages) != 5 {
		t.Fatalf("strict: %v", messages(w))
	}
}

func TestUpdateReplacesListsAndReadDeleteAnswerNotFound(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/api/core/content", auth(token), fmt.Sprintf(validRecord, `,"20741":{"Type":9,"Value":[{"ContentID":205522}],"FieldId":20741}`)))
	var created struct {
		ID int64 `json:"Id"`
	}
	_ = json.Unmarshal(w.RequestedObject, &created)
	put := auth(token)
	put["X-Http-Method-Override"] = "PUT"
	upd := fmt.Sprintf(`{"Content":{"Id":%d,"LevelId":232,"FieldContents":{"20741":{"Type":9,"Value":[{"ContentId":205523}],"FieldId":20741},"16132":{"Type":1,"Value":"New title","FieldId":16132}}}}`, created.ID)
	if w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/api/core/content", put, upd)); !w.IsSuccessful {
		t.Fatalf("update: %v", messages(w))
	}
	recs := b.sim.Records()
	last := recs[len(recs)-1]
	if fmt.Sprint(last.Fields["Related Device"]) != "[205523]" || last.Fields["Title"] != "New title" || last.Fields["Incident Description"] != "Reported by a user" {
		t.Fatalf("after update: %+v", last.Fields)
	}
	clear := fmt.Sprintf(`{"Content":{"Id":%d,"LevelId":232,"FieldContents":{"16132":{"Type":1,"Value":"","FieldId":16132}}}}`, created.ID)
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/api/core/content", auth(token), clear)); w.IsSuccessful || messages(w)[0] != "The Title field is a required field." {
		t.Fatalf("clearing a required field: %v", messages(w))
	}
	if w := decodeWrapper(t, b.call(t, "PUT", "/RSAArcher/api/core/content", auth(token), `{"Content":{"Id":1,"LevelId":232,"FieldContents":{}}}`)); w.IsSuccessful || messages(w)[0] != "No resource found." {
		t.Fatalf("update of unknown id: %v", messages(w))
	}
	path := fmt.Sprintf("/RSAArcher/api/core/content/%d", created.ID)
	if w := decodeWrapper(t, b.call(t, "DELETE", path, auth(token), "")); !w.IsSuccessful {
		t.Fatalf("delete: %v", messages(w))
	}
	for _, m := range []string{"GET", "DELETE"} {
		if w := decodeWrapper(t, b.call(t, m, path, auth(token), "")); w.IsSuccessful || messages(w)[0] != "No resource found." {
			t.Fatalf("%s after delete: %v", m, messages(w))
		}
	}
}

func TestAttachmentUploadToleratesWhitespaceAndEscapes(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{MaxAttachmentBytes: 1 << 20})
	token := b.login(t)
	data := bytes.Repeat([]byte("attachment \x00\xff bytes "), 5000)
	enc := base64.StdEncoding.EncodeToString(data)
	var wrapped strings.Builder
	for i := 0; i < len(enc); i += 76 {
		wrapped.WriteString(enc[i:min(i+76, len(enc))])
		wrapped.WriteString(`\r\n`)
	}
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"plain", `{"AttachmentName":"mail.eml","AttachmentBytes":"` + enc + `"}`, true},
		{"line breaks escaped", `{"AttachmentName":"mail.eml","IsSensitive":false,"AttachmentBytes":"` + wrapped.String() + `"}`, true},
		{"bytes first, unknown keys", `{"Extra":{"a":[1,2,{"b":null}]},"AttachmentBytes":"` + enc + `","AttachmentName":"mail.eml"}`, true},
		{"not base64", `{"AttachmentName":"x","AttachmentBytes":"@@@@"}`, false},
		{"no name", `{"AttachmentBytes":"` + enc + `"}`, false},
		{"truncated", `{"AttachmentName":"x","AttachmentBytes":"QUJD`, false},
		{"array", `[1,2]`, false},
		{"deep nesting", `{"x":` + strings.Repeat("[", 100) + `}`, false},
	}
	for _, tc := range cases {
		r := b.call(t, "POST", "/RSAArcher/platformapi/core/content/attachment", auth(token), tc.body)
		w := decodeWrapper(t, r)
		if w.IsSuccessful != tc.ok {
			t.Errorf("%s: %v %v", tc.name, w.IsSuccessful, messages(w))
			continue
		}
		if !tc.ok {
			continue
		}
		var id struct {
			ID int64 `json:"Id"`
		}
		_ = json.Unmarshal(w.RequestedObject, &id)
		a, found := b.sim.Attachment(id.ID)
		if !found || a.Name != "mail.eml" || !bytes.Equal(a.Data, data) {
			t.Errorf("%s: stored attachment differs (found %v, %d bytes)", tc.name, found, len(a.Data))
		}
		get := b.call(t, "GET", fmt.Sprintf("/RSAArcher/platformapi/core/content/attachment/%d", id.ID), auth(token), "")
		var down struct {
			RequestedObject struct {
				AttachmentName  string
				AttachmentBytes []byte
			}
		}
		if err := json.Unmarshal(get.body, &down); err != nil || !bytes.Equal(down.RequestedObject.AttachmentBytes, data) {
			t.Errorf("%s: download differs: %v", tc.name, err)
		}
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, 2<<20))
	if r := b.call(t, "POST", "/RSAArcher/platformapi/core/content/attachment", auth(token), `{"AttachmentName":"big","AttachmentBytes":"`+big+`"}`); r.status != 413 {
		t.Fatalf("oversized attachment: %d", r.status)
	}
}

func TestFaultsCanBeInjected(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	path := "/RSAArcher/platformapi/core/system/application"

	b.sim.FailNext(2, 500)
	for i := 0; i < 2; i++ {
		if s := b.call(t, "GET", path, auth(token), "").status; s != 500 {
			t.Fatalf("FailNext call %d: %d", i, s)
		}
	}
	if s := b.call(t, "GET", path, auth(token), "").status; s != 200 {
		t.Fatalf("after FailNext: %d", s)
	}

	b.sim.UnauthorizedAt(2)
	got := []int{b.call(t, "GET", path, auth(token), "").status, b.call(t, "GET", path, auth(token), "").status, b.call(t, "GET", path, auth(token), "").status}
	if fmt.Sprint(got) != "[200 401 200]" {
		t.Fatalf("UnauthorizedAt(2): %v", got)
	}

	b.sim.ExpireSessionsAt(2)
	got = []int{b.call(t, "GET", path, auth(token), "").status, b.call(t, "GET", path, auth(token), "").status}
	if fmt.Sprint(got) != "[200 401]" {
		t.Fatalf("ExpireSessionsAt(2): %v", got)
	}
	token = b.login(t)

	b.sim.HTMLRedirect(true)
	r := b.call(t, "GET", path, auth(token), "")
	if r.status != 200 || !strings.Contains(string(r.body), "window.top.location='/Default.aspx'") {
		t.Fatalf("HTML redirect: %d %s", r.status, r.body)
	}
	b.sim.HTMLRedirect(false)

	// While a request waits out the latency, the control methods answer.
	b.sim.SetLatency(time.Hour)
	ctxDone := make(chan struct{})
	go func() {
		defer close(ctxDone)
		req, _ := http.NewRequest("GET", b.srv.URL+path, nil)
		req.Header.Set("Authorization", "Archer session-id="+token)
		tr := &http.Transport{}
		c := &http.Client{Transport: tr, Timeout: 200 * time.Millisecond}
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			t.Error("a request under one hour of latency answered")
		}
		tr.CloseIdleConnections()
	}()
	for len(b.sim.Requests()) == 0 || b.sim.Requests()[len(b.sim.Requests())-1].Header.Get("Authorization") != "Archer session-id="+token {
		time.Sleep(time.Millisecond)
	}
	_ = b.sim.Records()
	<-ctxDone
	b.sim.SetLatency(0)

	reqs := b.sim.Requests()
	if len(reqs) < 10 || reqs[0].Path != "/RSAArcher/platformapi/core/security/login" || reqs[0].EffectiveMethod != "POST" {
		t.Fatalf("recorded requests: %d, first %+v", len(reqs), reqs[0])
	}
}

func TestContentAPIFiltersALevelByFieldAlias(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	for _, key := range []string{"key-1", "key-2", "O'Brien"} {
		body := strings.Replace(fmt.Sprintf(validRecord, ""), `"key-1"`, strconv(key), 1)
		if w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), body)); !w.IsSuccessful {
			t.Fatalf("create %s: %v", key, messages(w))
		}
	}
	find := func(filter string) (int, []map[string]any) {
		r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents?$filter="+filter, map[string]string{"Authorization": "Archer session-id=" + token}, "")
		var out struct {
			Value []map[string]any `json:"value"`
		}
		_ = json.Unmarshal(r.body, &out)
		return r.status, out.Value
	}
	if s, v := find("Reported_Email_Key%20eq%20'key-2'"); s != 200 || len(v) != 1 || v[0]["Security_Incidents_Id"] != float64(239644) {
		t.Fatalf("filter key-2: %d %v", s, v)
	}
	if s, v := find("Reported_Email_Key%20eq%20'O''Brien'"); s != 200 || len(v) != 1 {
		t.Fatalf("quoted literal: %d %v", s, v)
	}
	if s, v := find("Reported_Email_Key%20eq%20'none'"); s != 200 || len(v) != 0 {
		t.Fatalf("no match: %d %v", s, v)
	}
	if s, _ := find("Nope%20eq%20'x'"); s != 400 {
		t.Fatalf("unknown alias in filter: %d", s)
	}
	if r := b.call(t, "GET", "/RSAArcher/contentapi/security_incidents", map[string]string{"Authorization": "Archer session-id=" + token}, ""); r.status != 404 {
		t.Fatalf("level aliases are case-sensitive: %d", r.status)
	}
	r := b.call(t, "GET", "/RSAArcher/contentapi/", map[string]string{"Authorization": "Archer session-id=" + token}, "")
	if !strings.Contains(string(r.body), `"name":"Security_Incidents"`) {
		t.Fatalf("endpoints: %s", r.body)
	}
	if r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents", nil, ""); r.status != 401 {
		t.Fatalf("without session: %d", r.status)
	}
}

func strconv(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestRecordViewsAreReadOnlyAndEscapeContent(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	body := strings.Replace(fmt.Sprintf(validRecord, ""), `"Phishing: invoice.zip"`, `"<script>alert(1)</script>"`, 1)
	if w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), body)); !w.IsSuccessful {
		t.Fatal(messages(w))
	}
	page := b.call(t, "GET", "/sim/records", nil, "")
	if page.status != 200 || strings.Contains(string(page.body), "<script>alert") || !strings.Contains(string(page.body), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatalf("HTML view: %d", page.status)
	}
	js := b.call(t, "GET", "/sim/records.json", nil, "")
	var out struct {
		Records []archersim.Record `json:"records"`
	}
	if err := json.Unmarshal(js.body, &out); err != nil || len(out.Records) != 3 {
		t.Fatalf("JSON view: %v %s", err, js.body)
	}
	last := out.Records[2]
	if last.Level != "Security Incidents" || fmt.Sprint(last.Fields["Incident Category"]) != "[Phishing]" {
		t.Fatalf("JSON view record: %+v", last)
	}
	if s := b.call(t, "POST", "/sim/records.json", nil, "{}").status; s != 405 {
		t.Fatalf("POST to a view: %d", s)
	}
}
