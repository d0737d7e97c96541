// Command reflectcheck uses the template executor the way the service
// does: it compiles the example mapping against fixed Archer metadata,
// renders a report, and runs a one-line template. TestNoReflectMethod
// links it with -dumpdep to prove that nothing reachable looks a method
// up by name.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mail2archer/mail2archer/api"
	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/tmpl"
)

// metadata answers with one level holding every field the example maps.
type metadata struct{}

func (metadata) Application(context.Context, string) (*archer.Application, error) {
	text := func(id int64, name string) archer.Field {
		return archer.Field{ID: id, Name: name, Type: archer.FieldText, LevelID: 1}
	}
	list := func(id int64, name string) archer.Field {
		return archer.Field{ID: id, Name: name, Type: archer.FieldValuesList, ValuesListID: id, LevelID: 1}
	}
	return &archer.Application{ID: 1, Name: "Security Incidents", Levels: []archer.Level{{ID: 1, Name: "Incident", Fields: []archer.Field{
		text(1, "Title"), text(2, "Incident Description"), text(3, "SIEM Name"), text(4, "Reporter"),
		text(5, "Sender"), text(6, "Reported Subject"), text(7, "Observables"), text(8, "Authentication Results"),
		text(9, "Reported Email Key"), list(10, "Incident Category"), list(11, "Source"), list(12, "Criticality SOC"),
		{ID: 13, Name: "Date Reported", Type: archer.FieldDate, LevelID: 1},
		{ID: 14, Name: "Date Received", Type: archer.FieldDate, LevelID: 1},
		{ID: 15, Name: "Email Attachments", Type: archer.FieldAttachment, LevelID: 1},
	}}}}, nil
}

func (metadata) ValuesListValues(context.Context, int64) ([]archer.Value, error) {
	var out []archer.Value
	for i, n := range []string{"Phishing", "Malware", "Spam", "Email", "High", "Medium", "Low"} {
		out = append(out, archer.Value{ID: int64(i + 1), Name: n, Path: n, Selectable: true})
	}
	return out, nil
}

func main() {
	m, err := incident.Parse(api.MappingExample)
	if err != nil {
		fail(err)
	}
	c, err := m.Compile(context.Background(), metadata{})
	if err != nil {
		fail(err)
	}
	raw := []byte("From: a@evil.example\r\nSubject: hi https://evil.example\r\n\r\nbody\r\n")
	rep, err := email.Analyze(raw, email.Metadata{Mailbox: "phish@contoso.com", MessageID: "x"}, email.DefaultOptions())
	if err != nil {
		fail(err)
	}
	inc, err := c.Render(rep, incident.FromBytes(raw), time.Now())
	if err != nil {
		fail(err)
	}
	line, err := tmpl.CompileLine[struct{ RecordID int64 }]("category", "Archer {{.RecordID}}")
	if err != nil {
		fail(err)
	}
	cat, err := line.Execute(struct{ RecordID int64 }{42})
	if err != nil {
		fail(err)
	}
	fmt.Println(inc.Key, len(inc.Files), cat, incident.Defang(rep.Suspect.Subject))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
