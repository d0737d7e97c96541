package archersim_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

const applicationsPath = "/RSAArcher/platformapi/core/system/application"

func TestInjectedFailuresAnswerAsConfigured(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		inject     func(*archersim.Server)
		status     int
		retryAfter string
		html       bool
		body       string // exact body, when not HTML
	}{
		{"IIS error page", func(s *archersim.Server) { s.FailNextWith(2, archersim.Failure{Status: 500}) }, 500, "", true, ""},
		{"Web API message without IsSuccessful", func(s *archersim.Server) {
			s.FailNextWith(2, archersim.Failure{Status: 500, Body: archersim.FailureWebAPIMessage})
		}, 500, "", false, `{"Message":"An error has occurred."}` + "\n"},
		{"429 with Retry-After seconds", func(s *archersim.Server) { s.FailNextRetryAfter(2, 429, 7) }, 429, "7", true, ""},
		{"503 with Retry-After seconds", func(s *archersim.Server) { s.FailNextRetryAfter(2, 503, 120) }, 503, "120", true, ""},
		{"503 with a Retry-After date", func(s *archersim.Server) {
			s.FailNextWith(2, archersim.Failure{Status: 503, RetryAfter: "Wed, 21 Oct 2026 07:28:00 GMT"})
		}, 503, "Wed, 21 Oct 2026 07:28:00 GMT", true, ""},
		{"Web API message with Retry-After", func(s *archersim.Server) {
			s.FailNextWith(2, archersim.Failure{Status: 503, RetryAfter: "3", Body: archersim.FailureWebAPIMessage})
		}, 503, "3", false, `{"Message":"An error has occurred."}` + "\n"},
		{"a status out of range becomes 500", func(s *archersim.Server) { s.FailNextWith(2, archersim.Failure{Status: 42}) }, 500, "", true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, archersim.Options{})
			token := b.login(t)
			tc.inject(b.sim)
			for i := range 2 {
				r := b.call(t, "GET", applicationsPath, auth(token), "")
				if r.status != tc.status || r.header.Get("Retry-After") != tc.retryAfter {
					t.Fatalf("call %d: %d Retry-After %q, want %d %q", i+1, r.status, r.header.Get("Retry-After"), tc.status, tc.retryAfter)
				}
				isHTML := strings.HasPrefix(r.header.Get("Content-Type"), "text/html")
				if isHTML != tc.html || !tc.html && string(r.body) != tc.body {
					t.Fatalf("call %d: %s %q", i+1, r.header.Get("Content-Type"), r.body)
				}
				if !tc.html && bytes.Contains(r.body, []byte("IsSuccessful")) {
					t.Fatalf("call %d: the Web API message carries IsSuccessful", i+1)
				}
			}
			r := b.call(t, "GET", applicationsPath, auth(token), "")
			if r.status != 200 || r.header.Get("Retry-After") != "" {
				t.Fatalf("after the failures: %d Retry-After %q", r.status, r.header.Get("Retry-After"))
			}
		})
	}
}

func TestFailNextWithZeroCancelsAPendingFailure(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	b.sim.FailNextRetryAfter(5, 429, 7)
	b.sim.FailNextWith(0, archersim.Failure{Status: 503})
	if r := b.call(t, "GET", applicationsPath, auth(token), ""); r.status != 200 {
		t.Fatalf("status %d after cancelling", r.status)
	}
}

func TestAFailureLimitedToAPathSparesTheOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	b.sim.FailNextWith(1, archersim.Failure{Status: 501, PathSuffix: "/core/system/APPLICATION"})
	if r := b.call(t, "GET", "/RSAArcher/platformapi/core/system/level", auth(token), ""); r.status == 501 {
		t.Fatal("a request on another path took the failure")
	}
	if r := b.call(t, "GET", applicationsPath, auth(token), ""); r.status != 501 {
		t.Fatalf("the matching request answered %d, want 501", r.status)
	}
	if r := b.call(t, "GET", applicationsPath, auth(token), ""); r.status != 200 {
		t.Fatalf("after the one failure: %d", r.status)
	}
}

// isSuccessful returns the raw IsSuccessful member of one wrapper.
func isSuccessful(t *testing.T, body []byte) string {
	t.Helper()
	var w map[string]json.RawMessage
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatalf("%q: %v", body, err)
	}
	return string(w["IsSuccessful"])
}

