package archer_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/archer"
)

// incidentRecord builds a record shaped like the example mapping's
// Security Incident: a dozen text fields (the description and the
// observables several KB), two dates, three values lists and an attachment
// list.
func incidentRecord(b *testing.B) *archer.Record {
	const level = 232
	id := int64(1000)
	field := func(name string, t archer.FieldType) archer.Field {
		id++
		return archer.Field{ID: id, Name: name, Type: t, LevelID: level}
	}
	var observables strings.Builder
	for i := range 40 {
		fmt.Fprintf(&observables, "hxxps://login-contoso[.]example/session/%d?user=alice%%40contoso.com\n", i)
	}
	description := strings.Repeat("Reported by alice@contoso.com on 2026-03-12 07:45 UTC. Reporter's verdict: phishing. ", 25)
	r := archer.NewRecord(level).
		Text(field("Title", archer.FieldText), "Reported phishing: Action required: your password expires today").
		Text(field("Incident Description", archer.FieldText), description).
		Text(field("SIEM Name", archer.FieldText), "mail2archer").
		Text(field("Reporter", archer.FieldText), "Alice Smith <alice@contoso.com>").
		Text(field("Sender", archer.FieldText), "\"Contoso IT Service Desk\" <it-servicedesk@contosso.com>").
		Text(field("Reported Subject", archer.FieldText), "Action required: your password expires today").
		Text(field("Observables", archer.FieldText), observables.String()).
		Text(field("Authentication Results", archer.FieldText), "SPF=softfail DKIM=none DMARC=fail compauth=fail").
		Text(field("Reported Email Key", archer.FieldText), "phish@contoso.com/AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0AjTxJvHcT").
		Date(field("Date Reported", archer.FieldDate), time.Date(2026, 3, 12, 7, 45, 0, 0, time.UTC)).
		Date(field("Date Received", archer.FieldDate), time.Date(2026, 3, 12, 7, 41, 0, 0, time.UTC)).
		ValuesList(field("Incident Category", archer.FieldValuesList), []int64{77001}, "").
		ValuesList(field("Criticality SOC", archer.FieldValuesList), []int64{77102}, "").
		ValuesList(field("Source", archer.FieldValuesList), []int64{77203}, "").
		Attachments(field("Email Attachments", archer.FieldAttachment), []int64{901, 902, 903})
	if err := r.Err(); err != nil {
		b.Fatal(err)
	}
	return r
}

// BenchmarkRecordMarshal serializes a Security Incident record into the
// body of Archer's create call.
func BenchmarkRecordMarshal(b *testing.B) {
	r := incidentRecord(b)
	body, err := json.Marshal(r)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
