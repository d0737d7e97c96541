package archer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/outcome"
)

// The response shapes below are copied verbatim from the protocol notes.
const (
	notesLoginOK      = `{"Links":[],"RequestedObject":{"SessionToken":"C204E18D0ED58E288533F39C455A36E8"},"IsSuccessful":true,"ValidationMessages":[]}`
	notesLoginMock    = `{"RequestedObject":{"SessionToken":"session-id"},"IsSuccessful":true}`
	notesLoginFailure = `{"IsSuccessful":false,"RequestedObject":null,"ValidationMessages":[{"Reason":"Validation","Severity":3,
 "MessageKey":"ValidationMessageTemplates:LoginNotValid","Description":"","Location":-1,"ErroredValue":null,
 "Validator":"ArcherApi.Controllers.SecurityController, ArcherApi, Version=6.5.200.1045, Culture=neutral, PublicKeyToken=null",
 "XmlData":null,"ResourcedMessage":null}]}`
	notesCreated  = `{"Links":[],"RequestedObject":{"Id":239643},"IsSuccessful":true,"ValidationMessages":[]}`
	notesRecord   = `{"Links":[],"RequestedObject":{"Id":1010,"LevelId":123,"FieldContents":{"2":{"Type":1,"Value":"The device name","FieldId":2}}},"IsSuccessful":true,"ValidationMessages":[]}`
	notesNotFound = `{"IsSuccessful":false,"RequestedObject":null,"ValidationMessages":[{"ResourcedMessage":"No resource found."}]}`
	notesRequired = `{"IsSuccessful":false,"RequestedObject":null,"ValidationMessages":[{"ResourcedMessage":"The Device Name field is a required field."}]}`
	notesLevels   = `[{"IsSuccessful":true,"RequestedObject":{"Id":123}}]`
	notesTree     = `{"RequestedObject":{"Children":[{"Data":{"Id":83998,"Name":"Corporate","IsSelectable":false},"Children":[{"Data":{"Id":83999,"Name":"Finance","IsSelectable":true},"Children":[],"Depth":1}],"Depth":0}]},"IsSuccessful":true,"ValidationMessages":[],"Links":[]}`
	notesCreate   = `{"Content":{"LevelId":232,"FieldContents":{"16132":{"Type":1,"Tag":"Title","Value":"Phishing: invoice.zip","FieldId":16132},"24188":{"Type":4,"Tag":"Incident Category","Value":{"ValuesListIds":[201693],"OtherText":null},"FieldId":24188}}}}`
)

func TestResponseShapesFromTheNotesDecode(t *testing.T) {
	t.Parallel()
	var sc struct{ SessionToken string }
	if err := decodeWrapper("login", []byte(notesLoginOK), &sc, nil); err != nil || sc.SessionToken != "C204E18D0ED58E288533F39C455A36E8" {
		t.Fatalf("login ok: %q %v", sc.SessionToken, err)
	}
	if err := decodeWrapper("login", []byte(notesLoginMock), &sc, nil); err != nil || sc.SessionToken != "session-id" {
		t.Fatalf("login mock: %v", err)
	}
	var ve *ValidationError
	if err := decodeWrapper("login", []byte(notesLoginFailure), &sc, nil); !errors.As(err, &ve) || !slices.Equal(ve.Messages, []string{"ValidationMessageTemplates:LoginNotValid"}) {
		t.Fatalf("login failure: %v", err)
	}
	var id idObject
	if err := decodeWrapper("create", []byte(notesCreated), &id, nil); err != nil || id.ID != 239643 {
		t.Fatalf("created: %v", err)
	}
	if err := decodeWrapper("read", []byte(notesNotFound), nil, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("not found: %v", err)
	}
	if err := decodeWrapper("create", []byte(notesRequired), nil, nil); !errors.As(err, &ve) || ve.Error() != "archer create: The Device Name field is a required field." || errors.Is(err, ErrNotFound) {
		t.Fatalf("required: %v", err)
	}
	levels, err := decodeList[levelDTO]("levels", []byte(notesLevels))
	if err != nil || len(levels) != 1 || levels[0].ID != 123 {
		t.Fatalf("levels: %v %v", levels, err)
	}
	if _, err := decodeList[levelDTO]("levels", []byte(notesNotFound)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a single failed wrapper where a list was expected: %v", err)
	}
	for _, bad := range []string{``, `{`, `[]x`, `{"no":"wrapper"}`, `[{"IsSuccessful":true,"RequestedObject":"str"}]`, `"text"`} {
		if err := decodeWrapper("x", []byte(bad), &id, nil); err == nil {
			t.Errorf("decodeWrapper accepted %q", bad)
		}
	}
}

