package email

import (
	"testing"
	"time"
)

func TestInlineForward(t *testing.T) {
	t.Parallel()
	brt := time.FixedZone("", -3*3600)
	tests := []struct {
		name     string
		text     string
		from     Address
		subject  string
		date     time.Time
		bodyHead string
	}{
		{
			name: "Outlook English",
			text: "fyi\n\n________________________________\nFrom: Eve <eve@sharepoint-docs.example>\nSent: Tuesday, March 10, 2026 4:12 PM\nTo: Dana Lee <dana@contoso.com>\nSubject: Shared document\n\nOpen it",
			from: Address{Name: "Eve", Address: "eve@sharepoint-docs.example"}, subject: "Shared document",
			date: time.Date(2026, 3, 10, 16, 12, 0, 0, brt), bodyHead: "Open it",
		},
		{
			name: "Outlook English, classic mailto form",
			text: "-----Original Message-----\nFrom: Eve Martin [mailto:eve@sharepoint-docs.example]\nSent: Tuesday, 10 March 2026 09:05\nTo: Dana\nSubject: RE: doc\n\nbody",
			from: Address{Name: "Eve Martin", Address: "eve@sharepoint-docs.example"}, subject: "RE: doc",
			date: time.Date(2026, 3, 10, 9, 5, 0, 0, brt), bodyHead: "body",
		},
		{
			name: "Outlook Portuguese",
			text: "________________________________\nDe: Banco <banco@fidelidade.example>\nEnviado: terça-feira, 10 de março de 2026 14:30\nPara: Joana <joana@contoso.com>\nAssunto: Seus dados\n\nAtualize",
			from: Address{Name: "Banco", Address: "banco@fidelidade.example"}, subject: "Seus dados",
			date: time.Date(2026, 3, 10, 14, 30, 0, 0, brt), bodyHead: "Atualize",
		},
		{
			name: "Outlook Spanish",
			text: "De: Cobros <cobros@pagos.example>\nEnviado el: martes, 10 de febrero de 2026 11:47\nPara: Carlos\nAsunto: Factura\n\nPague",
			from: Address{Name: "Cobros", Address: "cobros@pagos.example"}, subject: "Factura",
			date: time.Date(2026, 2, 10, 11, 47, 0, 0, brt), bodyHead: "Pague",
		},
		{
			name: "Gmail English",
			text: "---------- Forwarded message ---------\nFrom: Bank <alerts@bank.example>\nDate: Mon, Mar 2, 2026 at 10:15 AM\nSubject: Locked\nTo: <a@contoso.com>\n\n\nUnlock now",
			from: Address{Name: "Bank", Address: "alerts@bank.example"}, subject: "Locked",
			date: time.Date(2026, 3, 2, 10, 15, 0, 0, brt), bodyHead: "Unlock now",
		},
		{
			name: "Gmail Spanish",
			text: "---------- Mensaje reenviado ---------\nDe: Banco <b@banco.example>\nDate: lun, 2 mar 2026 a las 22:05\nSubject: Bloqueo\nTo: <c@contoso.com>\n\nDesbloquee",
			from: Address{Name: "Banco", Address: "b@banco.example"}, subject: "Bloqueo",
			date: time.Date(2026, 3, 2, 22, 5, 0, 0, brt), bodyHead: "Desbloquee",
		},
		{
			name: "HTML rendered to text with bold keys",
			text: "*From:* Eve <eve@x.example>\n*Sent:* Tuesday, March 10, 2026 4:12 PM\n*To:* Dana\n*Subject:* Doc\n\nhi",
			from: Address{Name: "Eve", Address: "eve@x.example"}, subject: "Doc",
			date: time.Date(2026, 3, 10, 16, 12, 0, 0, brt), bodyHead: "hi",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, ok := inlineForward(tt.text, brt, true)
			if !ok {
				t.Fatal("no forward found")
			}
			if m.From != tt.from || m.Subject != tt.subject || !m.Date.Equal(tt.date) || m.Text != tt.bodyHead {
				t.Errorf("got from %+v subject %q date %v body %q", m.From, m.Subject, m.Date, m.Text)
			}
		})
	}
}

func TestInlineForwardRejects(t *testing.T) {
	t.Parallel()
	for name, text := range map[string]string{
		"plain prose":          "From: the desk of the CEO we bring news.\nNothing else here.",
		"from without subject": "From: a@b.example\nSent: Monday, March 2, 2026 10:15 AM\n\nbody",
		"empty":                "",
	} {
		if _, ok := inlineForward(text, time.UTC, true); ok {
			t.Errorf("%s: found a forward", name)
		}
	}
}

func TestInlineForwardAtTheTop(t *testing.T) {
	t.Parallel()
	block := "From: Eve <eve@x.example>\nSent: Tuesday, March 10, 2026 4:12 PM\nTo: Dana\nSubject: Doc\n\nhi"
	tests := map[string]bool{
		block:          true,
		"\n\n" + block: true,
		"________________________________\n" + block: true,
		"Begin forwarded message:\n\n" + block:       true,
		"-----Original Message-----\n" + block:       true,
		"Pay the invoice.\n\n" + block:               false,
		"> quoted\n" + block:                         false,
	}
	for text, want := range tests {
		if _, got := inlineForward(text, time.UTC, false); got != want {
			t.Errorf("inlineForward(%q, at the top) = %v, want %v", text, got, want)
		}
	}
}
