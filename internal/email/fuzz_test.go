package email

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzAnalyze feeds arbitrary bytes to Analyze: it must not panic, must
// return a report with a suspect, must fail only with a bound error, and
// must stay within its time bound.
func FuzzAnalyze(f *testing.F) {
	for _, dir := range []string{"corpus", "samples"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*"))
		for _, path := range files {
			raw, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			if len(raw) > 256<<10 {
				continue // large seeds slow mutation down without adding shapes
			}
			f.Add(raw)
		}
	}
	f.Add(buildMsg(testMsg{subject: "s", body: "b", attachments: []testAttach{{name: "a.txt", data: []byte("x")}}}))
	opts := Options{InternalDomains: []string{"contoso.com"}, MaxBytes: 4 << 20, Timeout: 5 * time.Second}
	f.Fuzz(func(t *testing.T, raw []byte) {
		start := time.Now()
		// A hang never returns to the checks below; crash the worker instead
		// so the fuzzer records the input.
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("Analyze hung on a %d-byte input", len(raw)))
		})
		defer watchdog.Stop()
		rep, err := Analyze(raw, Metadata{MessageID: "fuzz"}, opts)
		if err != nil && !isBound(err) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if errors.Is(err, ErrTimeout) {
			t.Fatalf("timed out on %d bytes", len(raw))
		}
		if rep == nil || rep.Suspect == nil {
			t.Fatal("no report or no suspect")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("took %v on %d bytes", d, len(raw))
		}
		if _, err := json.Marshal(rep); err != nil {
			t.Fatalf("report does not encode: %v", err)
		}
	})
}

// FuzzParseMSG feeds arbitrary compound files to the .msg reader, which
// Analyze reaches only through a base64 attachment: it must not panic or
// hang, whatever the sector chains and property streams say.
func FuzzParseMSG(f *testing.F) {
	f.Add(sampleMsgPhish())
	f.Add(sampleMsgPlain())
	f.Add(buildMsg(testMsg{subject: "s", body: "b", attachments: []testAttach{{name: "a.eml", mime: "message/rfc822", data: []byte("Subject: x\r\n\r\ny")}}}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		watchdog := time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("parseMSG hung on a %d-byte input", len(raw)))
		})
		defer watchdog.Stop()
		a := &analyzer{opts: DefaultOptions(), now: time.Now, ex: newExtractor()}
		a.deadline = time.Now().Add(10 * time.Second)
		p, err := a.parseMSG(raw, "fuzz")
		if err == nil && (p == nil || p.msg == nil) {
			t.Fatal("no error and no message")
		}
	})
}
