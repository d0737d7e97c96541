package zipcrypto

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

const password = "infected"

// testEntry is one entry a test writes: its content goes to the entry
// writer in chunks of chunk bytes (all at once when chunk is 0).
type testEntry struct {
	name     string
	data     []byte
	modified time.Time
	chunk    int
}

var when = time.Date(2025, time.March, 14, 15, 9, 26, 0, time.UTC)

// seeded returns a deterministic stream of bytes.
func seeded(seed byte) io.Reader {
	return rand.NewChaCha8([32]byte{seed})
}

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(seed byte, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(seeded(seed), b); err != nil {
		panic(err)
	}
	return b
}

// writeArchive writes entries into an archive; random replaces the source
// of the encryption headers when it is not nil.
func writeArchive(t testing.TB, entries []testEntry, random io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf, password)
	if random != nil {
		w.random = random
	}
	for _, e := range entries {
		ew, err := w.Create(e.name, e.modified)
		if err != nil {
			t.Fatalf("Create(%q): %v", e.name, err)
		}
		if err := writeChunked(ew, e.data, e.chunk); err != nil {
			t.Fatalf("write %q: %v", e.name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

func writeChunked(w io.Writer, data []byte, chunk int) error {
	if chunk <= 0 {
		chunk = max(len(data), 1)
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		if _, err := w.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func readArchive(t testing.TB, archive []byte) *zip.Reader {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	if err != nil {
		t.Fatalf("archive/zip cannot read the archive: %v", err)
	}
	return zr
}

func TestEntriesRoundTripThroughTheTestReader(t *testing.T) {
	t.Parallel()
	text := bytes.Repeat([]byte("Please find the invoice attached.\r\n"), 500)
	binary := append(bytes.Repeat(allBytes(), 1000), randomBytes(1, 256<<10)...)
	tests := []struct {
		name    string
		entries []testEntry
	}{
		{"one text entry", []testEntry{{name: "invoice.txt", data: text, modified: when}}},
		{"several entries", []testEntry{
			{name: "invoice.html", data: []byte("<html><script>alert(1)</script></html>"), modified: when},
			{name: "pay.exe", data: randomBytes(2, 70_000), modified: when.Add(time.Hour), chunk: 4096},
			{name: "nested/dir/notes.txt", data: text, modified: when.Add(-48 * time.Hour), chunk: 1},
		}},
		{"empty entry alone", []testEntry{{name: "empty.bin", modified: when}}},
		{"empty entry between others", []testEntry{
			{name: "a.txt", data: text, modified: when},
			{name: "empty.bin", modified: when},
			{name: "b.txt", data: []byte("after the empty one"), modified: when},
		}},
		{"binary data in odd chunks", []testEntry{{name: "blob.bin", data: binary, modified: when, chunk: 7919}}},
		{"UTF-8 names", []testEntry{
			{name: "résumé.pdf", data: []byte("%PDF-1.7"), modified: when},
			{name: "счёт/факту́ра.exe", data: randomBytes(3, 1000), modified: when},
			{name: "请看.txt", data: text, modified: when},
			{name: "emoji 🎣.html", data: []byte("<b>hook</b>"), modified: when},
		}},
		{"names with harmless dots", []testEntry{
			{name: ".hidden", data: []byte("x"), modified: when},
			{name: "a..b/..c/c../d", data: []byte("y"), modified: when},
			{name: "./here.txt", data: []byte("z"), modified: when},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			archive := writeArchive(t, tt.entries, seeded(42))
			zr := readArchive(t, archive)
			if len(zr.File) != len(tt.entries) {
				t.Fatalf("%d entries, want %d", len(zr.File), len(tt.entries))
			}
			headers := seeded(42)
			for i, f := range zr.File {
				want := tt.entries[i]
				if f.Name != want.name {
					t.Errorf("entry %d is %q, want %q", i, f.Name, want.name)
				}
				got, err := openEncrypted(f, password)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.data, want.data) {
					t.Errorf("%s: content differs (%d bytes, want %d)", f.Name, len(got.data), len(want.data))
				}
				var random [11]byte
				if _, err := io.ReadFull(headers, random[:]); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got.header[:11], random[:]) {
					t.Errorf("%s: encryption header %x does not start with the random bytes %x", f.Name, got.header[:11], random)
				}
				if f.Flags&0x9 != 0x9 {
					t.Errorf("%s: flags %#x lack encrypted|data descriptor", f.Name, f.Flags)
				}
				nonASCII := strings.IndexFunc(f.Name, func(r rune) bool { return r > 0x7f }) >= 0
				if utf8Flag := f.Flags&0x800 != 0; utf8Flag != nonASCII {
					t.Errorf("%s: UTF-8 flag %v", f.Name, utf8Flag)
				}
				if !f.Modified.Equal(want.modified) {
					t.Errorf("%s: modified %v, want %v", f.Name, f.Modified, want.modified)
				}
				if f.Mode() != 0o644 {
					t.Errorf("%s: mode %v, want -rw-r--r--", f.Name, f.Mode())
				}
				checkLocalLayout(t, archive, f, true)
				if _, err := openEncrypted(f, "Infected"); err == nil {
					t.Errorf("%s opened with a wrong password", f.Name)
				}
			}
		})
	}
}

func TestCloseWithoutEntriesWritesAnEmptyArchive(t *testing.T) {
	t.Parallel()
	archive := writeArchive(t, nil, nil)
	if zr := readArchive(t, archive); len(zr.File) != 0 {
		t.Errorf("%d entries, want none", len(zr.File))
	}
	if len(archive) != 22 {
		t.Errorf("%d bytes, want the 22-byte end of central directory record alone", len(archive))
	}
}

func TestCreateRefusesUnsafeNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"",
		"/etc/passwd",
		"\\Windows\\win.ini",
		"C:/Users/x.exe",
		"c:x.exe",
		"..",
		"../x",
		"a/../../x",
		"a\\..\\x",
		"a/..",
		"dir/",
		"dir\\",
		"a\x00.exe",
		"\xff\xfe.exe",
		string(bytes.Repeat([]byte("a"), 1<<16)),
	} {
		var buf bytes.Buffer
		w := NewWriter(&buf, password)
		if _, err := w.Create(name, when); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%.40q) = %v, want %v", name, err, ErrInvalidName)
		}
		// A refused name leaves the writer usable.
		ew, err := w.Create("ok.txt", when)
		if err != nil {
			t.Fatalf("Create after a refused name: %v", err)
		}
		if _, err := io.WriteString(ew, "fine"); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		zr := readArchive(t, buf.Bytes())
		if len(zr.File) != 1 || zr.File[0].Name != "ok.txt" {
			t.Fatalf("after refusing %.40q the archive holds %v", name, zr.File)
		}
	}
}