func TestStringBooleansTurnEveryWrapperFlagIntoAString(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	b.sim.StringBooleans(true)

	login := b.call(t, "POST", "/RSAArcher/platformapi/core/security/login", nil, loginBody)
	if got := isSuccessful(t, login.body); got != `"true"` {
		t.Fatalf("login IsSuccessful = %s: %s", got, login.body)
	}
	if !bytes.HasPrefix(login.body, []byte(`{"Links":[],"RequestedObject":{"SessionToken":"`)) {
		t.Fatalf("login answer no longer starts with the documented prefix: %s", login.body)
	}
	var lw struct{ RequestedObject struct{ SessionToken string } }
	_ = json.Unmarshal(login.body, &lw)
	token := lw.RequestedObject.SessionToken
	if bad := b.call(t, "POST", "/RSAArcher/platformapi/core/security/login", nil, `{"Username":"x","Password":"y"}`); isSuccessful(t, bad.body) != `"false"` {
		t.Fatalf("refused login: %s", bad.body)
	}

	var list []map[string]json.RawMessage
	if err := json.Unmarshal(b.call(t, "GET", applicationsPath, auth(token), "").body, &list); err != nil || len(list) != 2 {
		t.Fatalf("list: %v %d", err, len(list))
	}
	for i, w := range list {
		if string(w["IsSuccessful"]) != `"true"` {
			t.Errorf("list element %d IsSuccessful = %s", i, w["IsSuccessful"])
		}
	}
	if got := isSuccessful(t, b.call(t, "GET", "/RSAArcher/platformapi/core/system/level/232", auth(token), "").body); got != `"true"` {
		t.Errorf("by id: %s", got)
	}
	if got := isSuccessful(t, b.call(t, "GET", "/RSAArcher/platformapi/core/content/1", auth(token), "").body); got != `"false"` {
		t.Errorf("not found: %s", got)
	}

	data := []byte("evidence")
	up := b.call(t, "POST", "/RSAArcher/platformapi/core/content/attachment", auth(token), `{"AttachmentName":"a.eml","AttachmentBytes":"`+base64.StdEncoding.EncodeToString(data)+`"}`)
	if got := isSuccessful(t, up.body); got != `"true"` {
		t.Fatalf("upload: %s", up.body)
	}
	down := b.call(t, "GET", "/RSAArcher/platformapi/core/content/attachment/901", auth(token), "")
	var dw struct {
		RequestedObject struct{ AttachmentBytes []byte }
		IsSuccessful    string
	}
	if err := json.Unmarshal(down.body, &dw); err != nil || dw.IsSuccessful != "true" || !bytes.Equal(dw.RequestedObject.AttachmentBytes, data) {
		t.Fatalf("download: %v %s", err, down.body)
	}

	b.sim.StringBooleans(false)
	if got := isSuccessful(t, b.call(t, "GET", "/RSAArcher/platformapi/core/system/level/232", auth(token), "").body); got != `true` {
		t.Errorf("after switching off: %s", got)
	}
}

func TestOmitAliasesHidesThemAndClosesTheContentAPI(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	hdr := map[string]string{"Authorization": "Archer session-id=" + token}
	check := func(omitted bool) {
		t.Helper()
		for _, path := range []string{
			"/RSAArcher/platformapi/core/system/level/module/75",
			"/RSAArcher/platformapi/core/system/fielddefinition/level/232",
			"/RSAArcher/platformapi/core/system/fielddefinition/application/75",
		} {
			var list []struct{ RequestedObject map[string]any }
			if err := json.Unmarshal(b.call(t, "GET", path, auth(token), "").body, &list); err != nil || len(list) == 0 {
				t.Fatalf("%s: %v", path, err)
			}
			for _, w := range list {
				if _, has := w.RequestedObject["Alias"]; has == omitted {
					t.Fatalf("%s: %v has Alias %v, want %v", path, w.RequestedObject["Name"], has, !omitted)
				}
			}
		}
		for _, path := range []string{"/RSAArcher/platformapi/core/system/level/232", "/RSAArcher/platformapi/core/system/fielddefinition/16132"} {
			var w struct{ RequestedObject map[string]any }
			_ = json.Unmarshal(b.call(t, "GET", path, auth(token), "").body, &w)
			if _, has := w.RequestedObject["Alias"]; has == omitted {
				t.Fatalf("%s: has Alias %v, want %v", path, has, !omitted)
			}
		}
		var app struct{ RequestedObject map[string]any }
		_ = json.Unmarshal(b.call(t, "GET", applicationsPath+"/75", auth(token), "").body, &app)
		if app.RequestedObject["Alias"] != "Security_Incidents" {
			t.Fatalf("the application keeps its alias: %v", app.RequestedObject)
		}
		var endpoints struct {
			Value []map[string]any `json:"value"`
		}
		_ = json.Unmarshal(b.call(t, "GET", "/RSAArcher/contentapi/", hdr, "").body, &endpoints)
		level := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents?$filter=Reported_Email_Key%20eq%20'x'", hdr, "")
		if omitted && (len(endpoints.Value) != 0 || level.status != 404) || !omitted && (len(endpoints.Value) != 2 || level.status != 200) {
			t.Fatalf("omitted=%v: %d endpoints, level read %d", omitted, len(endpoints.Value), level.status)
		}
	}
	check(false)
	b.sim.OmitAliases(true)
	check(true)
	b.sim.OmitAliases(false)
	check(false)
}

