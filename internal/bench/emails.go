package bench

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/mail2archer/mail2archer/internal/sandbox"
)

// corpus hands out distinct reported emails built from the sandbox's
// samples: each copy gets its own Subject and Message-ID, so no two are
// the same email.
type corpus struct {
	samples [][]byte
	run     string
}

func newCorpus(run string) *corpus {
	c := &corpus{run: run}
	for _, s := range sandbox.Samples() {
		c.samples = append(c.samples, s.MIME)
	}
	return c
}

// email returns the n-th email of the corpus.
func (c *corpus) email(n int) []byte {
	s := c.samples[n%len(c.samples)]
	return withHeaders(s, map[string]string{
		"Subject":    fmt.Sprintf("[bench %s #%d] reported email", c.run, n),
		"Message-ID": fmt.Sprintf("<bench-%s-%d@bench.mail2archer.invalid>", c.run, n),
	})
}

// withHeaders replaces (or adds) top-level header fields of a MIME message,
// dropping the folded continuation lines of a replaced field.
func withHeaders(mime []byte, set map[string]string) []byte {
	sep := []byte("\r\n\r\n")
	nl := "\r\n"
	i := bytes.Index(mime, sep)
	if j := bytes.Index(mime, []byte("\n\n")); j >= 0 && (i < 0 || j < i) {
		sep, nl, i = []byte("\n\n"), "\n", j
	}
	if i < 0 {
		i, sep = len(mime), nil
	}
	head, body := string(mime[:i]), mime[i:]
	var out strings.Builder
	skipping := false
	for _, line := range strings.Split(head, nl) {
		if skipping && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) {
			continue
		}
		skipping = false
		if name, _, ok := strings.Cut(line, ":"); ok {
			if _, replace := lookupFold(set, name); replace {
				skipping = true
				continue
			}
		}
		out.WriteString(line)
		out.WriteString(nl)
	}
	for _, name := range []string{"Subject", "Message-ID"} {
		if v, ok := set[name]; ok {
			out.WriteString(name + ": " + v + nl)
		}
	}
	res := strings.TrimSuffix(out.String(), nl)
	if sep == nil {
		return append([]byte(res), mime[i:]...)
	}
	return append([]byte(res), body...)
}

func lookupFold(m map[string]string, key string) (string, bool) {
	for k, v := range m {
		if strings.EqualFold(k, strings.TrimSpace(key)) {
			return v, true
		}
	}
	return "", false
}

// largeEmail returns a suspicious email with one attachment of size bytes
// of random data, base64-encoded in 76-character lines.
func largeEmail(size int, seed uint64) []byte {
	data := make([]byte, size)
	r := rand.New(rand.NewPCG(seed, seed+1))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	enc := base64.StdEncoding.EncodeToString(data)
	var b bytes.Buffer
	b.Grow(len(enc) + len(enc)/76*2 + 2048)
	b.WriteString("From: \"Accounts Payable\" <ap@fabrikam-invoices.example>\r\n" +
		"To: Alice Smith <alice@contoso.com>\r\n" +
		"Subject: Overdue invoice - full statement attached\r\n" +
		"Date: Thu, 12 Mar 2026 09:12:00 +0000\r\n" +
		"Message-ID: <large-attachment@fabrikam-invoices.example>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_bench_large\"\r\n\r\n" +
		"--=_bench_large\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" +
		"Please find the full statement attached. Pay today at https://fabrikam-invoices.example/pay\r\n\r\n" +
		"--=_bench_large\r\nContent-Type: application/octet-stream; name=\"statement.bin\"\r\n" +
		"Content-Disposition: attachment; filename=\"statement.bin\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc)
	b.WriteString("\r\n--=_bench_large--\r\n")
	return b.Bytes()
}

// reportWrapping is a report of original as Outlook's Report button sends
// it: a short message with the original attached as message/rfc822.
func reportWrapping(original []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(original) + 1024)
	b.WriteString("From: Alice Smith <alice@contoso.com>\r\n" +
		"To: phish@contoso.com\r\n" +
		"Subject: Phishing: Overdue invoice - full statement attached\r\n" +
		"Date: Thu, 12 Mar 2026 09:20:00 +0000\r\n" +
		"Message-ID: <report-large@contoso.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=\"=_bench_report\"\r\n\r\n" +
		"--=_bench_report\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nReported as phishing.\r\n\r\n" +
		"--=_bench_report\r\nContent-Type: message/rfc822; name=\"statement.eml\"\r\n" +
		"Content-Disposition: attachment; filename=\"statement.eml\"\r\n\r\n")
	b.Write(original)
	b.WriteString("\r\n--=_bench_report--\r\n")
	return b.Bytes()
}
