package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method; zero for an empty slice. ds is sorted in place.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	rank := int(float64(len(ds))*p/100+0.999999999) - 1
	rank = max(0, min(rank, len(ds)-1))
	return ds[rank]
}

// procMemory reads VmRSS and VmHWM (peak RSS) of a process, in bytes, from
// /proc/PID/status ("self" for this process).
func procMemory(pid string) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("read memory of process %s: %w", pid, err)
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm int64, err error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	found := 0
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("unexpected %s line %q", key, sc.Text())
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			return 0, 0, fmt.Errorf("unexpected %s value %q", key, fields[0])
		}
		if key == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
		found++
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("no VmRSS and VmHWM in the process status")
	}
	return rss, hwm, nil
}

// peakRSS tracks the peak resident set of a process over a period: it
// resets the kernel's high-water mark when allowed (clear_refs) and also
// samples VmRSS every few milliseconds, keeping the larger figure.
type peakRSS struct {
	pid      string
	resetHWM bool
	stop     chan struct{}
	wg       sync.WaitGroup

	mu   sync.Mutex
	peak int64
}

func startPeakRSS(pid string) *peakRSS {
	p := &peakRSS{pid: pid, stop: make(chan struct{})}
	// Writing 5 to clear_refs resets VmHWM to the current RSS.
	p.resetHWM = os.WriteFile("/proc/"+pid+"/clear_refs", []byte("5"), 0) == nil
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			p.sample()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *peakRSS) sample() {
	rss, _, err := procMemory(p.pid)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.peak = max(p.peak, rss)
	p.mu.Unlock()
}

// Stop ends sampling and returns the peak in bytes.
func (p *peakRSS) Stop() int64 {
	close(p.stop)
	p.wg.Wait()
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.resetHWM {
		if _, hwm, err := procMemory(p.pid); err == nil {
			p.peak = max(p.peak, hwm)
		}
	}
	return p.peak
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// anonymousMemory reads the anonymous (heap, stacks) part of a process's
// resident set from /proc/PID/smaps_rollup, in bytes; the rest is mapped
// files, mostly the binary's own code and data.
func anonymousMemory(pid string) (int64, error) {
	b, err := os.ReadFile("/proc/" + pid + "/smaps_rollup")
	if err != nil {
		return 0, fmt.Errorf("read memory map of process %s: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || key != "Anonymous" {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) != 2 || fields[1] != "kB" {
			break
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || n < 0 {
			break
		}
		return n << 10, nil
	}
	return 0, fmt.Errorf("no Anonymous line in the memory map of process %s", pid)
}

// fsyncProbe measures how long the disk under dir takes to make a small
// write durable, once per interval until stopped, so that a slow run can
// be told apart from a slow disk.
type fsyncProbe struct {
	stop chan struct{}
	done chan struct{}
	lat  []time.Duration
	err  error
}

func startFsyncProbe(dir string, every time.Duration) *fsyncProbe {
	p := &fsyncProbe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		f, err := os.CreateTemp(dir, "fsync-probe-")
		if err != nil {
			p.err = err
			return
		}
		defer func() { _ = os.Remove(f.Name()) }()
		defer func() { _ = f.Close() }()
		block := make([]byte, 4096)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			t0 := time.Now()
			if _, err := f.WriteAt(block, 0); err != nil {
				p.err = err
				return
			}
			if err := f.Sync(); err != nil {
				p.err = err
				return
			}
			p.lat = append(p.lat, time.Since(t0))
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

// Stop ends the probe and returns the measured durations.
func (p *fsyncProbe) Stop() ([]time.Duration, error) {
	close(p.stop)
	<-p.done
	return p.lat, p.err
}