func TestRecordMarshalsToTheDocumentedCreateBody(t *testing.T) {
	t.Parallel()
	title := Field{ID: 16132, Name: "Title", Type: FieldText, LevelID: 232}
	cat := Field{ID: 24188, Name: "Incident Category", Type: FieldValuesList, LevelID: 232}
	rec := NewRecord(232).Text(title, "Phishing: invoice.zip").ValuesList(cat, []int64{201693}, "")
	got, err := json.Marshal(rec)
	if err != nil || string(got) != notesCreate {
		t.Fatalf("create body\n got %s\nwant %s", got, notesCreate)
	}
	entry := func(r *Record, id int64) string {
		b, _ := json.Marshal(r.entries[id])
		return string(b)
	}
	at := time.Date(2026, 3, 1, 9, 30, 0, 0, time.FixedZone("X", 3600))
	cases := []struct {
		name string
		rec  *Record
		id   int64
		want string
	}{
		{"numeric", NewRecord(1).Numeric(Field{ID: 2, Name: "N", Type: FieldNumeric}, 123.45), 2, `{"Type":2,"Tag":"N","Value":123.45,"FieldId":2}`},
		{"date", NewRecord(1).Date(Field{ID: 3, Name: "D", Type: FieldDate}, at), 3, `{"Type":3,"Tag":"D","Value":"2026-03-01T08:30:00","FieldId":3}`},
		{"values list with other text", NewRecord(1).ValuesList(Field{ID: 4, Name: "V", Type: FieldValuesList}, []int64{471}, "free text"), 4, `{"Type":4,"Tag":"V","Value":{"ValuesListIds":[471],"OtherText":"free text"},"FieldId":4}`},
		{"external links", NewRecord(1).ExternalLinks(Field{ID: 7, Name: "L", Type: FieldExternalLinks}, []Link{{Name: "VT", URL: "https://vt"}}), 7, `{"Type":7,"Tag":"L","Value":[{"Name":"VT","URL":"https://vt"}],"FieldId":7}`},
		{"users and groups", NewRecord(1).UsersGroups(Field{ID: 8, Name: "U", Type: FieldUsersGroups}, []int64{20}, []int64{30}), 8, `{"Type":8,"Tag":"U","Value":{"UserList":[{"ID":20}],"GroupList":[{"ID":30}]},"FieldId":8}`},
		{"cross-reference", NewRecord(1).CrossReference(Field{ID: 9, Name: "X", Type: FieldCrossReference}, []int64{205522}), 9, `{"Type":9,"Tag":"X","Value":[{"ContentID":205522}],"FieldId":9}`},
		{"attachments", NewRecord(1).Attachments(Field{ID: 11, Name: "A", Type: FieldAttachment}, []int64{901}), 11, `{"Type":11,"Tag":"A","Value":[901],"FieldId":11}`},
		{"IP without Value or Tag", NewRecord(1).IP(Field{ID: 19, Name: "IP", Type: FieldIPAddress}, "10.1.2.3"), 19, `{"Type":19,"IpAddressBytes":"10.1.2.3","FieldId":19}`},
		{"empty text is sent", NewRecord(1).Text(Field{ID: 1, Name: "T", Type: FieldText}, ""), 1, `{"Type":1,"Tag":"T","Value":"","FieldId":1}`},
	}
	for _, tc := range cases {
		if err := tc.rec.Err(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		if got := entry(tc.rec, tc.id); got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
	upd, _ := json.Marshal(NewRecord(232).Text(title, "x").wire(239643))
	if !strings.HasPrefix(string(upd), `{"Content":{"Id":239643,"LevelId":232,`) {
		t.Fatalf("update body %s", upd)
	}
}

// cannedArcher answers with fixed bodies per path suffix: a fake Archer for
// shapes the simulator does not produce.
func cannedArcher(t *testing.T, bodies map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for suffix, body := range bodies {
			if strings.HasSuffix(r.URL.Path, suffix) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, body)
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestVerbatimRecordShapeIsReadThroughTheClient(t *testing.T) {
	t.Parallel()
	srv := cannedArcher(t, map[string]string{
		"/core/security/login": notesLoginOK,
		"/core/content/1010":   notesRecord,
		"/core/content/7":      notesNotFound,
		"/valueslist/55":       notesTree,
	})
	c, err := New(Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "p", HTTPClient: srv.Client()}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := c.GetRecord(ctx, 1010)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := rec.Fields[2].Text(); err != nil || s != "The device name" || rec.LevelID != 123 {
		t.Fatalf("record: %+v %v", rec, err)
	}
	if _, err := c.GetRecord(ctx, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("not found: %v", err)
	}
	vals, err := c.ValuesListValues(ctx, 55)
	if err != nil || len(vals) != 2 || vals[0].Selectable || vals[1].Path != "Corporate/Finance" {
		t.Fatalf("tree: %+v %v", vals, err)
	}
	id, err := MatchValue(Field{Name: "Dept", Type: FieldValuesList, ValuesListID: 55}, vals, "finance")
	if err != nil || id != 83999 {
		t.Fatalf("resolve: %d %v", id, err)
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestDecideGivesEveryFailureItsOutcome(t *testing.T) {
	t.Parallel()
	status := func(code int) error { return fmt.Errorf("create: %w", &StatusError{StatusCode: code}) }
	retryAfter := func(code int, d time.Duration) error {
		return fmt.Errorf("create: %w", &StatusError{StatusCode: code, RetryAfter: d})
	}
	cases := []struct {
		name   string
		err    error
		action outcome.Action
		reason string
		after  time.Duration
	}{
		{"connection refused", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, outcome.Retry, "archer_unreachable", 0},
		{"connection reset", fmt.Errorf("x: %w", syscall.ECONNRESET), outcome.Retry, "archer_unreachable", 0},
		{"unexpected EOF", &url.Error{Op: "Post", URL: "u", Err: io.ErrUnexpectedEOF}, outcome.Retry, "archer_unreachable", 0},
		{"client timeout", &url.Error{Op: "Post", URL: "u", Err: timeoutErr{}}, outcome.Retry, "archer_timeout", 0},
		{"deadline", fmt.Errorf("x: %w", context.DeadlineExceeded), outcome.Retry, "archer_timeout", 0},
		{"unknown CA", &url.Error{Op: "Post", URL: "u", Err: x509.UnknownAuthorityError{}}, outcome.WaitOperator, "archer_tls", 0},
		{"hostname mismatch", &url.Error{Op: "Post", URL: "u", Err: x509.HostnameError{Host: "h"}}, outcome.WaitOperator, "archer_tls", 0},
		{"http to an https port", &url.Error{Op: "Post", URL: "u", Err: tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}}, outcome.WaitOperator, "archer_tls", 0},
		{"408", status(408), outcome.Retry, "archer_http_408", 0},
		{"429 without Retry-After", status(429), outcome.Retry, "archer_http_429", 0},
		{"429 with Retry-After", retryAfter(429, 7*time.Second), outcome.Snooze, "archer_http_429", 7 * time.Second},
		{"500", status(500), outcome.Retry, "archer_http_500", 0},
		{"502", status(502), outcome.Retry, "archer_http_502", 0},
		{"503", status(503), outcome.Retry, "archer_http_503", 0},
		{"503 with Retry-After", retryAfter(503, time.Minute), outcome.Snooze, "archer_http_503", time.Minute},
		{"504", status(504), outcome.Retry, "archer_http_504", 0},
		{"501 not implemented", status(501), outcome.End, "archer_http_501", 0},
		{"400", status(400), outcome.End, "archer_http_400", 0},
		{"404", status(404), outcome.End, "archer_http_404", 0},
		{"403", status(403), outcome.WaitOperator, "archer_forbidden", 0},
		{"validation", &ValidationError{Op: "create", Messages: []string{"The Title field is a required field."}}, outcome.End, "archer_validation", 0},
		{"login refused", fmt.Errorf("x: %w", fmt.Errorf("%w: %w", ErrLogin, &ValidationError{Op: "login"})), outcome.WaitOperator, "archer_login_refused", 0},
		{"sign-on page", fmt.Errorf("x: %w", &HTMLError{StatusCode: 200, Cause: "single sign-on"}), outcome.WaitOperator, "archer_html_page", 0},
		{"redirect", &HTMLError{StatusCode: 302}, outcome.WaitOperator, "archer_html_page", 0},
		{"session rejected after re-login", fmt.Errorf("x: %w", ErrSession), outcome.Retry, "archer_session", 0},
		{"no content API", fmt.Errorf("find: %w", ErrNoContentAPI), outcome.WaitOperator, "archer_lookup_unavailable", 0},
		{"closed", ErrClosed, outcome.Retry, "archer_cancelled", 0},
		{"caller cancelled", fmt.Errorf("x: %w", context.Canceled), outcome.Retry, "archer_cancelled", 0},
		{"answer without IsSuccessful", errors.New("archer create: the answer is not an Archer response"), outcome.Retry, "archer_error", 0},
	}
	for _, tc := range cases {
		d := Decide(tc.err)
		if d.Action != tc.action || d.Reason != tc.reason || d.After != tc.after || d.Component != "archer" {
			t.Errorf("%s: Decide = %+v, want %s %s after %s", tc.name, d, tc.action, tc.reason, tc.after)
		}
		if d.Action == outcome.WaitOperator && d.Fix == "" {
			t.Errorf("%s: waiting for an operator without saying what to fix", tc.name)
		}
	}
}

func TestConfigValidationNamesTheProblem(t *testing.T) {
	t.Parallel()
	good := Config{BaseURL: "https://archer.example.com/RSAArcher/", Instance: "Default", Username: "api", Password: "s3cret"}
	cases := []struct {
		name   string
		modify func(*Config)
		want   string
	}{
		{"valid", func(*Config) {}, ""},
		{"empty URL", func(c *Config) { c.BaseURL = "" }, "base URL is empty"},
		{"no scheme", func(c *Config) { c.BaseURL = "archer.example.com/RSAArcher" }, "https://"},
		{"credentials in URL", func(c *Config) { c.BaseURL = "https://u:pw@archer.example.com/" }, "must not contain credentials"},
		{"query", func(c *Config) { c.BaseURL = "https://archer.example.com/RSAArcher?x=1" }, "query"},
		{"bad prefix", func(c *Config) { c.APIPrefix = "restapi" }, `"platformapi" or "api"`},
		{"no instance", func(c *Config) { c.Instance = " " }, "instance"},
		{"no user", func(c *Config) { c.Username = "" }, "username"},
		{"no password", func(c *Config) { c.Password = "" }, "password is empty"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "negative"},
		{"missing CA file", func(c *Config) { c.CAFile = "/nonexistent/ca.pem" }, "read CA file"},
	}
	for _, tc := range cases {
		cfg := good
		tc.modify(&cfg)
		c, err := New(cfg, zerolog.Nop())
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			} else if c.restURL("content") != "https://archer.example.com/RSAArcher/platformapi/core/content" {
				t.Errorf("%s: URL %s", tc.name, c.restURL("content"))
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the password leaked into %v", tc.name, err)
		}
	}
	if s := fmt.Sprint(good); strings.Contains(s, "s3cret") || !strings.Contains(s, "<secret>") {
		t.Fatalf("Config prints %s", s)
	}
}

func TestRedirectsAndHostileAnswersBecomeClearErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/login"):
			_, _ = io.WriteString(w, notesLoginOK)
		case strings.HasSuffix(r.URL.Path, "/content/1"):
			http.Redirect(w, r, "https://idp.example.com/saml", http.StatusFound)
		case strings.HasSuffix(r.URL.Path, "/content/2"):
			_, _ = io.WriteString(w, `{"Links":[],"RequestedObject":{"Id":"not a number"},"IsSuccessful":true}`)
		case strings.HasSuffix(r.URL.Path, "/content/3"):
			_, _ = w.Write(bytes.Repeat([]byte("x"), 1<<10))
		case strings.HasSuffix(r.URL.Path, "/content/4"):
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		case strings.HasSuffix(r.URL.Path, "/content/5"):
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"Message":"The request is invalid."}`)
		}
	}))
	t.Cleanup(srv.Close)
	cfg := Config{BaseURL: srv.URL + "/RSAArcher", Instance: "Default", Username: "u", Password: "p"}
	c, err := New(cfg, zerolog.Nop()) // the built-in client, which does not follow redirects
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var he *HTMLError
	if _, err := c.GetRecord(ctx, 1); !errors.As(err, &he) || he.StatusCode != 302 || !strings.Contains(err.Error(), "idp.example.com") || !strings.Contains(err.Error(), "Allow manual bypass") {
		t.Fatalf("redirect: %v", err)
	}
	if _, err := c.GetRecord(ctx, 2); err == nil {
		t.Fatal("a wrongly typed answer was accepted")
	}
	if _, err := c.GetRecord(ctx, 3); err == nil || Decide(err).Reason != "archer_error" {
		t.Fatalf("garbage answer: %v", err)
	}
	var se *StatusError
	if _, err := c.GetRecord(ctx, 4); !errors.As(err, &se) || se.RetryAfter != 7*time.Second || Decide(err).Action != outcome.Snooze {
		t.Fatalf("503 with Retry-After: %v", err)
	}
	if _, err := c.GetRecord(ctx, 5); !errors.As(err, &se) || se.StatusCode != 400 || Decide(err).Action != outcome.End {
		t.Fatalf("400: %v", err)
	}
}

func TestMatchValueNeedsNoServer(t *testing.T) {
	t.Parallel()
	f := Field{Name: "Impact", Type: FieldValuesList, ValuesListID: 1}
	vals := []Value{
		{ID: 1, Name: "Operational", Path: "Operational"},
		{ID: 2, Name: "Low", Path: "Operational/Low", Selectable: true, Depth: 1},
		{ID: 3, Name: "Financial", Path: "Financial"},
		{ID: 4, Name: "Low", Path: "Financial/Low", Selectable: true, Depth: 1},
		{ID: 5, Name: "None", Path: "None", Selectable: true},
	}
	cases := []struct {
		name string
		want int64
		err  string
	}{
		{"none", 5, ""},
		{" Financial/low ", 4, ""},
		{"Low", 0, "several values are named"},
		{"Operational", 0, "cannot be selected"},
		{"", 0, "no selectable value"},
		{"Severe", 0, "available: Operational/Low, Financial/Low, None"},
	}
	for _, tc := range cases {
		id, err := MatchValue(f, vals, tc.name)
		if id != tc.want || (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("MatchValue(%q) = %d, %v", tc.name, id, err)
		}
	}
	if _, err := MatchValue(Field{Name: "T", Type: FieldText}, vals, "None"); err == nil {
		t.Fatal("a text field was matched")
	}
	if _, err := MatchValue(f, nil, "x"); err == nil {
		t.Fatal("an empty list matched")
	}
}
