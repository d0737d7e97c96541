package archersim

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzParseAttachmentUpload checks that no request body makes the streaming
// attachment parser panic or exceed its size cap.
func FuzzParseAttachmentUpload(f *testing.F) {
	for _, s := range []string{
		`{"AttachmentName":"a","AttachmentBytes":"QUJD"}`,
		`{"AttachmentBytes":"QU\nJD","AttachmentName":"\u00e9","IsSensitive":true}`,
		`{"x":[1,{"y":null}],"AttachmentBytes":null}`,
		`{}`, `[`, `{"AttachmentBytes":"QQ"}`, `{"AttachmentName":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		up, err := parseAttachmentUpload(bufio.NewReader(bytes.NewReader(body)), 1<<10, int64(len(body)))
		if err == nil && int64(len(up.data)) > 1<<10 {
			t.Fatalf("decoded %d bytes past the cap", len(up.data))
		}
	})
}

// FuzzParseOData checks that no query makes the OData parser panic.
func FuzzParseOData(f *testing.F) {
	for _, s := range []string{"$filter=Name eq 'x'", "$filter=IsActive eq true and Id eq 3", "$top=2&$skip=1&$select=Id,Name", "$filter='", "$filter=a eq"} {
		f.Add(s, []byte(`{"Value":"?$filter=Name eq 'y'"}`))
	}
	f.Fuzz(func(t *testing.T, query string, body []byte) {
		q, err := parseOData(query, body)
		if err != nil {
			return
		}
		_, _ = q.apply([]map[string]any{{"Name": "x", "Id": int64(3), "IsActive": true}})
	})
}