func TestForbidContentAPIAnswers403AndListsNoLevel(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	hdr := map[string]string{"Authorization": "Archer session-id=" + token}
	b.sim.ForbidContentAPI(true)

	r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents?$filter=Reported_Email_Key%20eq%20'x'", hdr, "")
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if r.status != 403 || json.Unmarshal(r.body, &e) != nil || e.Error.Message == "" {
		t.Fatalf("forbidden read: %d %s", r.status, r.body)
	}
	var endpoints struct {
		Value []map[string]any `json:"value"`
	}
	if r := b.call(t, "GET", "/RSAArcher/contentapi/", hdr, ""); r.status != 200 || json.Unmarshal(r.body, &endpoints) != nil || len(endpoints.Value) != 0 {
		t.Fatalf("endpoints: %d %s", r.status, r.body)
	}
	if r := b.call(t, "GET", "/RSAArcher/contentapi/No_Such_Level", hdr, ""); r.status != 404 {
		t.Fatalf("unknown level: %d", r.status)
	}
	if r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents", nil, ""); r.status != 401 {
		t.Fatalf("without a session: %d, want 401 before 403", r.status)
	}
	if w := decodeWrapper(t, b.call(t, "GET", "/RSAArcher/platformapi/core/content/205522", auth(token), "")); !w.IsSuccessful {
		t.Fatal("the REST API must stay readable")
	}
	b.sim.ForbidContentAPI(false)
	if r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents", hdr, ""); r.status != 200 {
		t.Fatalf("after switching off: %d", r.status)
	}
}

func TestContentAPISessionFromHeaderOrCookie(t *testing.T) {
	t.Parallel()
	cases := []struct {
		cookieOnly     bool
		header, cookie string // "ok", "bad" or ""
		cookieName     string // default __ArcherSessionCookie__
		want           int
	}{
		{false, "ok", "", "", 200},
		{false, "", "ok", "", 200},
		{false, "ok", "ok", "", 200},
		{false, "", "", "", 401},
		{false, "bad", "", "", 401},
		{false, "", "bad", "", 401},
		{false, "", "ok", "ArcherSessionCookie", 401},
		{true, "ok", "", "", 401},
		{true, "", "ok", "", 200},
		{true, "ok", "ok", "", 200},
		{true, "ok", "bad", "", 401},
	}
	b := setup(t, archersim.Options{})
	token := b.login(t)
	value := func(kind string) string {
		if kind == "bad" {
			return "0123456789ABCDEF0123456789ABCDEF"
		}
		return token
	}
	// The switch is server-wide, so the cases run in order.
	for _, tc := range cases {
		b.sim.ContentAPICookieOnly(tc.cookieOnly)
		hdr := map[string]string{}
		if tc.header != "" {
			hdr["Authorization"] = `Archer session-id="` + value(tc.header) + `"`
		}
		if tc.cookie != "" {
			name := tc.cookieName
			if name == "" {
				name = "__ArcherSessionCookie__"
			}
			hdr["Cookie"] = name + "=" + value(tc.cookie)
		}
		name := fmt.Sprintf("cookieOnly=%v header=%q cookie=%q %s", tc.cookieOnly, tc.header, tc.cookie, tc.cookieName)
		if r := b.call(t, "GET", "/RSAArcher/contentapi/Security_Incidents", hdr, ""); r.status != tc.want {
			t.Errorf("%s: %d, want %d", name, r.status, tc.want)
		}
		// The REST API takes the header only, whatever the switch.
		rest := b.call(t, "GET", applicationsPath, hdr, "")
		if wantREST := map[bool]int{true: 200, false: 401}[tc.header == "ok"]; rest.status != wantREST {
			t.Errorf("%s: REST answered %d, want %d", name, rest.status, wantREST)
		}
	}
}

func TestAnInjectedValidationFailureIsArchersRefusal(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	b.sim.FailNextWith(1, archersim.Failure{Body: archersim.FailureValidation})
	r := b.call(t, "GET", applicationsPath, auth(token), "")
	var w struct {
		IsSuccessful       bool
		ValidationMessages []struct{ MessageKey, ResourcedMessage string }
	}
	if err := json.Unmarshal(r.body, &w); err != nil || r.status != 200 || w.IsSuccessful || len(w.ValidationMessages) != 1 ||
		!strings.HasSuffix(w.ValidationMessages[0].MessageKey, "RequiredFieldMissing") ||
		w.ValidationMessages[0].ResourcedMessage != "The Incident Summary field is a required field." {
		t.Fatalf("%d %s (%v)", r.status, r.body, err)
	}
	if r := b.call(t, "GET", applicationsPath, auth(token), ""); r.status != 200 || bytes.Contains(r.body, []byte("RequiredFieldMissing")) {
		t.Fatalf("after the failure: %d %s", r.status, r.body)
	}
}
