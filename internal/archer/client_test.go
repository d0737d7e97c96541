package archer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

const (
	simUser     = "mail2archer"
	simPassword = "mail2archer-sandbox"
)

type bundle struct {
	sim    *archersim.Server
	srv    *httptest.Server
	client *archer.Client
	logs   *syncBuffer
}

// syncBuffer collects log output from concurrent goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type setupOpts struct {
	sim    archersim.Options
	prefix string
	vdir   string // the client's virtual directory; defaults to the simulator's
	modify func(*archer.Config)
}

func setup(t testing.TB, o setupOpts) *bundle {
	t.Helper()
	if o.sim.VirtualDir == "" {
		o.sim.VirtualDir = "/RSAArcher"
	}
	if o.vdir == "" {
		o.vdir = o.sim.VirtualDir
	}
	sim, err := archersim.New(o.sim)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	logs := &syncBuffer{}
	cfg := archer.Config{
		BaseURL:    srv.URL + o.vdir,
		APIPrefix:  o.prefix,
		Instance:   "Default",
		Username:   simUser,
		Password:   simPassword,
		HTTPClient: srv.Client(),
	}
	if o.modify != nil {
		o.modify(&cfg)
	}
	c, err := archer.New(cfg, zerolog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return &bundle{sim: sim, srv: srv, client: c, logs: logs}
}

// incident resolves the fixture's application, level and named fields.
type incident struct {
	app    *archer.Application
	level  *archer.Level
	fields map[string]archer.Field
}

func resolve(t testing.TB, c *archer.Client) incident {
	t.Helper()
	app, err := c.Application(context.Background(), "Security Incidents")
	if err != nil {
		t.Fatal(err)
	}
	level, ok := app.LevelByName("Security Incidents")
	if !ok {
		t.Fatal("level not found")
	}
	inc := incident{app: app, level: level, fields: map[string]archer.Field{}}
	for _, f := range level.Fields {
		inc.fields[f.Name] = f
	}
	return inc
}

func (inc incident) f(t testing.TB, name string) archer.Field {
	t.Helper()
	f, ok := inc.level.FieldByName(name)
	if !ok {
		t.Fatalf("field %q not found; have %v", name, inc.level.FieldNames())
	}
	return f
}

func (inc incident) minimal(t testing.TB, ctx context.Context, c *archer.Client, key string) *archer.Record {
	t.Helper()
	cat := resolveValue(t, ctx, c, inc.f(t, "Incident Category"), "Phishing")
	return archer.NewRecord(inc.level.ID).
		Text(inc.f(t, "Title"), "Phishing report "+key).
		Text(inc.f(t, "Incident Description"), "A user reported a suspicious email.").
		ValuesList(inc.f(t, "Incident Category"), []int64{cat}, "").
		Text(inc.f(t, "Reported Email Key"), key)
}

// TestEndToEndAgainstTheSimulator is the acceptance test: log in, resolve
// the application and its fields by name, upload an attachment, create a
// record with every field type, read it back equal, find it by its key, and
// survive a forced session expiry.
func TestEndToEndAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	c := b.client
	inc := resolve(t, c)
	if inc.app.ID != 75 || inc.level.ID != 232 || inc.f(t, "Title").ID != 16132 || !inc.f(t, "Title").Required {
		t.Fatalf("metadata: app %d level %d title %+v", inc.app.ID, inc.level.ID, inc.f(t, "Title"))
	}
	if _, ok := inc.level.FieldByName("Legacy Notes"); ok {
		t.Fatal("an inactive field was returned")
	}

	eml := []byte("From: a@example.com\r\nSubject: invoice\r\n\r\nopen the zip\r\n")
	attID, err := c.UploadAttachment(ctx, "report.eml", bytes.NewReader(eml))
	if err != nil {
		t.Fatal(err)
	}
	resolveName := func(field, name string) int64 {
		return resolveValue(t, ctx, c, inc.f(t, field), name)
	}
	reported := time.Date(2026, 3, 1, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	received := time.Date(2026, 3, 1, 8, 0, 15, 0, time.UTC)
	links := []archer.Link{{Name: "VirusTotal", URL: "https://www.virustotal.com/gui/url/abc"}}
	rec := inc.minimal(t, ctx, c, "msg-<AAMk1@example.com>").
		Text(inc.f(t, "Title"), "Phishing: invoice.zip").
		Text(inc.f(t, "Reporter"), "alice@example.com").
		Text(inc.f(t, "Sender"), "billing@evil.example").
		Text(inc.f(t, "Reported Subject"), "Invoice 4711").
		Text(inc.f(t, "Observables"), "<p>evil.example</p>").
		Text(inc.f(t, "Authentication Results"), "spf=fail dkim=none dmarc=fail").
		Text(inc.f(t, "SIEM Name"), "Sentinel").
		ValuesList(inc.f(t, "Source"), []int64{resolveName("Source", "Email")}, "").
		ValuesList(inc.f(t, "Criticality SOC"), []int64{resolveName("Criticality SOC", "high")}, "").
		ValuesList(inc.f(t, "Other Incident Related?"), []int64{resolveName("Other Incident Related?", "No")}, "").
		ValuesList(inc.f(t, "Impact to Business"), []int64{resolveName("Impact to Business", "Operational/Low")}, "").
		Date(inc.f(t, "Date Reported"), reported).
		Date(inc.f(t, "Date Received"), received).
		Attachments(inc.f(t, "Email Attachments"), []int64{attID}).
		IP(inc.f(t, "Sender IP"), "203.0.113.7").
		Numeric(inc.f(t, "Attachment Count"), 2).
		ExternalLinks(inc.f(t, "Reference Links"), links).
		UsersGroups(inc.f(t, "Assigned Analysts"), []int64{20}, []int64{30}).
		CrossReference(inc.f(t, "Related Device"), []int64{205522})
	id, err := c.CreateRecord(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}

	got, err := c.GetRecord(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.LevelID != 232 {
		t.Fatalf("read back id %d level %d", got.ID, got.LevelID)
	}
	value := func(name string) archer.FieldValue {
		v, ok := got.Field(inc.f(t, name))
		if !ok {
			t.Fatalf("field %q missing from the read", name)
		}
		return v
	}
	texts := map[string]string{
		"Title": "Phishing: invoice.zip", "Reporter": "alice@example.com", "Sender": "billing@evil.example",
		"Reported Subject": "Invoice 4711", "Observables": "<p>evil.example</p>", "Reported Email Key": "msg-<AAMk1@example.com>",
		"Authentication Results": "spf=fail dkim=none dmarc=fail", "SIEM Name": "Sentinel",
	}
	for name, want := range texts {
		if s, err := value(name).Text(); err != nil || s != want {
			t.Errorf("%s = %q, %v", name, s, err)
		}
	}
	lists := map[string]int64{"Incident Category": 201693, "Source": 301001, "Criticality SOC": 401003, "Other Incident Related?": 501002, "Impact to Business": 601011}
	for name, want := range lists {
		if ids, other, err := value(name).ValuesList(); err != nil || !slices.Equal(ids, []int64{want}) || other != "" {
			t.Errorf("%s = %v %q %v", name, ids, other, err)
		}
	}
	if d, err := value("Date Reported").Date(); err != nil || !d.Equal(reported) {
		t.Errorf("Date Reported = %v, %v", d, err)
	}
	if d, err := value("Date Received").Date(); err != nil || !d.Equal(received) {
		t.Errorf("Date Received = %v, %v", d, err)
	}
	if ids, err := value("Email Attachments").Attachments(); err != nil || !slices.Equal(ids, []int64{attID}) {
		t.Errorf("attachments = %v, %v", ids, err)
	}
	if ip := value("Sender IP").IP(); ip != "203.0.113.7" {
		t.Errorf("IP = %q", ip)
	}
	if n, err := value("Attachment Count").Numeric(); err != nil || n != 2 {
		t.Errorf("numeric = %v, %v", n, err)
	}
	if l, err := value("Reference Links").ExternalLinks(); err != nil || !slices.Equal(l, links) {
		t.Errorf("links = %v, %v", l, err)
	}
	if u, g, err := value("Assigned Analysts").UsersGroups(); err != nil || !slices.Equal(u, []int64{20}) || !slices.Equal(g, []int64{30}) {
		t.Errorf("users/groups = %v %v %v", u, g, err)
	}
	if r, err := value("Related Device").CrossReference(); err != nil || !slices.Equal(r, []int64{205522}) {
		t.Errorf("cross-reference = %v, %v", r, err)
	}
	if att, ok := b.sim.Attachment(attID); !ok || att.Name != "report.eml" || !bytes.Equal(att.Data, eml) {
		t.Fatalf("stored attachment: %+v %v", att, ok)
	}

	found, err := c.FindByField(ctx, inc.app, inc.level, inc.f(t, "Reported Email Key"), "msg-<AAMk1@example.com>")
	if err != nil || !slices.Equal(found, []int64{id}) {
		t.Fatalf("FindByField = %v, %v", found, err)
	}

	b.sim.ExpireSessions()
	second, err := c.CreateRecord(ctx, inc.minimal(t, ctx, c, "msg-2"))
	if err != nil {
		t.Fatalf("after forced expiry: %v", err)
	}
	if second != id+1 || b.sim.LoginCount() != 2 {
		t.Fatalf("second id %d, logins %d", second, b.sim.LoginCount())
	}
	logs := b.logs.String()
	if strings.Contains(logs, simPassword) {
		t.Fatal("the password was logged")
	}
	for _, r := range b.sim.Requests() {
		h := r.Header.Get("Authorization")
		if tok := strings.Trim(strings.TrimPrefix(h, "Archer session-id="), `"`); tok != "" && strings.Contains(logs, tok) {
			t.Fatal("a session token was logged")
		}
	}
	if !strings.Contains(logs, "logged in again") {
		t.Fatalf("the re-login was not logged: %s", logs)
	}
}

func TestSessionExpiryDuringTwentyConcurrentCreatesLogsInOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	recs := make([]*archer.Record, 20)
	for i := range recs {
		recs[i] = inc.minimal(t, ctx, b.client, fmt.Sprintf("burst-%d", i))
	}
	before := b.sim.LoginCount()
	// Requests wait a little on the server so that the burst overlaps; the
	// session dies when the fifth of them arrives.
	b.sim.SetLatency(20 * time.Millisecond)
	b.sim.ExpireSessionsAt(5)
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	for i := range recs {
		wg.Go(func() {
			_, errs[i] = b.client.CreateRecord(ctx, recs[i])
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := b.sim.LoginCount() - before; got != 1 {
		t.Fatalf("re-logins = %d, want exactly 1", got)
	}
	n := 0
	for _, r := range b.sim.Records() {
		if k, _ := r.Fields["Reported Email Key"].(string); strings.HasPrefix(k, "burst-") {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("%d records created, want 20", n)
	}
	unauthorized := 0
	for _, r := range b.sim.Requests() {
		if strings.HasSuffix(r.Path, "/core/content") && r.EffectiveMethod == "POST" {
			unauthorized++
		}
	}
	if unauthorized <= 20 {
		t.Fatalf("only %d create requests: the expiry did not hit the burst", unauthorized)
	}
}

func TestConcurrentFirstCallsShareOneLogin(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{sim: archersim.Options{}})
	b.sim.SetLatency(5 * time.Millisecond)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := b.client.ValuesListValues(context.Background(), 1003); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if got := b.sim.LoginCount(); got != 1 {
		t.Fatalf("logins = %d, want 1", got)
	}
}

func TestAMissingRequiredFieldGivesArchersMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	rec := archer.NewRecord(inc.level.ID).Text(inc.f(t, "Title"), "no description")
	_, err := b.client.CreateRecord(ctx, rec)
	var ve *archer.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err = %v, want a ValidationError", err)
	}
	want := []string{"The Incident Description field is a required field.", "The Incident Category field is a required field.", "The Reported Email Key field is a required field."}
	if !slices.Equal(ve.Messages, want) || ve.Op != "create record in level 232" || archer.Decide(err).Action != outcome.End {
		t.Fatalf("validation error = %+v", ve)
	}
}

func TestHTMLAnswersNameTheLikelyCause(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sso := setup(t, setupOpts{})
	sso.sim.HTMLRedirect(true)
	_, err := sso.client.Application(ctx, "Security Incidents")
	var he *archer.HTMLError
	if !errors.As(err, &he) || !errors.Is(err, archer.ErrUnexpectedHTML) || !strings.Contains(err.Error(), "Allow manual bypass") || archer.Decide(err).Action != outcome.WaitOperator {
		t.Fatalf("SSO page: %v", err)
	}

	for _, o := range []setupOpts{
		{vdir: "/Archer"},
		{modify: func(c *archer.Config) { c.BaseURL = strings.TrimSuffix(c.BaseURL, "/RSAArcher") }},
	} {
		b := setup(t, o)
		_, err := b.client.Application(ctx, "Security Incidents")
		if !errors.As(err, &he) || !strings.Contains(err.Error(), "virtual directory") || !strings.Contains(err.Error(), "platformapi") {
			t.Fatalf("wrong base URL: %v", err)
		}
	}
}

func TestBothAPIPrefixesWork(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "platformapi", "api", "/api/"} {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{prefix: prefix})
			inc := resolve(t, b.client)
			if _, err := b.client.CreateRecord(context.Background(), inc.minimal(t, context.Background(), b.client, "k")); err != nil {
				t.Fatal(err)
			}
			want := "/RSAArcher/platformapi/core/"
			if strings.Trim(prefix, "/") == "api" {
				want = "/RSAArcher/api/core/"
			}
			for _, r := range b.sim.Requests() {
				if !strings.HasPrefix(r.Path, want) {
					t.Fatalf("request to %s, want prefix %s", r.Path, want)
				}
				if r.Path != want+"security/login" && r.Header.Get("Authorization") == "" {
					t.Fatalf("request to %s without a session header", r.Path)
				}
			}
		})
	}
}

