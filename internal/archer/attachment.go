package archer

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// errNotRewindable reports a 401 during an upload whose reader cannot be
// read again.
var errNotRewindable = errors.New("the session expired during the upload and the file cannot be read again")

// errRequestFinished stops an upload's body writer once the exchange is over.
var errRequestFinished = errors.New("request finished")

// UploadAttachment uploads r's content as an attachment called name and
// returns its id, to be put in an attachment field. The body
// {"AttachmentName":…,"AttachmentBytes":"<base64>"} is produced while it is
// sent: the file is read in small chunks and never held in memory as a
// whole, whatever its size. When r's size is known (an *os.File, a
// *bytes.Reader, anything with Len or Stat) the request carries a
// Content-Length, otherwise it is chunked.
//
// If the session expired, the upload is repeated after a fresh login when r
// is an io.Seeker; otherwise the error is transient (a later attempt
// succeeds).
func (c *Client) UploadAttachment(ctx context.Context, name string, r io.Reader) (int64, error) {
	op := fmt.Sprintf("upload attachment %q", name)
	if strings.TrimSpace(name) == "" {
		return 0, errors.New("upload attachment: the name is empty")
	}
	nameJSON, err := json.Marshal(name)
	if err != nil {
		return 0, fmt.Errorf("archer %s: %w", op, err)
	}
	prefix := `{"AttachmentName":` + string(nameJSON) + `,"AttachmentBytes":"`
	const suffix = `"}`
	size := sizeOf(r)
	seeker, _ := r.(io.Seeker)
	var start int64
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	token, err := c.sessionToken(ctx)
	if err != nil {
		return 0, err
	}
	for attempt := 0; ; attempt++ {
		length := int64(-1)
		if size >= 0 {
			length = int64(len(prefix)) + int64(base64.StdEncoding.EncodedLen(int(size))) + int64(len(suffix))
		}
		data, status, err := c.sendStream(ctx, op, token, length, func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 32<<10)
			if _, err := bw.WriteString(prefix); err != nil {
				return err
			}
			enc := base64.NewEncoder(base64.StdEncoding, bw)
			if _, err := io.Copy(enc, r); err != nil {
				return fmt.Errorf("read attachment: %w", err)
			}
			if err := enc.Close(); err != nil {
				return err
			}
			if _, err := bw.WriteString(suffix); err != nil {
				return err
			}
			return bw.Flush()
		})
		if err != nil {
			return 0, err
		}
		if status == http.StatusUnauthorized {
			if attempt > 0 {
				return 0, fmt.Errorf("archer %s: %w even after a fresh login", op, ErrSession)
			}
			if seeker == nil {
				// Renew now so that the next attempt finds a valid session.
				if _, err := c.renew(ctx, token); err != nil {
					return 0, fmt.Errorf("archer %s: %w", op, err)
				}
				return 0, fmt.Errorf("archer %s: %w: %w", op, ErrSession, errNotRewindable)
			}
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return 0, fmt.Errorf("archer %s: rewind: %w", op, err)
			}
			if token, err = c.renew(ctx, token); err != nil {
				return 0, fmt.Errorf("archer %s: %w", op, err)
			}
			continue
		}
		var out idObject
		if err := decodeWrapper(op, data, &out, nil); err != nil {
			return 0, err
		}
		if out.ID <= 0 {
			return 0, fmt.Errorf("archer %s: the answer carries no attachment id", op)
		}
		return out.ID, nil
	}
}

// sendStream posts a body produced by write through a pipe, so that only a
// small buffer is in memory at any time. It waits for the writer to finish
// before returning.
func (c *Client) sendStream(ctx context.Context, op, token string, length int64, write func(io.Writer) error) ([]byte, int, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil closes normally
		done <- err
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.restURL("content/attachment"), pr)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		return nil, 0, fmt.Errorf("archer %s: %w", op, err)
	}
	if length >= 0 {
		req.ContentLength = length
	}
	setHeaders(req, token, true)
	resp, err := c.hc.Do(req)
	// Stop the writer if the transport gave up early, then wait for it.
	pr.CloseWithError(errRequestFinished)
	werr := <-done
	if err != nil {
		if werr != nil && !errors.Is(werr, io.ErrClosedPipe) && !errors.Is(werr, errRequestFinished) {
			return nil, 0, fmt.Errorf("archer %s: %w", op, werr)
		}
		return nil, 0, fmt.Errorf("archer %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := readBody(resp.Body, maxResponse)
	if err != nil {
		return nil, 0, fmt.Errorf("archer %s: read answer: %w", op, err)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, resp.StatusCode, nil
	}
	if err := checkResponse(op, req, resp, data); err != nil {
		return nil, 0, err
	}
	return data, resp.StatusCode, nil
}

// sizeOf returns the number of bytes left in r, or -1 when unknown.
func sizeOf(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		st, err := v.Stat()
		if err != nil || !st.Mode().IsRegular() {
			return -1
		}
		pos, err := v.Seek(0, io.SeekCurrent)
		if err != nil {
			return -1
		}
		return st.Size() - pos
	}
	return -1
}
