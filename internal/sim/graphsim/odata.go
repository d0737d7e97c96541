package graphsim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"time"
)

// odataError is Graph's error body.
type odataError struct {
	Error odataErrorBody `json:"error"`
}

type odataErrorBody struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError odataInnerError `json:"innerError"`
}

type odataInnerError struct {
	Date            string `json:"date"`
	RequestID       string `json:"request-id"`
	ClientRequestID string `json:"client-request-id"`
}

// writeError answers with the OData error shape and a JSON content type.
func writeError(w http.ResponseWriter, status int, code, message string) {
	rid := w.Header().Get("request-id")
	if rid == "" {
		rid = newGUID()
		w.Header().Set("request-id", rid)
	}
	body := odataError{Error: odataErrorBody{Code: code, Message: message, InnerError: odataInnerError{
		Date: time.Now().UTC().Format("2006-01-02T15:04:05"), RequestID: rid, ClientRequestID: rid,
	}}}
	writeJSON(w, status, body)
}

// writeRetryError answers 429/503 with Retry-After in whole seconds.
func writeRetryError(w http.ResponseWriter, status int, code, message string, after time.Duration) {
	secs := int((after + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	writeError(w, status, code, message)
}

// writeJSON answers with a JSON body and the OData content type.
func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// newGUID returns a random RFC 4122 version 4 identifier.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// newItemID returns an Exchange-looking id: a prefix and URL-safe base64
// with '=' padding, as Graph's REST ids are.
func newItemID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + base64.URLEncoding.EncodeToString(b)
}

// newOpaque returns a random URL-safe token.
func newOpaque() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
