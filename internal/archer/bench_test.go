package archer_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

const benchFileSize = 50 << 20

// heapPeak samples the live heap while an operation runs.
type heapPeak struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startHeapPeak() *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	h.done.Go(func() {
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if v := heapObjects(); v > h.peak {
				h.peak = v
			}
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	})
	return h
}

func (h *heapPeak) finish() uint64 {
	close(h.stop)
	h.done.Wait()
	return h.peak
}

// BenchmarkUploadAttachment50MB uploads a 50 MB file to the simulator. The
// simulator decodes the body as a stream and keeps one decoded copy, so of
// the bytes reported, about 1.0 × the file size is the simulator's stored
// copy; everything above that is the client's. The "buffered" baseline
// builds the same body with json.Marshal, as a naive client would, to show
// what streaming saves.
func BenchmarkUploadAttachment50MB(b *testing.B) {
	data := make([]byte, benchFileSize)
	_, _ = rand.Read(data)
	ctx := context.Background()

	run := func(b *testing.B, upload func(*bundle) (int64, error)) {
		bd := setup(b, setupOpts{sim: archersim.Options{MaxAttachmentBytes: 2 * benchFileSize}})
		if _, err := upload(bd); err != nil { // warm up: login, connections
			b.Fatal(err)
		}
		var peakSum, allocSum uint64
		b.SetBytes(benchFileSize)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			b.StopTimer()
			runtime.GC()
			base := heapObjects()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			h := startHeapPeak()
			b.StartTimer()
			id, err := upload(bd)
			b.StopTimer()
			peak := h.finish()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if err != nil {
				b.Fatal(err)
			}
			if peak > base {
				peakSum += peak - base
			}
			allocSum += after.TotalAlloc - before.TotalAlloc
			bd.sim.DeleteAttachment(id)
			b.StartTimer()
		}
		b.StopTimer()
		n := float64(b.N)
		b.ReportMetric(float64(peakSum)/n/(1<<20), "peak-heap-MB/op")
		b.ReportMetric(float64(allocSum)/n/benchFileSize, "alloc/file-size")
	}

	b.Run("streaming", func(b *testing.B) {
		run(b, func(bd *bundle) (int64, error) {
			return bd.client.UploadAttachment(ctx, "report.eml", bytes.NewReader(data))
		})
	})

	b.Run("buffered-baseline", func(b *testing.B) {
		run(b, func(bd *bundle) (int64, error) {
			if _, err := bd.client.ValuesListValues(ctx, 1003); err != nil { // ensures a session
				return 0, err
			}
			token := lastToken(bd)
			body, err := json.Marshal(map[string]any{"AttachmentName": "report.eml", "AttachmentBytes": data})
			if err != nil {
				return 0, err
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, bd.srv.URL+"/RSAArcher/platformapi/core/content/attachment", bytes.NewReader(body))
			if err != nil {
				return 0, err
			}
			req.Header.Set("Authorization", token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := bd.srv.Client().Do(req)
			if err != nil {
				return 0, err
			}
			defer resp.Body.Close()
			var w struct {
				RequestedObject struct {
					ID int64 `json:"Id"`
				}
				IsSuccessful bool
			}
			if err := json.NewDecoder(resp.Body).Decode(&w); err != nil || !w.IsSuccessful {
				return 0, fmt.Errorf("baseline upload: %v", err)
			}
			return w.RequestedObject.ID, nil
		})
	})
}

// lastToken returns the session header the client sent most recently.
func lastToken(bd *bundle) string {
	reqs := bd.sim.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if h := reqs[i].Header.Get("Authorization"); h != "" {
			return h
		}
	}
	return ""
}
