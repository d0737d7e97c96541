package graphsim

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// deltaRound follows nextLinks to the deltaLink and returns the items.
func deltaRound(t *testing.T, b *bundle, first string, pageSize int) (items []map[string]any, deltaLink string, pages int) {
	t.Helper()
	link := first
	for {
		r := b.do(t, "GET", link, nil, "Prefer", "odata.maxpagesize="+strconv.Itoa(pageSize), "Prefer", `IdType="ImmutableId"`)
		if r.status != 200 {
			t.Fatalf("delta %s: %d %s", link, r.status, r.body)
		}
		pages++
		m := r.json(t)
		for _, v := range m["value"].([]any) {
			items = append(items, v.(map[string]any))
		}
		if n, ok := m["@odata.nextLink"].(string); ok {
			if !strings.HasPrefix(n, b.srv.URL+"/v1.0/") {
				t.Fatalf("nextLink %q is not absolute", n)
			}
			link = n
			continue
		}
		d, ok := m["@odata.deltaLink"].(string)
		if !ok || !strings.HasPrefix(d, b.srv.URL+"/v1.0/") {
			t.Fatalf("no absolute deltaLink in %v", m)
		}
		return items, d, pages
	}
}

func TestDeltaPagingChangesAndRemovals(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	mime := readTestdata(t, "report.eml")
	var ids []string
	for i := 0; i < 5; i++ {
		id, err := b.sim.Deliver("phish@contoso.com", "inbox", mime)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		b.sim.Advance(time.Minute)
	}
	items, dl, pages := deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta()?$select=id,receivedDateTime", 2)
	if len(items) != 5 || pages != 3 {
		t.Fatalf("initial round: %d items in %d pages", len(items), pages)
	}
	if _, ok := items[0]["subject"]; ok {
		t.Error("$select was not carried into the round")
	}
	first, _ := b.sim.Message("phish@contoso.com", ids[0])
	if items[len(items)-1]["id"] != first.ImmutableID {
		t.Errorf("immutable ids expected; oldest item is %v", items[len(items)-1]["id"])
	}

	items, dl2, _ := deltaRound(t, b, dl, 9)
	if len(items) != 0 {
		t.Errorf("no change, yet %d items", len(items))
	}
	newID, _ := b.sim.Deliver("phish@contoso.com", "inbox", mime)
	moved, _ := b.sim.Message("phish@contoso.com", ids[1])
	if _, err := b.sim.MoveMessage("phish@contoso.com", ids[1], "archive"); err != nil {
		t.Fatal(err)
	}
	items, _, _ = deltaRound(t, b, dl2, 9)
	newMsg, _ := b.sim.Message("phish@contoso.com", newID)
	got := map[string]bool{}
	for _, it := range items {
		_, removed := it["@removed"]
		got[it["id"].(string)] = removed
	}
	if len(got) != 2 || got[newMsg.ImmutableID] || !got[moved.ImmutableID] {
		t.Errorf("incremental round = %v", items)
	}
	// Links stay usable: replaying the same deltaLink repeats the round.
	again, _, _ := deltaRound(t, b, dl2, 9)
	if len(again) != 2 {
		t.Errorf("replayed deltaLink returned %d items", len(again))
	}
	// The plain "delta" path and mailFolders('x') form work too.
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders('Inbox')/messages/delta", nil); r.status != 200 {
		t.Errorf("delta without parentheses: %d %s", r.status, r.body)
	}
}

func TestDeltaFilterReplayAndExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	mime := readTestdata(t, "report.eml")
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	b.sim.Advance(time.Hour)
	since := b.sim.Now()
	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", mime); err != nil {
		t.Fatal(err)
	}
	q := url.Values{"$filter": {"receivedDateTime ge " + since.Format(time.RFC3339)}}
	items, dl, _ := deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta?"+q.Encode(), 5)
	if len(items) != 1 {
		t.Fatalf("filtered round: %d items", len(items))
	}
	for _, bad := range []string{"subject eq 'x'", "receivedDateTime ge yesterday"} {
		r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta?"+url.Values{"$filter": {bad}}.Encode(), nil)
		if r.status != 400 {
			t.Errorf("filter %q: %d", bad, r.status)
		}
	}

	b.sim.SetBehavior(Behavior{DeltaReplay: true})
	items, dl, _ = deltaRound(t, b, dl, 5)
	if len(items) != 1 {
		t.Errorf("replay switch: %d items, want the previous round again", len(items))
	}

	b.sim.ExpireDeltaLinks(SyncStateNotFound)
	r := b.do(t, "GET", dl, nil)
	if r.status != http.StatusGone || r.errorCode(t) != "SyncStateNotFound" {
		t.Errorf("expired link: %d %s", r.status, r.body)
	}
	_, dl, _ = deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta", 5)
	b.sim.ExpireDeltaLinks(ResyncRequired)
	r = b.do(t, "GET", dl, nil)
	if r.status != http.StatusGone || r.errorCode(t) != "resyncRequired" || !strings.Contains(r.header.Get("Location"), "/messages/delta") {
		t.Errorf("resync: %d %s %q", r.status, r.body, r.header.Get("Location"))
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta?$deltatoken=forged", nil); r.status != http.StatusGone {
		t.Errorf("forged token: %d", r.status)
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/delta", nil); r.status != 400 {
		t.Errorf("mailbox-wide delta: %d", r.status)
	}
}

func TestThrottlingBudgetAndConcurrency(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{Budget: 3, BudgetWindow: time.Minute})
	path := "/v1.0/users/phish@contoso.com/mailFolders/inbox"
	for i := 0; i < 3; i++ {
		if r := b.do(t, "GET", path, nil); r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	r := b.do(t, "GET", path, nil)
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") != "60" || r.errorCode(t) != "ApplicationThrottled" {
		t.Fatalf("over budget: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	b.sim.Advance(time.Minute)
	if r := b.do(t, "GET", path, nil); r.status != 200 {
		t.Errorf("next window: %d", r.status)
	}

	c := setup(t, Options{Concurrency: 2})
	c.sim.SetFaults(Fault{Route: RouteGetFolder, Latency: time.Second})
	var wg sync.WaitGroup
	statuses := make([]int, 4)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = c.do(t, "GET", path, nil).status
		}()
	}
	wg.Wait()
	throttled := 0
	for _, s := range statuses {
		if s == http.StatusTooManyRequests {
			throttled++
		}
	}
	if throttled != 2 {
		t.Errorf("4 concurrent requests with a limit of 2: statuses %v", statuses)
	}
}

func TestFaultInjection(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	b.sim.SetFaults(
		Fault{Route: RouteListSubscriptions, Status: 503, RetryAfter: 2 * time.Second, Times: 1},
		Fault{Route: RouteGetFolder, Mailbox: "phish@contoso.com", Status: 504},
	)
	r := b.do(t, "GET", "/v1.0/subscriptions", nil)
	if r.status != 503 || r.header.Get("Retry-After") != "2" || r.errorCode(t) != "ServiceNotAvailable" {
		t.Errorf("503: %d %q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if r := b.do(t, "GET", "/v1.0/subscriptions", nil); r.status != 200 {
		t.Errorf("Times:1 fault fired twice: %d", r.status)
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders/inbox", nil); r.status != 504 {
		t.Errorf("504: %d", r.status)
	}
	b.sim.SetFaults()
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/mailFolders/inbox", nil); r.status != 200 {
		t.Errorf("cleared faults: %d", r.status)
	}
}

func TestDeltaStateEviction(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{DeltaStates: 2})
	_, first, _ := deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta", 5)
	deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta", 5)
	deltaRound(t, b, "/v1.0/users/phish@contoso.com/mailFolders/inbox/messages/delta", 5)
	if r := b.do(t, "GET", first, nil); r.status != http.StatusGone || r.errorCode(t) != "SyncStateNotFound" {
		t.Errorf("evicted link: %d %s", r.status, r.body)
	}
}

func TestRequestRecordingIsBounded(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{RecordLimit: 10})
	for range 25 {
		b.do(t, "GET", "/v1.0/subscriptions", nil)
	}
	if n := len(b.sim.Requests()); n > 10 || n == 0 {
		t.Errorf("recorded %d requests with a limit of 10", n)
	}
	b.sim.ResetRequests()
	if len(b.sim.Requests()) != 0 {
		t.Error("ResetRequests kept requests")
	}
}
