package zipcrypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// These tests extract archives with the standard tools analysts use. They
// skip, saying which Debian package provides the tool, when it is missing.

// toolEntries is what the standard tools must extract byte for byte.
func toolEntries() []testEntry {
	return []testEntry{
		{name: "invoice.html", data: []byte("<html><body onload=alert(1)>pay now</body></html>\n"), modified: when},
		{name: "payload.exe", data: append([]byte("MZ\x90\x00"), randomBytes(7, 300_000)...), modified: when, chunk: 65536},
		{name: "empty.txt", modified: when},
		{name: "all-bytes.bin", data: bytes.Repeat(allBytes(), 4000), modified: when, chunk: 1000},
		{name: "pièce jointe/résumé €.docx", data: randomBytes(8, 5000), modified: when},
		{name: "вложение/請求書.pdf", data: []byte("%PDF-1.7\n%âãÏÓ\n"), modified: when},
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// lookTool returns the path of the first of names found on PATH, or skips.
func lookTool(t *testing.T, pkg string, names ...string) string {
	t.Helper()
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skipf("none of %v on PATH: install the Debian package %s to run this test", names, pkg)
	return ""
}

// extracted returns the SHA-256 of every regular file under dir, keyed by
// its slash-separated path relative to dir.
func extracted(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		got[filepath.ToSlash(rel)] = sha256Hex(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// runTool runs a command with a UTF-8 locale so names are not transcoded.
func runTool(dir, tool string, args ...string) ([]byte, error) {
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "LANG=C.UTF-8")
	return cmd.CombinedOutput()
}

func testStandardTool(t *testing.T, tool string, extract func(archive, out, password string) []string) {
	entries := toolEntries()
	dir := t.TempDir()
	archive := filepath.Join(dir, "attachments.zip")
	if err := os.WriteFile(archive, writeArchive(t, entries, nil), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("right password extracts the exact bytes", func(t *testing.T) {
		out := filepath.Join(dir, "right")
		if output, err := runTool(dir, tool, extract(archive, out, password)...); err != nil {
			t.Fatalf("%s: %v\n%s", tool, err, output)
		}
		got := extracted(t, out)
		for _, e := range entries {
			if got[e.name] != sha256Hex(e.data) {
				t.Errorf("%s: SHA-256 %q, want %s", e.name, got[e.name], sha256Hex(e.data))
			}
		}
		if len(got) != len(entries) {
			t.Errorf("extracted %d files, want %d: %v", len(got), len(entries), got)
		}
	})

	t.Run("wrong password fails", func(t *testing.T) {
		out := filepath.Join(dir, "wrong")
		output, err := runTool(dir, tool, extract(archive, out, "infected!")...)
		if err == nil {
			t.Fatalf("%s succeeded with a wrong password:\n%s", tool, output)
		}
		got := extracted(t, out)
		for _, e := range entries {
			if len(e.data) > 0 && got[e.name] == sha256Hex(e.data) {
				t.Errorf("%s was extracted intact with a wrong password", e.name)
			}
		}
	})
}

func TestUnzipExtractsWithThePassword(t *testing.T) {
	t.Parallel()
	unzip := lookTool(t, "unzip", "unzip")
	testStandardTool(t, unzip, func(archive, out, password string) []string {
		return []string{"-o", "-P", password, archive, "-d", out}
	})
}

func Test7ZipExtractsWithThePassword(t *testing.T) {
	t.Parallel()
	sevenZip := lookTool(t, "7zip (or p7zip-full)", "7z", "7zz", "7za")
	testStandardTool(t, sevenZip, func(archive, out, password string) []string {
		return []string{"x", "-y", "-p" + password, "-o" + out, archive}
	})
}

func Test7ZipListsAnEmptyArchive(t *testing.T) {
	t.Parallel()
	sevenZip := lookTool(t, "7zip (or p7zip-full)", "7z", "7zz", "7za")
	dir := t.TempDir()
	archive := filepath.Join(dir, "empty.zip")
	if err := os.WriteFile(archive, writeArchive(t, nil, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	if output, err := runTool(dir, sevenZip, "t", archive); err != nil {
		t.Fatalf("%s t: %v\n%s", sevenZip, err, output)
	}
}
