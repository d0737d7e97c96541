package tmpl

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoReflectMethod links testdata/reflectcheck, a program that
// compiles and renders the example mapping as the service does, with the
// linker's -dumpdep and fails if any reachable function is marked
// <ReflectMethod>: such a function (reflect's Method or MethodByName with
// a name known only at run time) makes the linker keep every exported
// method of every type, the whole Graph SDK among them. It builds a
// binary, so it runs only without -short.
func TestNoReflectMethod(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; run without -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(t.TempDir(), "reflectcheck"), "-ldflags=-dumpdep", "./testdata/reflectcheck")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v\n%s", err, errOut.String())
	}
	edges := 0
	var marked []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(append(out.Bytes(), errOut.Bytes()...)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, " -> ") {
			edges++
		}
		if from, _, ok := strings.Cut(line, " -> "); ok && strings.Contains(from, "<ReflectMethod>") && !seen[from] {
			seen[from] = true
			marked = append(marked, from)
		}
	}
	if edges == 0 {
		t.Fatal("the linker printed no dependencies: -dumpdep had no effect")
	}
	if len(marked) > 0 {
		t.Errorf("reachable functions look methods up by name:\n%s", strings.Join(marked, "\n"))
	}
}
