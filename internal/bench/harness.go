package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/sandbox"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// serviceLogger is the service's logger during a bench: info level, JSON,
// written nowhere, so that formatting the logs costs what it costs in
// production without flooding the terminal.
func serviceLogger() zerolog.Logger {
	return zerolog.New(io.Discard).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// subscriptionOf returns the simulator's subscription whose notifications
// go to the service.
func subscriptionOf(svc *service) (graphsim.Subscription, error) {
	for _, s := range svc.graph.Subscriptions() {
		if strings.HasPrefix(s.NotificationURL, svc.url) {
			return s, nil
		}
	}
	return graphsim.Subscription{}, errors.New("the service created no subscription in the Graph simulator")
}

// notifier posts change notifications to the service as Graph does, one
// message per POST.
type notifier struct {
	client *http.Client
	url    string
	sub    graphsim.Subscription
	tenant string
}

func newNotifier(sub graphsim.Subscription, tenant string, conns int) *notifier {
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute}
	return &notifier{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, url: sub.NotificationURL, sub: sub, tenant: tenant}
}

func (n *notifier) close() { n.client.CloseIdleConnections() }

// body builds the notification of a new message.
func (n *notifier) body(mailboxID, messageID string) []byte {
	res := fmt.Sprintf("Users/%s@%s/Messages/%s", mailboxID, n.tenant, messageID)
	b, _ := json.Marshal(map[string]any{"value": []any{map[string]any{
		"subscriptionId":                 n.sub.ID,
		"subscriptionExpirationDateTime": n.sub.ExpiresAt.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"clientState":                    n.sub.ClientState,
		"changeType":                     "created",
		"resource":                       res,
		"tenantId":                       n.tenant,
		"resourceData": map[string]any{
			"@odata.type": "#Microsoft.Graph.Message",
			"@odata.id":   res,
			"@odata.etag": `W/"CQAAABYAAAD"`,
			"id":          messageID,
		},
	}}})
	return b
}

// post sends one notification body and returns the HTTP status.
func (n *notifier) post(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build notification: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post notification: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// deliverSilently stores emails in the simulated mailbox without
// notifications (the bench posts its own, timed) and returns the ids the
// service knows them by.
func deliverSilently(svc *service, sub graphsim.Subscription, mails [][]byte) ([]string, error) {
	svc.graph.SetBehavior(graphsim.Behavior{Drop: true})
	defer svc.graph.SetBehavior(graphsim.Behavior{})
	var ids []string
	for start := 0; start < len(mails); start += 500 {
		end := min(start+500, len(mails))
		items := make([]graphsim.DeliverItem, 0, end-start)
		for _, m := range mails[start:end] {
			items = append(items, graphsim.DeliverItem{Mailbox: sandbox.Mailbox, Folder: "Inbox", MIME: m})
		}
		rest, err := svc.graph.DeliverBatch(items)
		if err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
		for _, id := range rest {
			id, err := serviceID(svc, sub, id)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// serviceID maps a REST id to the id the subscription notifies: the
// immutable id when the subscription asked for it.
func serviceID(svc *service, sub graphsim.Subscription, restID string) (string, error) {
	if !sub.ImmutableIDs {
		return restID, nil
	}
	m, err := svc.graph.Message(sandbox.Mailbox, restID)
	if err != nil {
		return "", fmt.Errorf("look up delivered message: %w", err)
	}
	return m.ImmutableID, nil
}

// mailboxID returns the simulator's user id of the sandbox mailbox.
func mailboxID(sub graphsim.Subscription) string {
	// resource: users/{id}/mailFolders('Inbox')/messages
	parts := strings.Split(sub.Resource, "/")
	if len(parts) >= 2 {
		return parts[1]
	}
	return sandbox.Mailbox
}

// recordKeys maps each incident's key field value to the record.
func recordKeys(svc *service) map[string]archersim.Record {
	out := map[string]archersim.Record{}
	for _, rec := range svc.archer.Records() {
		if k, ok := rec.Fields[svc.keyField].(string); ok {
			out[k] = rec
		}
	}
	return out
}

// countIncidents returns the number of records that carry an email's key.
func countIncidents(svc *service) int {
	n := 0
	for _, rec := range svc.archer.Records() {
		if _, ok := rec.Fields[svc.keyField].(string); ok {
			n++
		}
	}
	return n
}

// waitIncidents polls until the simulator holds n incidents.
func waitIncidents(ctx context.Context, svc *service, n int, every time.Duration) error {
	for {
		got := countIncidents(svc)
		if got >= n {
			return nil
		}
		if err := svc.alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d incidents created: %w", got, n, ctx.Err())
		case <-time.After(every):
		}
	}
}

// scrapeCounter sums the samples of one metric whose labels include all of
// want, from the service's /metrics.
func scrapeCounter(ctx context.Context, base, metric string, want map[string]string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("scrape metrics: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("scrape metrics: %s", resp.Status)
	}
	return sumCounter(io.LimitReader(resp.Body, 16<<20), metric, want)
}

// sumCounter parses the Prometheus text format just enough to add up one
// metric's samples that carry the wanted labels.
func sumCounter(rd io.Reader, metric string, want map[string]string) (float64, error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	total := 0.0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				return 0, fmt.Errorf("malformed metrics line %q", line)
			}
			labels, rest = rest[1:end], rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // another metric with this prefix
		}
		if !hasLabels(labels, want) {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("malformed metrics line %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("malformed metrics value in %q", line)
		}
		total += v
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return total, nil
}

func hasLabels(labels string, want map[string]string) bool {
	for k, v := range want {
		if !strings.Contains(","+labels+",", ","+k+"="+strconv.Quote(v)+",") {
			return false
		}
	}
	return true
}