func TestModificationTimesAreClampedToWhatZIPCanStore(t *testing.T) {
	t.Parallel()
	kolkata := time.FixedZone("IST", 5*3600+1800)
	tests := []struct {
		name     string
		modified time.Time
		want     time.Time
	}{
		{"zero time", time.Time{}, earliestModTime},
		{"unix epoch", time.Unix(0, 0), earliestModTime},
		{"before 1980 west of UTC", time.Date(1979, 12, 31, 20, 0, 0, 0, time.FixedZone("W", -10*3600)), earliestModTime},
		{"far future", time.Date(2400, 1, 1, 0, 0, 0, 0, time.UTC), latestModTime},
		{"ordinary time", when, when},
		{"other location", time.Date(2024, 2, 29, 23, 59, 58, 0, kolkata), time.Date(2024, 2, 29, 23, 59, 58, 0, kolkata)},
		{"sub-second part dropped", when.Add(700 * time.Millisecond), when},
	}
	for _, tt := range tests {
		archive := writeArchive(t, []testEntry{{name: "x", data: []byte("x"), modified: tt.modified}}, nil)
		f := readArchive(t, archive).File[0]
		if !f.Modified.Equal(tt.want) {
			t.Errorf("%s: modified %v, want %v", tt.name, f.Modified, tt.want)
		}
		date, clock := f.ModifiedDate, f.ModifiedTime
		gotDOS := []int{1980 + int(date>>9), int(date >> 5 & 0xf), int(date & 0x1f), int(clock >> 11), int(clock >> 5 & 0x3f), 2 * int(clock&0x1f)}
		w := tt.want
		wantDOS := []int{w.Year(), int(w.Month()), w.Day(), w.Hour(), w.Minute(), w.Second() &^ 1}
		if !slices.Equal(gotDOS, wantDOS) {
			t.Errorf("%s: MS-DOS date and time %v, want %v", tt.name, gotDOS, wantDOS)
		}
		if _, err := openEncrypted(f, password); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestMisuseReturnsErrClosed(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf, password)
	first, err := w.Create("first.txt", when)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(first, "first"); err != nil {
		t.Fatal(err)
	}
	second, err := w.Create("second.txt", when)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(first, "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("write to an ended entry: %v, want %v", err, ErrClosed)
	}
	if _, err := io.WriteString(second, "second"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(second, "late"); !errors.Is(err, ErrClosed) {
		t.Errorf("write after Close: %v, want %v", err, ErrClosed)
	}
	if _, err := w.Create("third.txt", when); !errors.Is(err, ErrClosed) {
		t.Errorf("Create after Close: %v, want %v", err, ErrClosed)
	}
	if err := w.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want %v", err, ErrClosed)
	}
	zr := readArchive(t, buf.Bytes())
	for i, want := range []string{"first", "second"} {
		got, err := openEncrypted(zr.File[i], password)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.data) != want {
			t.Errorf("entry %d holds %q, want %q", i, got.data, want)
		}
	}
}

