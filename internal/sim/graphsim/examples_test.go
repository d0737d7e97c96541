package graphsim

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// The JSON examples of ../shared/protocols/graph.md, verbatim. The
// simulator's payloads must have exactly their shape.

const notificationExample = `{"value":[{
  "id":"lsgTZMr9KwAAA",
  "subscriptionId":"{guid}","subscriptionExpirationDateTime":"2016-03-19T22:11:09.952Z",
  "clientState":"secretClientValue","changeType":"created",
  "resource":"users/{user_guid}@{tenant_guid}/messages/{long_id}",
  "tenantId":"84bd8158-6d4d-4958-8b9f-9d6445542f95",
  "resourceData":{"@odata.type":"#Microsoft.Graph.Message",
    "@odata.id":"Users/{user_guid}@{tenant_guid}/Messages/{long_id}",
    "@odata.etag":"W/\"CQAAABYAAADk…\"","id":"{long_id}"}}]}`

const lifecycleExample = `{"value":[{"subscriptionId":"<guid>","subscriptionExpirationDateTime":"2019-03-20T11:00:00.0000000Z",
  "tenantId":"<guid>","clientState":"<secret>","lifecycleEvent":"reauthorizationRequired"}]}`

const createdExample = `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
 "id":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","resource":"me/mailFolders('Inbox')/messages",
 "applicationId":"24d3b144-…","changeType":"created","clientState":"secretClientValue",
 "notificationUrl":"https://…","expirationDateTime":"2016-11-20T18:23:45.9356913Z",
 "creatorId":"8ee44408-…","latestSupportedTlsVersion":"v1_2","notificationContentType":"application/json"}`

// shape lists every key path of a JSON document.
func shape(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("decode %s: %v", doc, err)
	}
	set := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				set[prefix+"."+k] = true
				walk(prefix+"."+k, c)
			}
		case []any:
			for _, c := range x {
				walk(prefix+"[]", c)
			}
		}
	}
	walk("", v)
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestPayloadsMatchProtocolExamples(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	e := newEndpoint(t, nil)
	lc := newEndpoint(t, nil)
	sub := b.subscribe(t, e, map[string]any{"lifecycleNotificationUrl": lc.srv.URL})
	created, _ := json.Marshal(sub)
	have := map[string]bool{}
	for _, k := range shape(t, created) {
		have[k] = true
	}
	for _, k := range shape(t, []byte(createdExample)) {
		if !have[k] {
			t.Errorf("201 body lacks %s", k)
		}
	}

	if _, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml")); err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(e.next(t))
	if g, w := strings.Join(shape(t, got), " "), strings.Join(shape(t, []byte(notificationExample)), " "); g != w {
		t.Errorf("notification shape\n got %s\nwant %s", g, w)
	}
	if err := b.sim.Lifecycle(sub["id"].(string), EventReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	got, _ = json.Marshal(lc.next(t))
	if g, w := strings.Join(shape(t, got), " "), strings.Join(shape(t, []byte(lifecycleExample)), " "); g != w {
		t.Errorf("lifecycle shape\n got %s\nwant %s", g, w)
	}
	if err := b.sim.WaitDelivered(context.Background()); err != nil {
		t.Fatal(err)
	}
}
