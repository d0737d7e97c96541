package zipcrypto

import (
	"io"
	"runtime"
	"testing"
)

const (
	megabyte      = 1 << 20
	largeEntryMiB = 50
	// streamingAllocLimit bounds what writing a large entry may allocate
	// in total: the compressor's state and the fixed buffers, far below
	// the size of the entry.
	streamingAllocLimit = 4 * megabyte
)

// attachmentBlock returns a megabyte of pseudo-random text over 64
// symbols, which Deflate shrinks by about a quarter, as it would shrink
// an encoded document.
func attachmentBlock() []byte {
	const symbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := randomBytes(9, megabyte)
	for i := range b {
		b[i] = symbols[b[i]%64]
	}
	return b
}

// countingWriter counts and drops what is written to it.
type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// writeLargeArchive writes one entry of mib copies of block, in the
// 32 KiB pieces io.Copy would use, and closes the archive.
func writeLargeArchive(dst io.Writer, block []byte, mib int) error {
	w := NewWriter(dst, password)
	ew, err := w.Create("large.bin", when)
	if err != nil {
		return err
	}
	for range mib {
		if err := writeChunked(ew, block, 32<<10); err != nil {
			return err
		}
	}
	return w.Close()
}

// TestLargeEntryIsStreamed writes a 50 MB entry (6 MB under the race
// detector, still above the limit) and checks that the heap allocations of
// the whole archive stay a small constant. It is not parallel so that no
// other test allocates while it measures.
func TestLargeEntryIsStreamed(t *testing.T) {
	mib := largeEntryMiB
	if raceDetector {
		mib = 6
	}
	block := attachmentBlock()
	var out countingWriter
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := writeLargeArchive(&out, block, mib); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("%d MiB entry: %d bytes of archive, %d bytes allocated", mib, out.n, allocated)
	if allocated > streamingAllocLimit {
		t.Errorf("writing a %d MiB entry allocated %d bytes, limit %d", mib, allocated, streamingAllocLimit)
	}
	if out.n < int64(mib)*megabyte/2 {
		t.Errorf("archive of %d bytes is implausibly small for %d MiB of text", out.n, mib)
	}
}

// BenchmarkWrite50MB writes a 50 MB entry per iteration and reports the
// heap bytes allocated per megabyte written (allocB/MB); a writer that
// buffered the entry would report about a megabyte or more.
func BenchmarkWrite50MB(b *testing.B) {
	block := attachmentBlock()
	b.SetBytes(largeEntryMiB * megabyte)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	iterations := 0
	for b.Loop() {
		if err := writeLargeArchive(io.Discard, block, largeEntryMiB); err != nil {
			b.Fatal(err)
		}
		iterations++
	}
	runtime.ReadMemStats(&after)
	perMB := float64(after.TotalAlloc-before.TotalAlloc) / float64(iterations*largeEntryMiB)
	b.ReportMetric(perMB, "allocB/MB")
}
