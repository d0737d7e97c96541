package email

import "testing"

func TestLookalikeOf(t *testing.T) {
	t.Parallel()
	internal := []string{"contoso.com", "fabrikam.co.uk"}
	tests := map[string]string{
		"contoso.com":            "",
		"mail.contoso.com":       "",
		"contosso.com":           "contoso.com",
		"c0ntoso.com":            "contoso.com",
		"cont0s0.com":            "contoso.com",
		"contoso.co":             "contoso.com",
		"contoso.net":            "contoso.com",
		"login.c0ntoso.net":      "contoso.com",
		"xn--cntoso-wqf.com":     "contoso.com", // "cоntoso" with a Cyrillic о
		"fabrlkam.co.uk":         "fabrikam.co.uk",
		"fabrikarn.co.uk":        "fabrikam.co.uk",
		"northwindtraders.com":   "",
		"example.com":            "",
		"tailspintoys.example":   "",
		"":                       "",
		"203.0.113.5":            "",
		"contoso-helpdesk.com":   "",
		"totally-unrelated.test": "",
	}
	for host, want := range tests {
		if got := lookalikeOf(host, internal); got != want {
			t.Errorf("lookalikeOf(%q) = %q, want %q", host, got, want)
		}
	}
}

func TestIndicators(t *testing.T) {
	t.Parallel()
	a := &analyzer{opts: Options{InternalDomains: []string{"contoso.com"}}.withDefaults()}
	tests := []struct {
		name string
		m    Message
		want Indicators
	}{
		{"clean", Message{From: Address{Name: "Bob", Address: "bob@fabrikam.example"}, ReplyTo: Address{Address: "bob@mail.fabrikam.example"}}, Indicators{}},
		{"address in display name", Message{From: Address{Name: "ceo@contoso.com", Address: "x@freemail.example"}}, Indicators{DisplayNameSpoof: true}},
		{"internal brand in display name", Message{From: Address{Name: "Contoso Payroll", Address: "pay@payroll.example"}}, Indicators{DisplayNameSpoof: true}},
		{"internal sender may use the brand", Message{From: Address{Name: "Contoso Payroll", Address: "pay@hr.contoso.com"}}, Indicators{}},
		{"reply-to elsewhere", Message{From: Address{Address: "a@fabrikam.example"}, ReplyTo: Address{Address: "b@freemail.example"}}, Indicators{ReplyToMismatch: true}},
		{"lookalike sender", Message{From: Address{Address: "it@contosso.com"}}, Indicators{Lookalike: "contosso.com", LookalikeOf: "contoso.com"}},
		{"lookalike link", Message{From: Address{Address: "a@fabrikam.example"}, Observables: Observables{URLs: []URL{{URL: "https://login.c0ntoso.com/x"}}}}, Indicators{Lookalike: "c0ntoso.com", LookalikeOf: "contoso.com"}},
	}
	for _, tt := range tests {
		if got := a.indicators(&tt.m); got != tt.want {
			t.Errorf("%s: indicators = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b  string
		limit int
		want  int
	}{
		{"contoso", "contoso", 2, 0},
		{"contoso", "contsoo", 2, 1},
		{"contoso", "contosso", 2, 1},
		{"contoso", "cntso", 2, 2},
		{"contoso", "fabrikam", 2, 3},
		{"", "abc", 2, 3},
	}
	for _, tt := range tests {
		if got := editDistance(tt.a, tt.b, tt.limit); got != tt.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
