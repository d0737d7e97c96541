package email

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestCountBoundaryParams(t *testing.T) {
	t.Parallel()
	tests := map[string]int{
		`Content-Type: multipart/mixed; boundary="a"`:                  1,
		`Content-Type: multipart/mixed; BOUNDARY = a`:                  1,
		`Content-Type: multipart/mixed; boundary*0="a"; boundary*1=b`:  2,
		"the word boundary in prose, and boundary-less text":           0,
		`--boundary_value_here` + "\n" + `Content-Type: text/plain`:    0,
		strings.Repeat(`Content-Type: multipart/mixed; boundary=x`, 3): 3,
	}
	for in, want := range tests {
		if got := countBoundaryParams([]byte(in)); got != want {
			t.Errorf("countBoundaryParams(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestScanDepth(t *testing.T) {
	t.Parallel()
	if got := scanDepth(bytes.NewReader(nestedMultipart(7)), 100); got != 7 {
		t.Errorf("scanDepth(7 levels) = %d", got)
	}
	if got := scanDepth(bytes.NewReader(nestedMultipart(50)), 10); got != 10 {
		t.Errorf("scanDepth stops at its limit: got %d", got)
	}
	siblings := "Content-Type: multipart/mixed; boundary=o\n\n" +
		"--o\nContent-Type: multipart/alternative; boundary=i1\n\n--i1\n\nx\n--i1--\n" +
		"--o\nContent-Type: multipart/alternative; boundary=i2\n\n--i2\n\ny\n--i2--\n--o--\n"
	if got := scanDepth(strings.NewReader(siblings), 100); got != 2 {
		t.Errorf("scanDepth(siblings) = %d, want 2", got)
	}
	// An unclosed inner container ends at the outer delimiter.
	unclosed := "Content-Type: multipart/mixed; boundary=o\n\n" +
		"--o\nContent-Type: multipart/mixed; boundary=i\n\n--i\n\nx\n" +
		"--o\nContent-Type: multipart/mixed; boundary=j\n\n--j\n\ny\n--o--\n"
	if got := scanDepth(strings.NewReader(unclosed), 100); got != 2 {
		t.Errorf("scanDepth(unclosed) = %d, want 2", got)
	}
}

func TestFindAround(t *testing.T) {
	t.Parallel()
	word := regexp.MustCompile(`[a-z]+://[a-z.]+`)
	text := "a http://x.example b\nftp://y.example and :// alone http://z"
	var got []string
	for _, loc := range findAround(word, text, "://", 32, 100, 10) {
		got = append(got, text[loc[0]:loc[1]])
	}
	want := []string{"http://x.example", "ftp://y.example", "http://z"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("findAround = %q, want %q", got, want)
	}
	if n := len(findAround(word, strings.Repeat("http://a ", 100), "://", 32, 100, 5)); n != 5 {
		t.Errorf("findAround ignored its limit: %d matches", n)
	}
}
