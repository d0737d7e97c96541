package graphsim

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestGetMessageDerivesViewFromMIME(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	mime := readTestdata(t, "report.eml")
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", mime)
	if err != nil {
		t.Fatal(err)
	}
	r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id), nil)
	if r.status != 200 {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	m := r.json(t)
	if _, ok := m["internetMessageHeaders"]; ok {
		t.Error("internetMessageHeaders returned without $select")
	}
	from := m["from"].(map[string]any)["emailAddress"].(map[string]any)
	sender := m["sender"].(map[string]any)["emailAddress"].(map[string]any)
	checks := map[string]bool{
		"subject":           m["subject"] == "FW: Your mailbox is full",
		"from":              from["address"] == "adelev@contoso.com" && from["name"] == "Adele Vance",
		"sender":            sender["address"] == "helpdesk@contoso.com",
		"to":                len(m["toRecipients"].([]any)) == 1,
		"cc":                len(m["ccRecipients"].([]any)) == 1,
		"internetMessageId": m["internetMessageId"] == "<report-1@contoso.com>",
		"sentDateTime":      m["sentDateTime"] == "2026-03-02T10:00:00Z",
		"receivedDateTime":  m["receivedDateTime"] == b.sim.Now().Format("2006-01-02T15:04:05Z07:00"),
		"hasAttachments":    m["hasAttachments"] == true,
		"bodyPreview":       m["bodyPreview"] == "Please look at the attached message.",
		"webLink":           strings.HasPrefix(m["webLink"].(string), "https://outlook.office365.com/owa/?ItemID="),
		"conversationId":    strings.HasPrefix(m["conversationId"].(string), "AAQk"),
		"parentFolderId":    m["parentFolderId"] != "",
		"body":              m["body"].(map[string]any)["contentType"] == "text",
	}
	for k, ok := range checks {
		if !ok {
			t.Errorf("%s wrong in %v", k, m[k])
		}
	}

	r = b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"?$select=subject,internetMessageHeaders", nil,
		"Prefer", `outlook.body-content-type="html"`)
	m = r.json(t)
	hs := m["internetMessageHeaders"].([]any)
	if len(hs) < 5 || hs[0].(map[string]any)["name"] != "Received" {
		t.Errorf("headers = %v", hs)
	}
	if _, ok := m["from"]; ok {
		t.Error("$select returned unselected properties")
	}
	if !strings.Contains(r.header.Get("Preference-Applied"), `outlook.body-content-type="html"`) {
		t.Errorf("Preference-Applied = %q", r.header.Get("Preference-Applied"))
	}
	r = b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"?$select=body", nil, "Prefer", `outlook.body-content-type="html"`)
	if body := r.json(t)["body"].(map[string]any); body["contentType"] != "html" || !strings.Contains(body["content"].(string), "<html>") {
		t.Errorf("html body = %v", body)
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"?$select=bogus", nil); r.status != 400 {
		t.Errorf("unknown $select property: %d", r.status)
	}

	r = b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"/$value", nil)
	if r.status != 200 || !bytes.Equal(r.body, mime) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Errorf("$value: %d %q", r.status, r.header.Get("Content-Type"))
	}
}

func TestAttachments(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"/attachments", nil)
	list := r.json(t)["value"].([]any)
	if len(list) != 2 {
		t.Fatalf("attachments = %s", r.body)
	}
	item, file := list[0].(map[string]any), list[1].(map[string]any)
	if item["@odata.type"] != "#microsoft.graph.itemAttachment" || item["name"] != "Your mailbox is full" {
		t.Errorf("item attachment = %v", item)
	}
	content, err := base64.StdEncoding.DecodeString(file["contentBytes"].(string))
	if err != nil || !bytes.HasPrefix(content, []byte("%PDF-1.4")) || file["@odata.type"] != "#microsoft.graph.fileAttachment" || file["name"] != "invoice.pdf" {
		t.Errorf("file attachment = %v (%v)", file, err)
	}
	r = b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"/attachments/"+url.PathEscape(item["id"].(string))+"/$value", nil)
	if !bytes.Contains(r.body, []byte("Subject: Your mailbox is full")) {
		t.Errorf("item attachment $value = %s", r.body)
	}
}

