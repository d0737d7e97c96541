package email

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jhillyerd/enmime/v2"
)

// corpusDir is a folder of .eml files to measure the analysis on:
//
//	go test ./internal/email/ -run TestCorpusStats -corpus=../shared/corpus/phishing_pot -v
//	go test ./internal/email/ -run '^$' -bench AnalyzeCorpus -cpu 1 -corpus=...
var corpusDir = flag.String("corpus", "", "folder of .eml files for TestCorpusStats and BenchmarkAnalyzeCorpusDev")

// devCorpus is where the development corpus lives next to the repository;
// BenchmarkAnalyzeCorpusDev uses it when -corpus is not given.
const devCorpus = "../../../shared/corpus/phishing_pot"

func readCorpus(tb testing.TB, dir string) (names []string, mails [][]byte) {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, filepath.Base(f))
		mails = append(mails, raw)
	}
	return names, mails
}

// angleInFrom finds the first angle-bracketed address of a From header.
var angleInFrom = regexp.MustCompile(`<\s*(?:mailto:)?([^<>\s"]+@[^<>\s"]+?)\.?\s*>`)

// expectedSender is the address a From header holds, found independently
// of the analysis: the first angle-bracketed address, else the first bare
// one; "" when the header holds none.
func expectedSender(raw []byte) string {
	end := len(raw)
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 && i < end {
			end = i
		}
	}
	h, err := enmime.ReadHeader(bufio.NewReader(bytes.NewReader(append(raw[:end:end], "\r\n\r\n"...))), discardErrors{})
	if err != nil {
		return ""
	}
	v := enmime.DecodeRFC2047(h.Get("From"))
	if m := angleInFrom.FindStringSubmatch(v); m != nil {
		return strings.ToLower(m[1])
	}
	return strings.ToLower(addrSpec.FindString(v))
}

// TestCorpusStats analyses every .eml of -corpus and prints per-field
// statistics, so that a change can be measured on any corpus. It fails
// only when the analysis returns an error that is not a bound.
func TestCorpusStats(t *testing.T) {
	if *corpusDir == "" {
		t.Skip("no -corpus folder given")
	}
	names, mails := readCorpus(t, *corpusDir)
	if len(mails) == 0 {
		t.Skipf("no .eml files in %s", *corpusDir)
	}
	c := map[string]int{}
	var misses []string
	inc := func(key string, cond bool) {
		if cond {
			c[key]++
		}
	}
	for i, raw := range mails {
		rep, err := Analyze(raw, Metadata{}, goldenOptions())
		if err != nil && !isBound(err) {
			t.Errorf("%s: %v", names[i], err)
		}
		inc("errors (bounds)", err != nil)
		s := rep.Suspect
		sig := s.Signals
		c["source "+s.Source]++
		if want := expectedSender(raw); want != "" {
			c["from: header has an address"]++
			if s.From.Address == want {
				c["from: sender address recovered"]++
			} else if len(misses) < 50 {
				misses = append(misses, fmt.Sprintf("%s: sender %q, header says %q", names[i], s.From.Address, want))
			}
			if d := registrable(domainOf(want)); d != "" {
				c["from: sender domain registrable"]++
				for _, od := range s.Observables.Domains {
					inc("from: sender domain in observables", od == d)
				}
			}
		}
		inc("from: display-name spoof", sig.DisplayNameSpoof)
		inc("reply-to: present", s.ReplyTo.Address != "")
		inc("reply-to: other domain", sig.ReplyToOtherDomain)
		inc("connecting ip: found", s.ConnectingIP != "")
		c["observables: ips"] += len(s.Observables.IPs)
		c["observables: domains"] += len(s.Observables.Domains)
		c["observables: urls"] += len(s.Observables.URLs)
		c["observables: urls unwrapped (via)"] += sig.NestedURLs
		inc("observables: emails with image hosts", len(s.Observables.ImageHosts) > 0)
		inc("observables: emails with tracking pixels", sig.TrackingPixels > 0)
		inc("signal: scl >= 5", sig.SCL >= 5)
		inc("signal: scl absent", sig.SCL < 0)
		inc("signal: bcl >= 7", sig.BCL >= 7)
		inc("signal: compauth=fail", sig.CompAuth == "fail")
		inc("signal: compauth absent", sig.CompAuth == "")
		inc("signal: spf=fail/softfail", sig.SPF == "fail" || sig.SPF == "softfail")
		inc("signal: dkim=fail", sig.DKIM == "fail")
		inc("signal: dmarc=fail", sig.DMARC == "fail")
		inc("signal: auth failed", sig.AuthFailed)
		inc("signal: lookalike", sig.Lookalike != "")
		inc("signal: link text != target", sig.LinkTextMismatch > 0)
		inc("signal: raw-ip url", sig.RawIPURLs > 0)
		inc("signal: punycode url", sig.PunycodeURLs > 0)
		inc("signal: shortener url", sig.ShortenerURLs > 0)
		inc("signal: nested url", sig.NestedURLs > 0)
		inc("signal: risky attachment", sig.RiskyAttachments > 0)
		inc("signal: html attachment", sig.HTMLAttachments > 0)
		if sig.Category != "" {
			c["signal: category "+sig.Category]++
		}
		for _, at := range s.Attachments {
			if at.Inline {
				c["attachments: inline "+at.Kind]++
			} else {
				c["attachments: "+at.Kind]++
			}
		}
	}
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Logf("%-44s %6d", "emails", len(mails))
	for _, k := range keys {
		t.Logf("%-44s %6d %5.1f%%", k, c[k], 100*float64(c[k])/float64(len(mails)))
	}
	if n := c["from: header has an address"]; n > 0 {
		t.Logf("sender address recovered where the header holds one: %.1f%%", 100*float64(c["from: sender address recovered"])/float64(n))
	}
	if n := c["from: sender domain registrable"]; n > 0 {
		t.Logf("sender domain among the observables: %.1f%%", 100*float64(c["from: sender domain in observables"])/float64(n))
	}
	for _, m := range misses {
		t.Log("miss: " + m)
	}
}

// BenchmarkAnalyzeCorpusDev analyses the development corpus (-corpus, or
// devCorpus when it exists) per iteration and reports emails per second of
// wall time and of CPU time on one goroutine.
func BenchmarkAnalyzeCorpusDev(b *testing.B) {
	dir := *corpusDir
	if dir == "" {
		dir = devCorpus
	}
	_, mails := readCorpus(b, dir)
	if len(mails) == 0 {
		b.Skipf("no .eml files in %s (give -corpus)", dir)
	}
	var size int64
	for _, raw := range mails {
		size += int64(len(raw))
	}
	opts := goldenOptions()
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for b.Loop() {
		for _, raw := range mails {
			if _, err := Analyze(raw, Metadata{}, opts); err != nil && !isBound(err) {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	n := float64(b.N * len(mails))
	b.ReportMetric(n/b.Elapsed().Seconds(), "emails/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		b.ReportMetric(n/cpu.Seconds(), "emails/cpu-s")
	}
	b.ReportMetric(float64(len(mails)), "emails/op")
}