func TestClientSendsTheDocumentedHeaders(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	resolve(t, b.client)
	reqs := b.sim.Requests()
	login := reqs[0]
	if login.Header.Get("Authorization") != "" || login.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("login headers: %v", login.Header)
	}
	for _, r := range reqs[1:] {
		h := r.Header.Get("Authorization")
		if !strings.HasPrefix(h, `Archer session-id="`) || !strings.HasSuffix(h, `"`) || len(h) != len(`Archer session-id=""`)+32 {
			t.Fatalf("session header %q", h)
		}
		if r.Method != "POST" || r.Header.Get("X-Http-Method-Override") != "GET" {
			t.Fatalf("metadata read sent as %s override %q", r.Method, r.Header.Get("X-Http-Method-Override"))
		}
	}
	if !strings.Contains(string(reqs[1].Body), `"Value":"?$filter=Name eq 'Security Incidents'"`) {
		t.Fatalf("OData not in the body: %s", reqs[1].Body)
	}
}

func TestMatchValueByNameOrPath(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	cases := []struct {
		field, name string
		want        int64
		errHas      []string
	}{
		{"Incident Category", "Phishing", 201693, nil},
		{"Incident Category", "  phishing ", 201693, nil},
		{"Incident Category", "Malicious Code/Ransomware", 201702, nil},
		{"Incident Category", "other", 201699, nil},
		{"Criticality SOC", "Critical", 401004, nil},
		{"Impact to Business", "financial/HIGH", 601023, nil},
		{"Impact to Business", "Low", 0, []string{"several values are named", "Operational/Low", "Financial/Low"}},
		{"Incident Category", "Email Threats", 0, []string{"cannot be selected", "Email Threats/Phishing", "Email Threats/Spam"}},
		{"Incident Category", "Phishy", 0, []string{`no selectable value is named "Phishy"`, "Email Threats/Phishing", "Malicious Code/Malware", "Other"}},
		{"Title", "Phishing", 0, []string{"not a values list"}},
	}
	for _, tc := range cases {
		id, err := matchValue(ctx, b.client, inc.f(t, tc.field), tc.name)
		if tc.errHas == nil {
			if err != nil || id != tc.want {
				t.Errorf("%s/%q = %d, %v; want %d", tc.field, tc.name, id, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s/%q resolved to %d, want an error", tc.field, tc.name, id)
			continue
		}
		for _, s := range tc.errHas {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s/%q: error %q lacks %q", tc.field, tc.name, err, s)
			}
		}
	}
	var uv *archer.UnknownValueError
	_, err := matchValue(ctx, b.client, inc.f(t, "Source"), "Fax")
	if !errors.As(err, &uv) || !slices.Contains(uv.Available, "Monitoring/SIEM") || slices.Contains(uv.Available, "Monitoring") {
		t.Fatalf("available names: %+v", uv)
	}
	vals, err := b.client.ValuesListValues(ctx, inc.f(t, "Incident Category").ValuesListID)
	if err != nil || len(vals) != 8 || vals[0].Selectable || vals[1].Path != "Email Threats/Phishing" || vals[1].Depth != 1 {
		t.Fatalf("values: %+v %v", vals, err)
	}
}

func TestMetadataIsCachedUntilRefresh(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	resolve(t, b.client)
	n := len(b.sim.Requests())
	if _, err := b.client.Application(ctx, "security incidents"); err != nil {
		t.Fatal(err)
	}
	if got := len(b.sim.Requests()); got != n {
		t.Fatalf("cached lookup sent %d requests", got-n)
	}
	b.client.Refresh()
	if _, err := b.client.Application(ctx, "Security Incidents"); err != nil {
		t.Fatal(err)
	}
	if got := len(b.sim.Requests()); got == n {
		t.Fatal("Refresh did not drop the cache")
	}
	_, err := b.client.Application(ctx, "Incidentz")
	if err == nil || !strings.Contains(err.Error(), "Devices, Security Incidents") {
		t.Fatalf("unknown application: %v", err)
	}
}

func TestAttachmentRoundTripIsByteForByte(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	random := make([]byte, 3<<20+7)
	_, _ = rand.Read(random)
	cases := []struct {
		name string
		data []byte
		r    func([]byte) io.Reader
	}{
		{"sized reader", random, func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{"unsized reader (chunked)", random, func(d []byte) io.Reader { return io.MultiReader(bytes.NewReader(d)) }},
		{"one byte", []byte{0xff}, func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{"two bytes", []byte{0, 1}, func(d []byte) io.Reader { return bytes.NewReader(d) }},
		{"empty file", []byte{}, func(d []byte) io.Reader { return bytes.NewReader(d) }},
	}
	for _, tc := range cases {
		name := `sample "` + tc.name + `".bin`
		id, err := b.client.UploadAttachment(ctx, name, tc.r(tc.data))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		stored, ok := b.sim.Attachment(id)
		if !ok || !bytes.Equal(stored.Data, tc.data) || stored.Name != name {
			t.Fatalf("%s: the simulator stored %d bytes named %q", tc.name, len(stored.Data), stored.Name)
		}
	}
	if _, err := b.client.UploadAttachment(ctx, " ", bytes.NewReader(nil)); err == nil {
		t.Fatal("an empty name was accepted")
	}
}

func TestUploadAfterSessionExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	if _, err := b.client.UploadAttachment(ctx, "a.txt", strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	b.sim.ExpireSessions()
	id, err := b.client.UploadAttachment(ctx, "b.txt", strings.NewReader("rewindable"))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := b.sim.Attachment(id); string(a.Data) != "rewindable" {
		t.Fatalf("stored %q", a.Data)
	}
	b.sim.ExpireSessions()
	_, err = b.client.UploadAttachment(ctx, "c.txt", io.MultiReader(strings.NewReader("once only")))
	if !errors.Is(err, archer.ErrSession) || archer.Decide(err).Action != outcome.Retry {
		t.Fatalf("non-rewindable upload after expiry: %v", err)
	}
	if _, err := b.client.UploadAttachment(ctx, "c.txt", io.MultiReader(strings.NewReader("once only"))); err != nil {
		t.Fatalf("the retry should find a fresh session: %v", err)
	}
	if got := b.sim.LoginCount(); got != 3 {
		t.Fatalf("logins = %d, want 3", got)
	}
}

func TestFindByFieldFindsOnlyTheMatchingRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	key := inc.f(t, "Reported Email Key")
	ids := map[string]int64{}
	for _, k := range []string{"key-a", "key-b", "O'Brien & co", "KEY-A"} {
		id, err := b.client.CreateRecord(ctx, inc.minimal(t, ctx, b.client, k))
		if err != nil {
			t.Fatal(err)
		}
		ids[k] = id
	}
	for k, id := range ids {
		got, err := b.client.FindByField(ctx, inc.app, inc.level, key, k)
		if err != nil || !slices.Equal(got, []int64{id}) {
			t.Errorf("FindByField(%q) = %v, %v; want [%d]", k, got, err, id)
		}
	}
	if got, err := b.client.FindByField(ctx, inc.app, inc.level, key, "key-c"); err != nil || len(got) != 0 {
		t.Fatalf("absent key: %v %v", got, err)
	}
	if _, err := b.client.FindByField(ctx, inc.app, inc.level, inc.f(t, "Incident Category"), "x"); err == nil {
		t.Fatal("a values-list field was accepted as a key")
	}
	bad := *inc.level
	bad.Alias = "No_Such_Level"
	if _, err := b.client.FindByField(ctx, inc.app, &bad, key, "key-a"); err == nil || !strings.Contains(err.Error(), "Content API") {
		t.Fatalf("unknown level alias: %v", err)
	}
}

func TestUpdateAppendsAttachmentsAndChangesOnlyGivenFields(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	att := inc.f(t, "Email Attachments")
	a1, err := b.client.UploadAttachment(ctx, "one.eml", strings.NewReader("1"))
	if err != nil {
		t.Fatal(err)
	}
	a2, err := b.client.UploadAttachment(ctx, "two.eml", strings.NewReader("2"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := b.client.CreateRecord(ctx, inc.minimal(t, ctx, b.client, "upd").Attachments(att, []int64{a1}))
	if err != nil {
		t.Fatal(err)
	}
	upd := archer.NewRecord(inc.level.ID).Attachments(att, []int64{a2, a1}).Text(inc.f(t, "Sender"), "x@example.com")
	if err := b.client.UpdateRecord(ctx, id, upd); err != nil {
		t.Fatal(err)
	}
	got, err := b.client.GetRecord(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := got.Field(att)
	if ids, _ := v.Attachments(); !slices.Equal(ids, []int64{a1, a2}) {
		t.Fatalf("attachments after update = %v", ids)
	}
	if s, _ := got.Fields[inc.f(t, "Title").ID].Text(); s != "Phishing report upd" {
		t.Fatalf("title changed to %q", s)
	}
	if _, err := b.client.GetRecord(ctx, 987654); !errors.Is(err, archer.ErrNotFound) {
		t.Fatalf("read of a record that does not exist: %v", err)
	}
	if err := b.client.UpdateRecord(ctx, 987654, upd); !errors.Is(err, archer.ErrNotFound) {
		t.Fatalf("update of a record that does not exist: %v", err)
	}
}

func TestRecordBuilderRefusesMismatchedValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	n := len(b.sim.Requests())
	rec := inc.minimal(t, ctx, b.client, "x").
		Text(inc.f(t, "Incident Category"), "Phishing").
		IP(inc.f(t, "Sender IP"), "999.0.0.1").
		Date(inc.f(t, "Date Reported"), time.Time{}).
		Text(archer.Field{ID: 1, Name: "Elsewhere", Type: archer.FieldText, LevelID: 99}, "x")
	_, err := b.client.CreateRecord(ctx, rec)
	for _, want := range []string{"is a values list field", `"999.0.0.1" is not an IP address`, "the date is zero", "belongs to level 99"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v lacks %q", err, want)
		}
	}
	if got := len(b.sim.Requests()) - n; got != 1 { // only the values-list lookup in minimal
		t.Fatalf("an invalid record reached the server (%d requests)", got)
	}
}

func TestAFailedLoginReturnsTheServersMessage(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{modify: func(c *archer.Config) { c.Password = "wrong-password" }})
	_, err := b.client.Application(context.Background(), "Security Incidents")
	if !errors.Is(err, archer.ErrLogin) || !strings.Contains(err.Error(), "ValidationMessageTemplates:LoginNotValid") || archer.Decide(err).Action != outcome.WaitOperator {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "wrong-password") || strings.Contains(b.logs.String(), "wrong-password") {
		t.Fatal("the password leaked")
	}
}

func TestServerErrorsAreTransientAndRetried401IsRepeatedOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	inc := resolve(t, b.client)
	first, second := inc.minimal(t, ctx, b.client, "5xx"), inc.minimal(t, ctx, b.client, "401")
	b.sim.FailNext(1, 503)
	_, err := b.client.CreateRecord(ctx, first)
	var se *archer.StatusError
	if !errors.As(err, &se) || se.StatusCode != 503 || archer.Decide(err).Action != outcome.Retry {
		t.Fatalf("503: %v", err)
	}
	b.sim.UnauthorizedAt(1)
	if _, err := b.client.CreateRecord(ctx, second); err != nil {
		t.Fatalf("a single 401 should be absorbed: %v", err)
	}
	if got := b.sim.LoginCount(); got != 2 {
		t.Fatalf("logins = %d", got)
	}
}

func TestTimeoutsAreTransient(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	resolve(t, b.client)
	b.sim.SetLatency(time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := b.client.GetRecord(ctx, 205522)
	if err == nil || archer.Decide(err).Action != outcome.Retry {
		t.Fatalf("timeout: %v", err)
	}
}

func TestCloseLogsOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, setupOpts{})
	if err := b.client.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if b.sim.ActiveSessions() != 1 {
		t.Fatalf("sessions = %d", b.sim.ActiveSessions())
	}
	if err := b.client.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if b.sim.ActiveSessions() != 0 {
		t.Fatal("Close did not log out")
	}
	if err := b.client.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := b.client.GetRecord(ctx, 205522); !errors.Is(err, archer.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if err := b.client.Ping(ctx); !errors.Is(err, archer.ErrClosed) {
		t.Fatalf("Ping after Close: %v", err)
	}
}

// matchValue finds a value of a values-list field by name or path, as the
// mapping does: the list's values, then MatchValue.
func matchValue(ctx context.Context, c *archer.Client, f archer.Field, name string) (int64, error) {
	if f.Type != archer.FieldValuesList {
		return archer.MatchValue(f, nil, name)
	}
	vals, err := c.ValuesListValues(ctx, f.ValuesListID)
	if err != nil {
		return 0, err
	}
	return archer.MatchValue(f, vals, name)
}

func resolveValue(t testing.TB, ctx context.Context, c *archer.Client, f archer.Field, name string) int64 {
	t.Helper()
	id, err := matchValue(ctx, c, f, name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
