package email

import (
	"os"
	"strings"
	"testing"
)

// BenchmarkAnalyzeCorpus analyses every typical (≤ 100 KB) corpus and
// sample file per iteration and reports emails per second of wall time and
// of CPU time (run it with -cpu 1 for one core).
func BenchmarkAnalyzeCorpus(b *testing.B) {
	var mails [][]byte
	var size int64
	for _, path := range corpusFiles(b) {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(raw) > 100<<10 {
			continue
		}
		mails = append(mails, raw)
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

// BenchmarkAnalyzeHostile measures large bodies shaped to be expensive:
// deeply nested HTML tags, text dense with URLs or addresses, and lines that
// look like inline-forward headers. Throughput must stay linear in size.
func BenchmarkAnalyzeHostile(b *testing.B) {
	shapes := []struct{ name, head, unit string }{
		{"nested-tags", "Content-Type: text/html\r\n\r\n", "<b><i><a href=x>"},
		{"urls", "Content-Type: text/plain\r\n\r\n", "see http://a.example/x?y=1 and "},
		{"addresses", "Content-Type: text/plain\r\n\r\n", "a@b.example "},
		{"forward-keys", "Content-Type: text/plain\r\n\r\n", "From: x\n"},
	}
	for _, s := range shapes {
		raw := []byte(s.head + strings.Repeat(s.unit, (8<<20)/len(s.unit)))
		b.Run(s.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if _, err := Analyze(raw, Metadata{}, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
