package archersim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// maxJSONBody caps every request body except streamed attachment uploads.
const maxJSONBody = 16 << 20

// bodyReader is the unread request body of a streamed attachment upload.
type bodyReader struct {
	*bufio.Reader
}

// prepareBody reads the request body, or for attachment uploads peeks at its
// start (for the request log) and leaves the rest to be streamed.
func (s *Server) prepareBody(r *http.Request) ([]byte, *bodyReader, error) {
	if r.Body == nil {
		return nil, nil, nil
	}
	p := strings.TrimSuffix(strings.ToLower(r.URL.Path), "/")
	if strings.HasSuffix(p, "/core/content/attachment") && r.Method == http.MethodPost {
		br := bufio.NewReaderSize(r.Body, max(64<<10, s.opts.MaxRecordedBody))
		head, err := br.Peek(s.opts.MaxRecordedBody)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, nil, err
		}
		return head, &bodyReader{br}, nil
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, maxJSONBody+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > maxJSONBody {
		return nil, nil, errors.New("request body too large")
	}
	return data, nil, nil
}

// wrapper is Archer's standard response envelope.
type wrapper struct {
	Links              []any               `json:"Links"`
	RequestedObject    any                 `json:"RequestedObject"`
	IsSuccessful       bool                `json:"IsSuccessful"`
	ValidationMessages []validationMessage `json:"ValidationMessages"`
}

// validationMessage mirrors the message objects Archer returns.
type validationMessage struct {
	Reason           string  `json:"Reason"`
	Severity         int     `json:"Severity"`
	MessageKey       string  `json:"MessageKey"`
	Description      string  `json:"Description"`
	Location         int     `json:"Location"`
	ErroredValue     any     `json:"ErroredValue"`
	Validator        string  `json:"Validator"`
	XMLData          any     `json:"XmlData"`
	ResourcedMessage *string `json:"ResourcedMessage"`
}

const validatorPrefix = "ArcherApi.Controllers.%s, ArcherApi, Version=6.5.200.1045, Culture=neutral, PublicKeyToken=null"

func newMessage(controller, key, text string) validationMessage {
	m := validationMessage{
		Reason:     "Validation",
		Severity:   3,
		MessageKey: key,
		Location:   -1,
		Validator:  fmt.Sprintf(validatorPrefix, controller),
	}
	if text != "" {
		m.ResourcedMessage = &text
	}
	return m
}

func ok(obj any) wrapper {
	return wrapper{Links: []any{}, RequestedObject: obj, IsSuccessful: true, ValidationMessages: []validationMessage{}}
}

func failed(msgs ...validationMessage) wrapper {
	return wrapper{Links: []any{}, RequestedObject: nil, IsSuccessful: false, ValidationMessages: msgs}
}

// textWrapper is the wrapper as some Archer instances send it, with
// IsSuccessful as the string "true" or "false" (see StringBooleans).
type textWrapper struct {
	Links              []any               `json:"Links"`
	RequestedObject    any                 `json:"RequestedObject"`
	IsSuccessful       string              `json:"IsSuccessful"`
	ValidationMessages []validationMessage `json:"ValidationMessages"`
}

func (w wrapper) text() textWrapper {
	return textWrapper{Links: w.Links, RequestedObject: w.RequestedObject, IsSuccessful: strconv.FormatBool(w.IsSuccessful), ValidationMessages: w.ValidationMessages}
}

// answerWriter carries per-request answer switches to writeJSON.
type answerWriter struct {
	http.ResponseWriter
	stringBooleans bool
}

// stringBooleans reports whether w answers with IsSuccessful as a string.
func stringBooleans(w http.ResponseWriter) bool {
	aw, ok := w.(*answerWriter)
	return ok && aw.stringBooleans
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	if stringBooleans(w) {
		switch x := v.(type) {
		case wrapper:
			v = x.text()
		case []wrapper:
			out := make([]textWrapper, len(x))
			for i, e := range x {
				out[i] = e.text()
			}
			v = out
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// webAPIErrorMessage is the message of the body ASP.NET Web API, on which
// Archer's REST API runs (its validators name ArcherApi.Controllers), sends
// for an unhandled error when error details are not shown to remote callers,
// its default: {"Message":"An error has occurred."}, no wrapper and no
// IsSuccessful.
const webAPIErrorMessage = "An error has occurred."

// writeFailure answers with an injected failure.
func writeFailure(w http.ResponseWriter, f Failure) {
	status := f.Status
	if f.Body == FailureValidation && status == 0 {
		status = http.StatusOK
	}
	if status < 100 || status > 599 {
		status = http.StatusInternalServerError
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	if f.Body == FailureValidation {
		writeJSON(w, status, failed(msg("RequiredFieldMissing", "The Incident Summary field is a required field.")))
		return
	}
	if f.Body == FailureWebAPIMessage {
		writeJSON(w, status, map[string]string{"Message": webAPIErrorMessage})
		return
	}
	writeIISError(w, status)
}

func writeWrapperError(w http.ResponseWriter, status int, controller, key, text string) {
	writeJSON(w, status, failed(newMessage(controller, key, text)))
}

// writeIISError answers like IIS does for errors outside the API: an HTML page.
func writeIISError(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	text := http.StatusText(status)
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><title>%d - %s</title></head><body><h2>%d - %s.</h2></body></html>", status, text, status, text)
}

// writeHTMLRedirect answers like an Archer behind SSO (or a wrong URL): a
// 200 page whose script sends the browser to the sign-in page.
func writeHTMLRedirect(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "<html><head><script>window.top.location='/Default.aspx'</script></head><body></body></html>")
}
