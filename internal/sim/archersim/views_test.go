package archersim_test

import (
	"encoding/json"
	"fmt"
	"go/parser"
	"go/token"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// create stores a record from a validRecord-style body and returns its id.
func (b *bundle) create(t *testing.T, token, body string) int64 {
	t.Helper()
	w := decodeWrapper(t, b.call(t, "POST", "/RSAArcher/platformapi/core/content", auth(token), body))
	if !w.IsSuccessful {
		t.Fatalf("create refused: %v", messages(w))
	}
	var created struct {
		ID int64 `json:"Id"`
	}
	if err := json.Unmarshal(w.RequestedObject, &created); err != nil || created.ID == 0 {
		t.Fatalf("create answer %s: %v", w.RequestedObject, err)
	}
	return created.ID
}

// jsonString quotes s as a JSON string.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestBuiltInFixtureDeclaresEachTextFieldsDisplayControl(t *testing.T) {
	t.Parallel()
	want := map[string]bool{ // name → rich text
		"Title": false, "Reporter": false, "Sender": false, "Reported Subject": false,
		"Authentication Results": false, "SIEM Name": false, "Reported Email Key": false,
		"Incident Description": true, "Observables": true, "Legacy Notes": true, "Reporters": true,
	}
	f := archersim.DefaultFixture()
	got := map[string]bool{}
	for _, fd := range f.Applications[0].Levels[0].Fields {
		if fd.Type == 1 {
			got[fd.Name] = fd.IsRichText()
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("text fields (name: rich) = %v, want %v", got, want)
	}
	if (archersim.FixtureField{Type: 1}).IsRichText() != true || (archersim.FixtureField{Type: 4}).IsRichText() {
		t.Fatal("a text field without DisplayControl must default to rich text, and only text fields can be")
	}
}

func TestFixtureDisplayControlsAreValidated(t *testing.T) {
	t.Parallel()
	const tmpl = `{"ValuesLists":[{"Id":9,"Name":"V","Values":[{"Id":5,"Name":"a","Selectable":true}]}],
"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Alias":"L","Fields":[%s]}]}]}`
	cases := []struct {
		name, field, want string
	}{
		{"single line", `{"Id":3,"Name":"F","Alias":"F","Type":1,"DisplayControl":"SingleLine"}`, ""},
		{"rich text", `{"Id":3,"Name":"F","Alias":"F","Type":1,"DisplayControl":"RichText"}`, ""},
		{"default", `{"Id":3,"Name":"F","Alias":"F","Type":1}`, ""},
		{"unknown control", `{"Id":3,"Name":"F","Alias":"F","Type":1,"DisplayControl":"TextArea"}`, `DisplayControl "TextArea" is neither`},
		{"lower case", `{"Id":3,"Name":"F","Alias":"F","Type":1,"DisplayControl":"richtext"}`, `is neither`},
		{"not a text field", `{"Id":3,"Name":"F","Alias":"F","Type":4,"RelatedValuesListId":9,"DisplayControl":"RichText"}`, "text fields (type 1) only"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := archersim.ParseFixture([]byte(fmt.Sprintf(tmpl, tc.field)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("valid fixture refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

var (
	// tagName finds every tag of a page, opening or closing.
	tagName = regexp.MustCompile(`<\s*/?\s*([A-Za-z][A-Za-z0-9]*)`)
	// iframeTag finds a frame with its attributes; attribute values are
	// escaped, so they hold no '>'.
	iframeTag = regexp.MustCompile(`<iframe ([^>]*)></iframe>`)
	attribute = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

func TestRecordsPageRendersRichTextOnlyInsideSandboxedFrames(t *testing.T) {
	t.Parallel()
	b := setup(t, archersim.Options{})
	token := b.login(t)
	const (
		rich      = `<img src=x onerror=alert(1)> and <b>bold</b>, "quoted" 'single' &amp; <a href="https://landing.example/x">a link</a>`
		richObs   = "hxxps://evil[.]example/path<br>192.0.2[.]1"
		plain     = `</pre><script>alert(2)</script>`
		plainName = `<b>reporter</b> "IT Desk" <it@evil.example>`
	)
	body := fmt.Sprintf(validRecord, `,"24305":{"Type":1,"Value":`+jsonString(richObs)+`,"FieldId":24305},"24301":{"Type":1,"Value":`+jsonString(plainName)+`,"FieldId":24301}`)
	body = strings.Replace(body, `"Reported by a user"`, jsonString(rich), 1)
	body = strings.Replace(body, `"Phishing: invoice.zip"`, jsonString(plain), 1)
	b.create(t, token, body)

	r := b.call(t, "GET", "/sim/records", nil, "")
	page := string(r.body)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	for header, want := range map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-src 'self'; base-uri 'none'; form-action 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Content-Type":            "text/html; charset=utf-8",
	} {
		if got := r.header.Get(header); got != want {
			t.Errorf("%s = %q, want %q", header, got, want)
		}
	}

	// Outside the frames the page holds only its own markup: every tag is
	// one the page writes itself, and it links only to the JSON view.
	own := map[string]bool{"html": true, "head": true, "meta": true, "title": true, "style": true, "body": true,
		"h1": true, "h2": true, "p": true, "a": true, "section": true, "table": true, "tr": true, "th": true,
		"td": true, "pre": true, "small": true, "iframe": true}
	for _, m := range tagName.FindAllStringSubmatch(page, -1) {
		if !own[strings.ToLower(m[1])] {
			t.Errorf("live <%s> markup outside a frame", m[1])
		}
	}
	if n := strings.Count(page, "<a "); n != 1 || !strings.Contains(page, `<a href="records.json">`) {
		t.Errorf("the page has %d links, want only its link to records.json", n)
	}
	for _, raw := range []string{rich, richObs, plain, plainName, "<img", "<b>", "<script", "<br>"} {
		if strings.Contains(page, raw) {
			t.Errorf("page holds %q unescaped", raw)
		}
	}

	// Single-line text fields are shown as text.
	for _, want := range []string{html.EscapeString(plain), html.EscapeString(plainName)} {
		if !strings.Contains(page, "<pre>"+want+"</pre>") {
			t.Errorf("plain field not shown escaped: want <pre>%s</pre>", want)
		}
	}

	// Rich text fields are frames whose document is the stored value.
	frames := iframeTag.FindAllStringSubmatch(page, -1)
	if len(frames) != 2 || strings.Count(page, "<iframe") != 2 {
		t.Fatalf("%d rich text frames, want 2 (Incident Description, Observables)", len(frames))
	}
	docs := map[string]string{}
	for _, f := range frames {
		attrs := map[string]string{}
		for _, a := range attribute.FindAllStringSubmatch(f[1], -1) {
			attrs[a[1]] = html.UnescapeString(a[2])
		}
		if sb, ok := attrs["sandbox"]; !ok || sb != "" {
			t.Errorf("frame %q: sandbox = %q (present %v), want present and empty", attrs["title"], sb, ok)
		}
		if strings.Contains(f[1], "allow") {
			t.Errorf("frame %q grants something: %s", attrs["title"], f[1])
		}
		docs[attrs["title"]] = attrs["srcdoc"]
	}
	for name, value := range map[string]string{"Incident Description": rich, "Observables": richObs} {
		if !strings.Contains(docs[name], "<body>"+value+"</body>") {
			t.Errorf("frame %q document = %q, want the stored value as its body", name, docs[name])
		}
	}

	// The JSON view stays raw.
	var out struct {
		Records []archersim.Record `json:"records"`
	}
	if err := json.Unmarshal(b.call(t, "GET", "/sim/records.json", nil, "").body, &out); err != nil {
		t.Fatal(err)
	}
	last := out.Records[len(out.Records)-1]
	if last.Fields["Incident Description"] != rich || last.Fields["Title"] != plain {
		t.Fatalf("JSON view altered the values: %+v", last.Fields)
	}
}

func TestRecordsPageWithoutRecordsOrWithAWrongMethod(t *testing.T) {
	t.Parallel()
	f, err := archersim.ParseFixture([]byte(`{"Applications":[{"Id":1,"Name":"A","Levels":[{"Id":2,"Name":"L","Alias":"L","Fields":[]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b := setup(t, archersim.Options{Fixture: f})
	r := b.call(t, "GET", "/sim/records", nil, "")
	if r.status != 200 || !strings.Contains(string(r.body), "<p>0 record(s).") || strings.Contains(string(r.body), "<iframe") {
		t.Fatalf("empty page: %d %s", r.status, r.body)
	}
	if r := b.call(t, "POST", "/sim/records", nil, "x"); r.status != 405 || r.header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST: %d %v", r.status, r.header)
	}
}

// The service binary links this package for its sandbox; executing a
// template there makes the linker keep every exported method (issue 16).
func TestPackageImportsNoTemplateEngine(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no source files: %v", err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if p := strings.Trim(imp.Path.Value, `"`); p == "text/template" || p == "html/template" {
				t.Errorf("%s imports %s", name, p)
			}
		}
		checked++
	}
	if checked < 5 {
		t.Fatalf("checked only %d files", checked)
	}
}
