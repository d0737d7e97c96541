package email

import "testing"

// TestRecoverSender covers the invalid From headers real phishing carries:
// the address a mail client would show must be recovered, and the display
// name as the client would show it.
func TestRecoverSender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, header string
		want         Address
	}{
		{"valid", `"Wingtip Toys" <news@wingtiptoys.example>`, Address{Name: "Wingtip Toys", Address: "news@wingtiptoys.example"}},
		{"bare address", `ztk@fabrikam.example`, Address{Address: "ztk@fabrikam.example"}},
		{"comma and underscore before the address", `Account team ,_<no-reply@access-security.example>`, Address{Name: "Account team", Address: "no-reply@access-security.example"}},
		{"unquoted comma in the name", `Prime Video, jehd <service@offers.example>`, Address{Name: "Prime Video, jehd", Address: "service@offers.example"}},
		{"trailing comma after the name", `Bon d'achat, <info@news.example>`, Address{Name: "Bon d'achat", Address: "info@news.example"}},
		{"repeated name fragments", `"Rewards", "Rewards" <news@shop.example>`, Address{Name: "Rewards", Address: "news@shop.example"}},
		{"address in a comment", `TotalAV (<info@av-offers.example>)`, Address{Name: "TotalAV", Address: "info@av-offers.example"}},
		{"address in a comment after a comma", `Park Tickets,(<service@friends.example>)`, Address{Name: "Park Tickets", Address: "service@friends.example"}},
		{"quoted name then comment", `"victim@pot-f-p"  (<noreply@gov-id.example>)`, Address{Name: "victim@pot-f-p", Address: "noreply@gov-id.example"}},
		{"address-looking quoted name then comma", `"Streaming@Netflix.example", <service@friends.example>`, Address{Name: "Streaming@Netflix.example", Address: "service@friends.example"}},
		{"unquoted address-looking name", `phishing@pot  <noreply@gov-id.example>`, Address{Name: "phishing@pot", Address: "noreply@gov-id.example"}},
		{"fully qualified domain with a final dot", `Vouchers, <offers@news.shop.example.>, Vouchers, <offers@news.shop.example>`, Address{Name: "Vouchers", Address: "offers@news.shop.example"}},
		{"bogus angle part before the real one", "Booking\r\n <\"Booking_____123\">,\r\n \"Agent 123\"\r\n <confirm@bookings.example>", Address{Name: "Agent 123", Address: "confirm@bookings.example"}},
		{"garbage after the address", `Lowe's Department,__<noreply@line.example>&?>`, Address{Name: "Lowe's Department", Address: "noreply@line.example"}},
		{"encoded name with a stray comma", `=?UTF-8?Q?Trouver_l=27amour?= , <no-reply@dating.example>`, Address{Name: "Trouver l'amour", Address: "no-reply@dating.example"}},
		{"whole mailbox in one encoded word", `=?UTF-8?B?UGF5UGFsIDxzZXJ2aWNlQHBheS1zZWN1cmUuZXhhbXBsZT4=?=`, Address{Name: "PayPal", Address: "service@pay-secure.example"}},
		{"mailto in brackets", `Support <mailto:help@desk.example>`, Address{Name: "Support", Address: "help@desk.example"}},
		{"two at signs", `Support <victim@pot@4637195.example>`, Address{Name: "Support", Address: "victim@pot@4637195.example"}},
		{"address quoted whole inside brackets", `"ANWB "<"support@anwb.example">`, Address{Name: "ANWB", Address: "support@anwb.example"}},
		{"comma for a dot in the domain", `Temu  <skimm@theskimm,example>`, Address{Name: "Temu", Address: "skimm@theskimm,example"}},
		{"bounce address with = and a second @", `bounce+17ab-victim@pot=mail.example@mg.sender.example`, Address{Address: "bounce+17ab-victim@pot=mail.example@mg.sender.example"}},
		{"empty brackets", `"Facebook" <>`, Address{Name: "Facebook"}},
		{"name only", `Undisclosed`, Address{Name: "Undisclosed"}},
		{"unterminated bracket", `Eve <eve@unterminated.example`, Address{Name: "Eve", Address: "eve@unterminated.example"}},
		{"unterminated quote", `"Eve <eve@quote.example>`, Address{Name: "Eve <eve@quote.example>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := firstAddress(tt.header); got != tt.want {
				t.Errorf("firstAddress(%q) = %+v, want %+v", tt.header, got, tt.want)
			}
		})
	}
}

func TestParseAddressListsKeepEveryMailbox(t *testing.T) {
	t.Parallel()
	tests := map[string][]Address{
		`"Smith, Carol" <carol@contoso.com>, bob@contoso.com`: {{Name: "Smith, Carol", Address: "carol@contoso.com"}, {Address: "bob@contoso.com"}},
		`=?ISO-8859-1?Q?Ren=E9e?= <renee@contoso.com>`:        {{Name: "Renée", Address: "renee@contoso.com"}},
		`=?windows-1251?B?yOLg7Q==?= <ivan@contoso.com>`:      {{Name: "Иван", Address: "ivan@contoso.com"}},
		`Broken <<weird@@x>, ok@fabrikam.example`:             {{Name: "Broken"}, {Address: "ok@fabrikam.example"}},
		`a@fabrikam.example, Kundenservice, jehd <k@shop.example>`: {
			{Address: "a@fabrikam.example"}, {Name: "Kundenservice, jehd", Address: "k@shop.example"},
		},
		`no address here`:          {{Name: "no address here"}},
		`undisclosed-recipients:;`: nil,
		``:                         nil,
	}
	for in, want := range tests {
		got := parseAddresses(in)
		if len(got) != len(want) {
			t.Errorf("parseAddresses(%q) = %+v, want %+v", in, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("parseAddresses(%q)[%d] = %+v, want %+v", in, i, got[i], want[i])
			}
		}
	}
}

func TestParseAddressesIsBounded(t *testing.T) {
	t.Parallel()
	var b []byte
	for range 5000 {
		b = append(b, "x@y.example, "...)
	}
	if got := parseAddresses(string(b)); len(got) > maxAddresses {
		t.Errorf("%d addresses kept, bound %d", len(got), maxAddresses)
	}
	// Unbalanced syntax of every kind must not panic.
	for _, s := range []string{`"`, `(`, `<`, `\`, `"\`, `(\`, `((a)`, `<<<`, `,,,`, `@`, `<@>`, `a@`, `@b`} {
		_ = parseAddresses(s)
	}
}
