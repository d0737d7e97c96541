package graphsim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/mail2archer/mail2archer/internal/sim/graphsim"
)

// A test mounts the simulator on httptest, subscribes a webhook, delivers a
// message and reads it back.
func Example() {
	sim := graphsim.New(graphsim.Options{AllowHTTP: true})
	defer sim.Close()
	graph := httptest.NewServer(sim)
	defer graph.Close()
	sim.AddMailbox("phish@contoso.com")

	got := make(chan []byte, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("validationToken") {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		got <- body
	}))
	defer hook.Close()

	token := sim.IssueToken()
	call := func(method, path string, body any) *http.Response {
		data, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(context.Background(), method, graph.URL+path, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		return resp
	}
	resp := call("POST", "/v1.0/subscriptions", map[string]any{
		"changeType":         "created",
		"notificationUrl":    hook.URL,
		"resource":           "users/phish@contoso.com/mailFolders('inbox')/messages",
		"expirationDateTime": sim.Now().Add(time.Hour).Format(time.RFC3339),
		"clientState":        "secret",
	})
	fmt.Println("subscription:", resp.Status)
	_ = resp.Body.Close()

	id, _ := sim.Deliver("phish@contoso.com", "inbox", []byte("From: a@example.com\r\nSubject: Win a prize\r\n\r\nClick here.\r\n"))
	var n struct {
		Value []struct{ ChangeType, ClientState string } `json:"value"`
	}
	_ = json.Unmarshal(<-got, &n)
	fmt.Println("notification:", n.Value[0].ChangeType, n.Value[0].ClientState)

	resp = call("GET", "/v1.0/users/phish@contoso.com/messages/"+id+"?$select=subject", nil)
	var m struct{ Subject string }
	_ = json.NewDecoder(resp.Body).Decode(&m)
	_ = resp.Body.Close()
	fmt.Println("subject:", m.Subject)
	// Output:
	// subscription: 201 Created
	// notification: created secret
	// subject: Win a prize
}