func TestMoveAndImmutableIDs(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := b.sim.Message("phish@contoso.com", id)
	if _, err := b.sim.AddFolder("phish@contoso.com", "Processed"); err != nil {
		t.Fatal(err)
	}
	dst, _ := b.sim.FolderID("phish@contoso.com", "Processed")
	r := b.do(t, "POST", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id)+"/move", map[string]any{"destinationId": dst})
	if r.status != 201 {
		t.Fatalf("move: %d %s", r.status, r.body)
	}
	newID := r.json(t)["id"].(string)
	if newID == id {
		t.Error("a move must change the REST id")
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(id), nil); r.status != 404 || r.errorCode(t) != "ErrorItemNotFound" {
		t.Errorf("old id after move: %d %s", r.status, r.body)
	}
	r = b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(stored.ImmutableID), nil, "Prefer", `IdType="ImmutableId"`)
	if r.status != 200 || r.json(t)["id"] != stored.ImmutableID || r.json(t)["parentFolderId"] != dst {
		t.Errorf("immutable id after move: %d %s", r.status, r.body)
	}
	r = b.do(t, "POST", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(stored.ImmutableID)+"/move", map[string]any{"destinationId": "archive"}, "Prefer", `IdType="ImmutableId"`)
	if r.status != 201 || r.json(t)["id"] != stored.ImmutableID {
		t.Errorf("move with immutable ids: %d %s", r.status, r.body)
	}
	if r := b.do(t, "POST", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(stored.ImmutableID)+"/move", map[string]any{"destinationId": "nowhere"}); r.status != 404 {
		t.Errorf("move to an unknown folder: %d", r.status)
	}
	if r := b.do(t, "DELETE", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(stored.ImmutableID), nil); r.status != 204 {
		t.Errorf("delete: %d", r.status)
	}
	if err := b.sim.RemoveMessage("phish@contoso.com", stored.ImmutableID); err != nil {
		t.Fatal(err)
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/"+url.PathEscape(stored.ImmutableID), nil); r.status != 404 {
		t.Errorf("removed message: %d", r.status)
	}
}

