package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/clients"
	"github.com/mail2archer/mail2archer/internal/clip"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/pipeline"
	"github.com/mail2archer/mail2archer/internal/store"
	"github.com/mail2archer/mail2archer/subscriptions"
)

// SubscriptionManager is what the subscriptions commands need of a
// subscriptions.Manager: its one-shot operations.
type SubscriptionManager interface {
	List(ctx context.Context) ([]subscriptions.Listed, error)
	Delete(ctx context.Context, id string) error
	ReconcileOnce(ctx context.Context) (subscriptions.ReconcileReport, error)
}

// SubscriptionsUsage is the usage line of the subscriptions commands.
const SubscriptionsUsage = "usage: mail2archer subscriptions list | sync | delete ID [ID ...]"

// Subscriptions runs `mail2archer subscriptions list|sync|delete ID…` with
// m and writes what it did to w: list prints the application's
// subscriptions as a table, with the time left counted from now; sync
// reconciles and resyncs once (only resyncs beside a running service);
// delete deletes each given subscription, stopping at the first failure.
func Subscriptions(ctx context.Context, m SubscriptionManager, args []string, now time.Time, w io.Writer) error {
	if len(args) == 0 {
		return errors.New(SubscriptionsUsage)
	}
	if (args[0] == "list" || args[0] == "sync") && len(args) > 1 {
		return fmt.Errorf("subscriptions %s takes no argument; %s", args[0], SubscriptionsUsage)
	}
	switch args[0] {
	case "list":
		list, err := m.List(ctx)
		if err != nil {
			return err
		}
		return WriteSubscriptions(w, list, now)
	case "sync":
		rep, err := m.ReconcileOnce(ctx)
		if err != nil {
			return err
		}
		return WriteReconcileReport(w, rep)
	case "delete":
		if len(args) < 2 {
			return errors.New("usage: mail2archer subscriptions delete ID [ID ...]")
		}
		for _, id := range args[1:] {
			if err := m.Delete(ctx, id); err != nil {
				return err
			}
			if _, err := fmt.Fprintf(w, "deleted subscription %s\n", printable(id)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		return nil
	}
	return fmt.Errorf("unknown subscriptions command %q; use list, sync or delete", clip.String(args[0], 40))
}

// WriteSubscriptions prints list as a table, one subscription per line,
// with the time left before expiry counted from now and what this
// deployment does with it. Secrets are never printed, and values Graph
// returned cannot break the table or the terminal.
func WriteSubscriptions(w io.Writer, list []subscriptions.Listed, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "ID\tMAILBOX\tFOLDER\tEXPIRES\tLEFT\tSTATE")
	for _, l := range list {
		left := l.ExpiresAt.Sub(now).Truncate(time.Minute)
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(l.ID), printable(l.Mailbox), printable(l.Folder),
			l.ExpiresAt.UTC().Format(time.RFC3339), left, subscriptionState(l))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write subscription list: %w", err)
	}
	return nil
}

// subscriptionState says what this deployment does with a listed
// subscription.
func subscriptionState(l subscriptions.Listed) string {
	switch {
	case l.Managed():
		return "managed"
	case l.Ours && !l.Configured:
		return "not configured (deleted at next start)"
	case l.Ours:
		return "secret unknown (replaced at next start)"
	default:
		return "other deployment"
	}
}

// WriteReconcileReport prints what `subscriptions sync` did: whether it
// managed the subscriptions or a running service does, and per mailbox, in
// order, how many messages the resync queued.
func WriteReconcileReport(w io.Writer, rep subscriptions.ReconcileReport) error {
	var b strings.Builder
	if rep.Managed {
		b.WriteString("subscriptions reconciled\n")
	} else {
		b.WriteString("a running service manages the subscriptions; only the resync ran\n")
	}
	mailboxes := make([]string, 0, len(rep.Queued))
	for mb := range rep.Queued {
		mailboxes = append(mailboxes, mb)
	}
	slices.Sort(mailboxes)
	for _, mb := range mailboxes {
		fmt.Fprintf(&b, "%s: %d message(s) queued by the resync\n", printable(mb), rep.Queued[mb])
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write sync report: %w", err)
	}
	return nil
}

// printable keeps a value from Graph or the command line from breaking a
// table or the terminal: control characters and tabs become '?', and it is
// clipped to 200 characters.
func printable(s string) string {
	return clip.String(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '?'
		}
		return r
	}, s), 200)
}

// OpenSubscriptions builds a subscriptions manager for an operator command,
// from the service's configuration: its state database, a Graph client and
// the queue that resyncs fill. The manager is not running; the command
// calls its one-shot operations (List, Delete, ReconcileOnce). closeFn
// releases what it opened. graphHTTP, when set, is the Graph client's
// parent HTTP client (tests).
func OpenSubscriptions(ctx context.Context, cfg *config.Config, log zerolog.Logger, graphHTTP *http.Client) (m *subscriptions.Manager, closeFn func() error, err error) {
	st, err := store.Open(ctx, cfg.DatabaseURL.Reveal(), log)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	gc, err := graph.New(clients.Graph(cfg, graphHTTP), log)
	if err != nil {
		return nil, nil, fmt.Errorf("graph client: %w", err)
	}
	q, err := st.NewQueue(&river.Config{})
	if err != nil {
		return nil, nil, err
	}
	m, err = subscriptions.New(clients.Subscriptions(cfg), gc, st, pipeline.ResyncQueue{Jobs: q, Store: st},
		subscriptions.Options{Logger: slog.New(zerolog.NewSlogHandler(log.With().Str("component", "subscriptions").Logger()))})
	if err != nil {
		return nil, nil, err
	}
	return m, st.Close, nil
}
