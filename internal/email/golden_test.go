package email

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenOptions are the options every corpus file is analysed with.
func goldenOptions() Options {
	o := DefaultOptions()
	o.InternalDomains = []string{"contoso.com"}
	return o
}

// corpusFiles lists the .eml files of the corpus and the samples.
func corpusFiles(t testing.TB) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{"corpus", "samples"} {
		m, err := filepath.Glob(filepath.Join("testdata", dir, "*.eml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("empty corpus")
	}
	return files
}

// golden is what a golden file records for one corpus file.
type golden struct {
	Error      string  `json:"error"`
	Report     *Report `json:"report"`
	SuspectRaw struct {
		Name   string `json:"name"`
		Size   int    `json:"size"`
		SHA256 string `json:"sha256"`
	} `json:"suspect_raw"`
}

func goldenOf(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	meta := Metadata{Mailbox: "phish@contoso.com", MessageID: "AAMk-" + strings.TrimSuffix(filepath.Base(path), ".eml")}
	rep, err := Analyze(raw, meta, goldenOptions())
	var g golden
	if err != nil {
		g.Error = err.Error()
	}
	g.Report = rep
	if rep.Suspect != nil {
		sum := sha256.Sum256(rep.Suspect.Raw)
		g.SuspectRaw.Name = rep.Suspect.RawName
		g.SuspectRaw.Size = len(rep.Suspect.Raw)
		g.SuspectRaw.SHA256 = hex.EncodeToString(sum[:])
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestAnalyzeGolden compares the report of every corpus file with its
// golden JSON; -update rewrites the golden files.
func TestAnalyzeGolden(t *testing.T) {
	t.Parallel()
	for _, path := range corpusFiles(t) {
		dir := filepath.Base(filepath.Dir(path))
		name := strings.TrimSuffix(filepath.Base(path), ".eml")
		goldenPath := filepath.Join("testdata", "golden", dir, name+".json")
		t.Run(dir+"/"+name, func(t *testing.T) {
			t.Parallel()
			got := goldenOf(t, path)
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
				t.Errorf("report differs from %s (run go test -update and review the diff)\n%s", goldenPath, firstDiff(string(want), string(got)))
			}
		})
	}
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
			return "line " + strconv.Itoa(i+1) + ":\n want: " + truncateRunes(w, 300) + "\n  got: " + truncateRunes(g, 300)
		}
	}
	return ""
}

// TestAnalyzeReaderMatchesAnalyze reads every corpus file from disk the way
// the service reads its spooled copy and finds the same report as from
// memory; only the reported message's own Raw is left to the caller.
func TestAnalyzeReaderMatchesAnalyze(t *testing.T) {
	t.Parallel()
	for _, path := range corpusFiles(t) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		meta := Metadata{Mailbox: "phish@contoso.com", MessageID: "AAMk-" + filepath.Base(path)}
		want, wantErr := Analyze(raw, meta, goldenOptions())
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, gotErr := AnalyzeReader(f, int64(len(raw)), meta, goldenOptions())
		_ = f.Close()
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
			t.Errorf("%s: error %v, want %v", path, gotErr, wantErr)
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) {
			t.Errorf("%s: the report read from the file differs\n%s", path, firstDiff(string(wj), string(gj)))
		}
		switch {
		case got.Suspect.Source == "self" || got.Suspect.RawName == "forward.eml":
			if got.Suspect.Raw != nil {
				t.Errorf("%s: the reported message's Raw is held in memory (%d bytes)", path, len(got.Suspect.Raw))
			}
		case !bytes.Equal(got.Suspect.Raw, want.Suspect.Raw):
			t.Errorf("%s: the attached original's Raw differs", path)
		}
	}
}
