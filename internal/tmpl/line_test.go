package tmpl

import (
	"strings"
	"testing"
)

type category struct {
	RecordID int64
	Note     string
}

func TestLine(t *testing.T) {
	t.Parallel()
	l, err := CompileLine[category]("category", "  Archer {{.RecordID}} ")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := l.Execute(category{RecordID: 42}); err != nil || got != "Archer 42" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := l.Execute(category{}); err != nil {
		t.Error(err)
	}
	withNote, err := CompileLine[category]("category", "{{.Note}}")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withNote.Execute(category{Note: "a\nb"}); err == nil || !strings.Contains(err.Error(), "line break") {
		t.Errorf("a line break in the output: %v", err)
	}
	for text, want := range map[string]string{
		"Archer {{.RecordId}}":        "category:1:10: .RecordId: tmpl.category has no field RecordId",
		"Archer\n{{.RecordID}}":       "one line",
		"Archer {{.RecordID.Format}}": "int64 has no fields",
		"{{.RecordID":                 "category:1: unclosed action",
	} {
		if _, err := CompileLine[category]("category", text); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", text, err, want)
		}
	}
}