var errBoom = errors.New("disk on fire")

// failingWriter accepts limit bytes, then fails every write.
type failingWriter struct {
	limit int
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) <= w.limit {
		w.limit -= len(p)
		return len(p), nil
	}
	n := w.limit
	w.limit = 0
	return n, errBoom
}

func TestUnderlyingWriteErrorsAreReturnedAndSticky(t *testing.T) {
	t.Parallel()
	entries := []testEntry{
		{name: "a.bin", data: randomBytes(4, 60_000), modified: when, chunk: 10_000},
		{name: "b.bin", data: randomBytes(5, 60_000), modified: when, chunk: 10_000},
	}
	full := len(writeArchive(t, entries, seeded(1)))
	for _, limit := range []int{0, 100, 5000, 50_000, 100_000, full - 30} {
		w := NewWriter(&failingWriter{limit: limit}, password)
		w.random = seeded(1)
		var calls []error
		for _, e := range entries {
			ew, err := w.Create(e.name, e.modified)
			calls = append(calls, err)
			if err == nil {
				calls = append(calls, writeChunked(ew, e.data, e.chunk))
			}
		}
		calls = append(calls, w.Close())
		failed := false
		for i, err := range calls {
			switch {
			case err == nil && failed:
				t.Errorf("limit %d: call %d succeeded after a failure", limit, i)
			case err != nil && !errors.Is(err, errBoom):
				t.Errorf("limit %d: call %d: %v, want %v", limit, i, err, errBoom)
			case err != nil:
				failed = true
			}
		}
		if !failed {
			t.Errorf("limit %d of %d bytes: no call failed", limit, full)
		}
	}
}

func TestRandomSourceFailureFailsCreate(t *testing.T) {
	t.Parallel()
	errNoEntropy := errors.New("no entropy")
	w := NewWriter(io.Discard, password)
	w.random = iotest.ErrReader(errNoEntropy)
	if _, err := w.Create("a.txt", when); !errors.Is(err, errNoEntropy) {
		t.Errorf("Create: %v, want %v", err, errNoEntropy)
	}
	if err := w.Close(); !errors.Is(err, errNoEntropy) {
		t.Errorf("Close: %v, want %v", err, errNoEntropy)
	}
}

func TestEncryptionHeadersComeFromCryptoRand(t *testing.T) {
	t.Parallel()
	entries := []testEntry{{name: "same.txt", data: []byte("same content"), modified: when}}
	a := readArchive(t, writeArchive(t, entries, nil)).File[0]
	b := readArchive(t, writeArchive(t, entries, nil)).File[0]
	ha, err := openEncrypted(a, password)
	if err != nil {
		t.Fatal(err)
	}
	hb, err := openEncrypted(b, password)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ha.header[:11], hb.header[:11]) {
		t.Errorf("two archives share the random encryption header %x", ha.header[:11])
	}
}

func TestEntryLargerThanTheLimitIsRefused(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := NewWriter(&buf, password)
	w.maxEntry = 1000
	full, err := w.Create("full.bin", when)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := full.Write(make([]byte, 1000)); err != nil {
		t.Fatalf("an entry of exactly the limit: %v", err)
	}
	over, err := w.Create("over.bin", when)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := over.Write(make([]byte, 600)); err != nil {
		t.Fatal(err)
	}
	if n, err := over.Write(make([]byte, 401)); !errors.Is(err, ErrTooLarge) || n != 0 {
		t.Errorf("write past the limit: %d, %v; want 0, %v", n, err, ErrTooLarge)
	}
	if _, err := w.Create("next.bin", when); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Create after an oversized entry: %v, want %v", err, ErrTooLarge)
	}
	if err := w.Close(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Close after an oversized entry: %v, want %v", err, ErrTooLarge)
	}
}
