package clip

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestString(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		n    int
		want string
	}{
		{"", 5, ""},
		{"short", 5, "short"},
		{"exactly", 7, "exactly"},
		{"one two three", 7, "one tw…"},
		{"one  \n\t two", 20, "one two"},
		{"  leading and trailing  ", 40, "leading and trailing"},
		{"héllo wörld", 8, "héllo w…"},
		{"日本語のテキスト", 4, "日本語…"},
		{"a\xffb", 5, "a\uFFFDb"},
		{"abc", 0, ""},
		{"abcdef", 1, "…"},
		{"ab cdef", 3, "ab…"},
	}
	for _, tc := range cases {
		got := String(tc.in, tc.n)
		if got != tc.want {
			t.Errorf("String(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
		if !utf8.ValidString(got) || utf8.RuneCountInString(got) > max(tc.n, 0) {
			t.Errorf("String(%q, %d) = %q: invalid or too long", tc.in, tc.n, got)
		}
	}
	if got := Bytes([]byte(strings.Repeat("x", 1<<20)), 10); got != "xxxxxxxxx…" {
		t.Errorf("Bytes of 1 MiB: %q", got)
	}
}
