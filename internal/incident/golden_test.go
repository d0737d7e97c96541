package incident

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestExampleMappingGolden renders the example mapping for the sandbox's
// sample emails and compares every field with testdata/golden/<sample>.txt;
// -update rewrites them (review the diff by hand for readability and
// escaping).
func TestExampleMappingGolden(t *testing.T) {
	t.Parallel()
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob("../email/testdata/samples/*.eml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := renderGolden(t, c, path)
			goldenPath := filepath.Join("testdata", "golden", name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(goldenPath), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(goldenPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(goldenPath)
			if err != nil {
				t.Fatalf("read golden: %v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("rendering differs from %s (run go test -update and review the diff)\n%s", goldenPath, firstDiff(string(want), string(got)))
			}
		})
	}
}

// renderGolden renders one sample and writes every field readably: rich
// text with a line break after each <br>, values lists by name, files by
// name, size and SHA-256 (the archive by its entries, since its
// encryption header is random).
func renderGolden(t *testing.T, c *Compiled, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(path), ".eml")
	meta := email.Metadata{Mailbox: "phish@contoso.com", MessageID: "AAMk-" + name,
		ReceivedAt: time.Date(2026, 3, 12, 7, 45, 0, 0, time.UTC)}
	opts := email.DefaultOptions()
	opts.InternalDomains = []string{"contoso.com"}
	rep, err := email.Analyze(raw, meta, opts)
	if err != nil {
		t.Fatalf("analyze: %v", err)
	}
	inc, err := c.Render(rep, FromBytes(raw), time.Date(2026, 3, 12, 8, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	values := fieldValues(t, inc.Record)
	var b strings.Builder
	fmt.Fprintf(&b, "# %s rendered with api/mapping.example.yaml\n", filepath.Base(path))
	fmt.Fprintf(&b, "\n== %s (key)\n%s\n", c.KeyField.Name, inc.Key)
	for _, cf := range c.fields {
		f := cf.field
		if len(cf.attach) > 0 {
			continue
		}
		v, ok := values[f.ID]
		kind := f.Type.String()
		if f.Type == archer.FieldText {
			kind += ", " + map[textKind]string{kindRich: FormatRich, kindPlain: FormatPlain}[cf.mode.kind]
		}
		fmt.Fprintf(&b, "\n== %s (%s)\n", f.Name, kind)
		if !ok {
			b.WriteString("(not set)\n")
			continue
		}
		switch f.Type {
		case archer.FieldText:
			s := v.(string)
			if cf.mode.kind == kindRich {
				s = strings.ReplaceAll(s, "<br>", "<br>\n")
			}
			b.WriteString(s + "\n")
		case archer.FieldValuesList:
			ids := v.(map[string]any)["ValuesListIds"].([]any)
			for _, id := range ids {
				b.WriteString(valueName(cf.values, int64(id.(float64))) + "\n")
			}
		default:
			fmt.Fprintf(&b, "%v\n", v)
		}
	}
	for _, f := range inc.Files {
		content := readFile(t, f)
		fmt.Fprintf(&b, "\n== %s (attachment) %s\n", f.Field.Name, f.Name)
		if !strings.HasSuffix(f.Name, ".zip") {
			sum := sha256.Sum256(content)
			fmt.Fprintf(&b, "%d bytes, sha256 %s\n", len(content), hex.EncodeToString(sum[:]))
			continue
		}
		zr, err := zip.NewReader(bytes.NewReader(content), int64(len(content)))
		if err != nil {
			t.Fatalf("archive %s: %v", f.Name, err)
		}
		for _, zf := range zr.File {
			fmt.Fprintf(&b, "entry %s: %d bytes, encrypted %v\n", zf.Name, zf.UncompressedSize64, zf.Flags&1 != 0)
		}
	}
	return []byte(b.String())
}

// fieldValues decodes a record's field values by field id.
func fieldValues(t *testing.T, r *archer.Record) map[int64]any {
	t.Helper()
	body, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var wire struct {
		Content struct {
			FieldContents map[string]struct {
				Value          any
				IPAddressBytes *string
			}
		}
	}
	if err := json.Unmarshal(body, &wire); err != nil {
		t.Fatal(err)
	}
	out := map[int64]any{}
	for id, fc := range wire.Content.FieldContents {
		n, _ := strconv.ParseInt(id, 10, 64)
		out[n] = fc.Value
		if fc.IPAddressBytes != nil {
			out[n] = *fc.IPAddressBytes
		}
	}
	return out
}

func valueName(values []archer.Value, id int64) string {
	for _, v := range values {
		if v.ID == id {
			return v.Path
		}
	}
	return strconv.FormatInt(id, 10)
}

// firstDiff shows the first differing line of two texts.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n want: " + truncate(300, w) + "\n  got: " + truncate(300, g)
		}
	}
	return ""
}

// corpusDir is a folder of real .eml files to rate with the example
// mapping (for example the development corpus).
var corpusDir = flag.String("corpus", "", "folder of .eml files for TestExampleRatingsOverACorpus")

// TestExampleRatingsOverACorpus renders the example mapping's criticality
// and category for every .eml of -corpus and prints how they are spread, so
// a change to the rating rule can be measured on real phishing:
//
//	go test ./internal/incident/ -run RatingsOver -corpus=DIR -v
func TestExampleRatingsOverACorpus(t *testing.T) {
	if *corpusDir == "" {
		t.Skip("no -corpus folder given")
	}
	c, err := exampleMapping(t).Compile(context.Background(), archerClient(t))
	if err != nil {
		t.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(*corpusDir, "*.eml"))
	if err != nil || len(paths) == 0 {
		t.Skipf("no .eml files in %s", *corpusDir)
	}
	counts := map[string]int{}
	for _, path := range paths {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		opts := email.DefaultOptions()
		opts.InternalDomains = []string{"contoso.com"}
		rep, _ := email.Analyze(raw, email.Metadata{Mailbox: "phish@contoso.com", MessageID: filepath.Base(path),
			ReceivedAt: time.Date(2026, 3, 12, 7, 45, 0, 0, time.UTC)}, opts)
		if rep == nil || rep.Suspect == nil {
			counts["unreadable"]++
			continue
		}
		inc, err := c.Render(rep, FromBytes(raw), time.Now())
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		values := fieldValues(t, inc.Record)
		for _, cf := range c.fields {
			if cf.field.Name != "Criticality SOC" && cf.field.Name != "Incident Category" {
				continue
			}
			v, ok := values[cf.field.ID]
			if !ok {
				counts[cf.field.Name+": (not set)"]++
				continue
			}
			for _, id := range v.(map[string]any)["ValuesListIds"].([]any) {
				counts[cf.field.Name+": "+valueName(cf.values, int64(id.(float64)))]++
			}
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%d emails", len(paths))
	for _, k := range keys {
		t.Logf("%-40s %5d %5.1f%%", k, counts[k], 100*float64(counts[k])/float64(len(paths)))
	}
}