func TestCategoriesAndPermissions(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	id, err := b.sim.Deliver("phish@contoso.com", "inbox", readTestdata(t, "report.eml"))
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1.0/users/phish@contoso.com/messages/" + url.PathEscape(id)
	if r := b.do(t, "PATCH", path, map[string]any{"categories": []string{"Archer 123456"}}); r.status != 200 {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if m, _ := b.sim.Message("phish@contoso.com", id); len(m.Categories) != 1 || m.Categories[0] != "Archer 123456" {
		t.Errorf("categories = %v", m.Categories)
	}
	for name, body := range map[string]any{
		"not an array": map[string]any{"categories": "x"},
		"empty name":   map[string]any{"categories": []string{""}},
		"read-only":    map[string]any{"subject": "x"},
		"not json":     "{",
	} {
		if r := b.do(t, "PATCH", path, body); r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if err := b.sim.SetAccess("phish@contoso.com", AccessRead); err != nil {
		t.Fatal(err)
	}
	if r := b.do(t, "PATCH", path, map[string]any{"categories": []string{"x"}}); r.status != 403 || r.errorCode(t) != "ErrorAccessDenied" {
		t.Errorf("patch without Mail.ReadWrite: %d %s", r.status, r.body)
	}
	if r := b.do(t, "GET", path, nil); r.status != 200 {
		t.Errorf("read with Mail.Read: %d", r.status)
	}
	_ = b.sim.SetAccess("phish@contoso.com", AccessNone)
	if r := b.do(t, "GET", path, nil); r.status != 403 {
		t.Errorf("read without access: %d", r.status)
	}
	if r := b.do(t, "GET", "/v1.0/users/nobody@contoso.com/messages/x", nil); r.status != 404 || r.errorCode(t) != "ErrorInvalidUser" {
		t.Errorf("unknown user: %d %s", r.status, r.body)
	}
}

func TestAuthAndTransportRules(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{})
	path := "/v1.0/subscriptions"
	if r := b.do(t, "GET", path, nil, "Authorization", ""); r.status != 401 || r.errorCode(t) != "InvalidAuthenticationToken" {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	if r := b.do(t, "GET", path, nil, "Authorization", ""); !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Errorf("401 content type %q", r.header.Get("Content-Type"))
	}
	saved := b.token
	b.token = "forged"
	if r := b.do(t, "GET", path, nil); r.status != 401 {
		t.Errorf("unknown token: %d", r.status)
	}
	b.token = saved
	if r := b.do(t, "GET", "/v1.0/me/messages", nil); r.status != 400 {
		t.Errorf("/me: %d", r.status)
	}
	if r := b.do(t, "GET", "/v1.0/users/phish@contoso.com/messages/a%2Fb%3D", nil); r.status != 404 || r.errorCode(t) != "ErrorItemNotFound" {
		t.Errorf("an id with encoded slash and '=' must stay one segment: %d %s", r.status, r.body)
	}

	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write([]byte(`{"changeType":"created"}`))
	_ = zw.Close()
	r := b.do(t, "POST", path, gz.Bytes(), "Content-Encoding", "gzip")
	if r.status != 400 || !strings.Contains(string(r.body), "notificationUrl") {
		t.Errorf("gzip body not decoded: %d %s", r.status, r.body)
	}
	reqs := b.sim.Requests()
	last := reqs[len(reqs)-1]
	if !last.Gzipped || string(last.Body) != `{"changeType":"created"}` {
		t.Errorf("recorded request = %+v", last)
	}
	b.sim.Reject415(true)
	if r := b.do(t, "POST", path, gz.Bytes(), "Content-Encoding", "gzip"); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("415 switch: %d", r.status)
	}
	if r := b.do(t, "POST", path, []byte("not gzip"), "Content-Encoding", "gzip"); r.status != 400 {
		t.Errorf("corrupt gzip: %d", r.status)
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, Options{AppID: "app-1", ClientSecret: "pw", TenantID: "tenant-1"})
	cfg := b.do(t, "GET", "/tenant-1/v2.0/.well-known/openid-configuration", nil)
	if te := cfg.json(t)["token_endpoint"]; te != b.srv.URL+"/tenant-1/oauth2/v2.0/token" {
		t.Errorf("token_endpoint = %v", te)
	}
	form := func(v url.Values) response {
		return b.do(t, "POST", "/tenant-1/oauth2/v2.0/token", v.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	}
	ok := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app-1"}, "client_secret": {"pw"}, "scope": {"https://graph.microsoft.com/.default"}}
	r := form(ok)
	tok, _ := r.json(t)["access_token"].(string)
	if r.status != 200 || tok == "" {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	b.token = tok
	if r := b.do(t, "GET", "/v1.0/subscriptions", nil); r.status != 200 {
		t.Errorf("issued token rejected: %d", r.status)
	}
	for name, mutate := range map[string]func(url.Values){
		"wrong secret": func(v url.Values) { v.Set("client_secret", "nope") },
		"wrong app":    func(v url.Values) { v.Set("client_id", "other") },
		"no .default":  func(v url.Values) { v.Set("scope", "Mail.Read") },
		"wrong grant":  func(v url.Values) { v.Set("grant_type", "password") },
		"no secret":    func(v url.Values) { v.Del("client_secret") },
	} {
		v := url.Values{}
		for k, vals := range ok {
			v[k] = append([]string(nil), vals...)
		}
		mutate(v)
		if r := form(v); r.status == 200 {
			t.Errorf("%s: token issued", name)
		}
	}
	for _, req := range b.sim.Requests() {
		if bytes.Contains(req.Body, []byte("pw")) && strings.Contains(req.Path, "token") {
			t.Errorf("client secret recorded in %s", req.Body)
		}
	}
	if r := b.do(t, "GET", "/other/v2.0/.well-known/openid-configuration", nil); r.status != 400 {
		t.Errorf("unknown tenant: %d", r.status)
	}
}
