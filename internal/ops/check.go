// Package ops holds the operator commands that work beside a running
// service: check (the configuration against the real tenant and Archer),
// jobs list, jobs retry, replay and the subscriptions commands. Each
// returns its result or writes a table; none needs the service running.
package ops

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/clients"
	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/store"
)

// CheckOptions replace the HTTP clients of the two outside systems (tests
// trusting a simulator's certificate); the zero value is production.
type CheckOptions struct {
	GraphHTTPClient, ArcherHTTPClient *http.Client
}

// CheckResult is one line of `mail2archer check`.
type CheckResult struct {
	Name string
	OK   bool
	// Detail says what was found, or for a failure what to fix.
	Detail string
}

// Check runs every check a new installation needs against the real tenant
// and Archer, without changing anything: the state database, a Graph token
// and a read of every mailbox's folder, the Archer login, and the mapping
// preflight. It never stops at the first failure.
func Check(ctx context.Context, cfg *config.Config, log zerolog.Logger, opts CheckOptions) []CheckResult {
	var out []CheckResult
	add := func(name string, err error, ok, fix string) {
		if err != nil {
			out = append(out, CheckResult{Name: name, Detail: fix + ": " + clip.String(err.Error(), 400)})
			return
		}
		out = append(out, CheckResult{Name: name, OK: true, Detail: ok})
	}

	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), log)
	add("state database", err, "opened and migrated", "check M2A_DATABASE_URL and that the directory is writable")
	if err == nil {
		_ = st.Close()
	}

	gcfg := clients.Graph(cfg, opts.GraphHTTPClient)
	gcfg.MaxRetries = -1 // a check reports, it does not wait out throttling
	gc, err := graph.New(gcfg, log)
	if err != nil {
		add("graph credential", err, "", "check M2A_CLIENT_ID and M2A_CLIENT_SECRET or M2A_CLIENT_CERTIFICATE_FILE")
	} else {
		for _, mb := range cfg.MailboxList() {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := gc.Delta(cctx, mb, cfg.MailFolder, "", time.Now())
			cancel()
			add(fmt.Sprintf("graph: read %s of %s", cfg.MailFolder, mb), err,
				"token obtained, folder readable", graphFix(err, mb))
		}
	}

	ac, err := archer.New(clients.Archer(cfg, opts.ArcherHTTPClient), log)
	if err != nil {
		add("archer login", err, "", "check the M2A_ARCHER_* settings")
		return out
	}
	defer func() { _ = ac.Close(context.WithoutCancel(ctx)) }()
	err = ac.Ping(ctx)
	add("archer login", err, "logged in as "+cfg.ArcherUsername, archerFix(err))
	if err != nil {
		return out
	}
	m, err := incident.Load(cfg.MappingFile)
	if err != nil {
		add("mapping preflight", err, "", "fix the mapping file (M2A_MAPPING_FILE)")
		return out
	}
	c, err := m.Compile(ctx, ac)
	detail := ""
	if err == nil {
		detail = fmt.Sprintf("%s / %s: every field resolved", c.App.Name, c.Level.Name)
	}
	add("mapping preflight", err, detail, "fix the mapping file (M2A_MAPPING_FILE)")
	if err != nil {
		return out
	}
	// Exactly once rests on finding a record by its key: prove it now.
	err = c.ProbeLookup(ctx, ac)
	fix := ""
	if err != nil {
		fix = archer.Decide(err).Fix
		if fix == "" {
			fix = "check that Archer's Content API ({base}/contentapi/) is reachable"
		}
	}
	add("archer record lookup", err, fmt.Sprintf("records of %q are found by %q through the Content API", c.Level.Name, c.KeyField.Name), fix)
	for _, w := range c.Warnings() {
		out = append(out, CheckResult{Name: "mapping warning", OK: true, Detail: w})
	}
	// Acknowledgments are sent with Mail.Send.
	if m.Ack != nil && gc != nil {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		ok, detail, fix := CheckSendPermission(cctx, gc.AppRoles)
		cancel()
		if !ok {
			detail = fix + ": " + detail
		}
		out = append(out, CheckResult{Name: "graph permission Mail.Send", OK: ok, Detail: detail})
	}
	return out
}

func graphFix(err error, mailbox string) string {
	if err == nil {
		return ""
	}
	d := graph.Decide(err)
	switch d.Action {
	case outcome.WaitOperator:
		return "grant the application permission Mail.Read (admin consent) and allow " + mailbox +
			" in the Exchange application access policy; check the tenant id, client id and secret (" + d.Fix + ")"
	case outcome.Retry, outcome.Snooze:
		return "Graph did not answer in time; try again"
	}
	if d.Reason == "message_gone" || d.Reason == "graph_gone" {
		return "check the mailbox address and M2A_MAIL_FOLDER"
	}
	return "see the error"
}

func archerFix(err error) string {
	switch {
	case err == nil:
		return ""
	}
	if d := archer.Decide(err); d.Fix != "" {
		return d.Fix
	}
	return "check M2A_ARCHER_URL and that Archer is reachable"
}

// WriteCheck prints the results as a table and reports whether all passed.
func WriteCheck(w io.Writer, results []CheckResult) bool {
	all := true
	width := 0
	for _, r := range results {
		width = max(width, len(r.Name))
	}
	for _, r := range results {
		mark := "✔"
		if !r.OK {
			mark, all = "✘", false
		}
		_, _ = fmt.Fprintf(w, "%s %-*s  %s\n", mark, width, r.Name, r.Detail)
	}
	if all {
		_, _ = fmt.Fprintln(w, "\nAll checks passed.")
	} else {
		_, _ = fmt.Fprintln(w, "\nFix the lines marked ✘ and run the check again.")
	}
	return all
}
