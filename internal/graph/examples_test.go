package graph

import (
	"strings"
	"testing"
	"time"

	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
	"github.com/microsoftgraph/msgraph-sdk-go/models"

	"github.com/mail2archer/mail2archer/subscriptions"
)

// The JSON examples of ../shared/protocols/graph.md, copied verbatim, must
// decode through the SDK's models into our domain types.

const subscriptionExample = `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
 "id":"7f105c7d-2dc5-4530-97cd-4e7ae6534c07","resource":"me/mailFolders('Inbox')/messages",
 "applicationId":"24d3b144-…","changeType":"created","clientState":"secretClientValue",
 "notificationUrl":"https://…","expirationDateTime":"2016-11-20T18:23:45.9356913Z",
 "creatorId":"8ee44408-…","latestSupportedTlsVersion":"v1_2","notificationContentType":"application/json"}`

// messageExample is §7's example. It is not valid JSON as written: the
// "sender" and recipient objects are elided as {…}. Only those three
// placeholders are filled in.
const messageExample = `{"id":"AAMk…","subject":"…","bodyPreview":"…(255 chars)","importance":"normal",
 "receivedDateTime":"2018-09-09T03:15:08Z","sentDateTime":"2018-09-09T03:15:06Z",
 "hasAttachments":false,"internetMessageId":"<MWHPR…@…outlook.com>",
 "conversationId":"AAQk…","webLink":"https://outlook.office365.com/owa/?ItemID=…",
 "body":{"contentType":"html","content":"<html>…"},
 "from":{"emailAddress":{"name":"Adele Vance","address":"adelev@contoso.com"}},
 "sender":{"emailAddress":{…}},"toRecipients":[{"emailAddress":{…}}],"ccRecipients":[],
 "internetMessageHeaders":[{"name":"Authentication-Results","value":"…"}]}`

func TestProtocolNoteExamplesDecode(t *testing.T) {
	t.Parallel()
	pn, err := jsonserialization.NewJsonParseNode([]byte(subscriptionExample))
	if err != nil {
		t.Fatal(err)
	}
	v, err := pn.GetObjectValue(models.CreateSubscriptionFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	sub := toSubscription(v.(models.Subscriptionable))
	want := subscriptions.Subscription{ID: "7f105c7d-2dc5-4530-97cd-4e7ae6534c07", Resource: "me/mailFolders('Inbox')/messages",
		ChangeType: "created", NotificationURL: "https://…", ClientState: "secretClientValue",
		ExpiresAt: time.Date(2016, 11, 20, 18, 23, 45, 935691300, time.UTC)}
	if sub != want {
		t.Errorf("subscription = %+v\nwant %+v", sub, want)
	}

	filled := strings.ReplaceAll(messageExample, "{…}", `{"name":"Adele Vance","address":"adelev@contoso.com"}`)
	pn, err = jsonserialization.NewJsonParseNode([]byte(filled))
	if err != nil {
		t.Fatal(err)
	}
	v, err = pn.GetObjectValue(models.CreateMessageFromDiscriminatorValue)
	if err != nil {
		t.Fatal(err)
	}
	m := toMessage(v.(models.Messageable))
	if m.ID != "AAMk…" || m.InternetMessageID != "<MWHPR…@…outlook.com>" || m.ConversationID != "AAQk…" ||
		m.From.Address != "adelev@contoso.com" || m.Sender.Name != "Adele Vance" || len(m.To) != 1 || len(m.CC) != 0 ||
		!m.ReceivedAt.Equal(time.Date(2018, 9, 9, 3, 15, 8, 0, time.UTC)) || !m.SentAt.Equal(time.Date(2018, 9, 9, 3, 15, 6, 0, time.UTC)) ||
		m.HasAttachments || len(m.Headers) != 1 || m.Headers[0].Name != "Authentication-Results" || m.WebLink != "https://outlook.office365.com/owa/?ItemID=…" {
		t.Errorf("message = %+v", m)
	}
}
