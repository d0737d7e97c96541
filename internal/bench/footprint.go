package bench

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// footprint measures start-up time, idle memory and the peak while one
// email with a large attachment is processed. With a service command the
// service runs alone in a child process; otherwise in this process, and
// the figures include the simulators and the bench.
func (r *runner) footprint(ctx context.Context, res *ScenarioResult) (err error) {
	svc, err := r.startService(ctx, ScenarioFootprint, setup{graph: func(o *graphsim.Options) { o.RecordLimit = -1 }})
	if err != nil {
		return err
	}
	defer stopService(svc, &err)
	idle, err := settledRSS(ctx, svc.pid, r.p.IdleSettle)
	if err != nil {
		return err
	}
	anon, anonErr := anonymousMemory(svc.pid)

	mail := largeEmail(r.p.AttachmentBytes, 1)
	peak := startPeakRSS(svc.pid)
	if _, err := svc.deliver(mail); err != nil {
		peak.Stop()
		return fmt.Errorf("deliver the large email: %w", err)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	werr := waitIncidents(wctx, svc, 1, 20*time.Millisecond)
	peakBytes := peak.Stop()
	if werr != nil {
		return fmt.Errorf("the large email: %w", werr)
	}

	// The same email reported with Outlook's Report button: the original
	// travels as an attached .eml, which is held in memory to be parsed.
	report := reportWrapping(mail)
	peak = startPeakRSS(svc.pid)
	if _, err := svc.deliver(report); err != nil {
		peak.Stop()
		return fmt.Errorf("deliver the large report: %w", err)
	}
	werr = waitIncidents(wctx, svc, 2, 20*time.Millisecond)
	reportPeak := peak.Stop()
	if werr != nil {
		return fmt.Errorf("the large report: %w", werr)
	}

	if svc.scope == "" {
		if st, err := os.Stat(r.serviceCmd[0]); err == nil {
			// The budget is for the binary as the Dockerfile builds it.
			if stripped(r.serviceCmd[0]) {
				res.add("binary size, stripped", float64(st.Size())/1e6, "MB", atMost(24))
			} else {
				res.add("binary size, not stripped", float64(st.Size())/1e6, "MB", nil)
			}
		}
	}
	res.addDuration("start to ready", svc.ready, atMost(1000)).Scope = svc.scope
	res.add("idle RSS", mib(idle), "MiB", atMost(30)).Scope = svc.scope
	if anonErr == nil {
		res.add("idle RSS, anonymous", mib(anon), "MiB", nil).Scope = svc.scope
		res.add("idle RSS, mapped files", mib(idle-anon), "MiB", nil).Scope = svc.scope
	}
	res.add("peak RSS, one large email", mib(peakBytes), "MiB", atMost(100)).Scope = svc.scope
	res.add("peak RSS, the same email reported as an attachment", mib(reportPeak), "MiB", nil).Scope = svc.scope
	if svc.scope == "" {
		res.note("the service ran alone as a child process (%s); start to ready is from exec to the first 200 from /readyz",
			strings.Join(r.serviceCmd, " "))
	} else {
		res.note("measured in one process with both simulators and the bench (no service command given); start to ready includes starting the simulators")
	}
	res.note("idle RSS %s after ready; the large email has a %s attachment (MIME %s); simulators answer at once",
		r.p.IdleSettle, sizeString(r.p.AttachmentBytes), sizeString(len(mail)))
	if svc.scope == "" {
		res.note("binary size is the file %s; the 24 MB budget (20 MB, and 4 MB for the PostgreSQL store) is for a stripped build, as the Dockerfile makes it: CGO_ENABLED=0 go build -trimpath -ldflags='-s -w'", r.serviceCmd[0])
	}
	res.note("the reported email's MIME is spooled to disk and parsed from there; an attached .eml (the Report button's format) is held decoded in memory while it is parsed")
	return nil
}

// settledRSS waits d, then reads the process's resident set size.
func settledRSS(ctx context.Context, pid string, d time.Duration) (int64, error) {
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	rss, _, err := procMemory(pid)
	return rss, err
}

func sizeString(n int) string {
	return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
}

// stripped reports whether the ELF file at path has no symbol table.
func stripped(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer func() { _ = f.Close() }()
	return f.Section(".symtab") == nil
}
