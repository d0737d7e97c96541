package sandbox

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTheDefaultSamplesFormACampaign delivers the default samples as
// mail2archer-sandbox does and checks what grouping makes of them: the
// campaign sample's three reports (alice, bob and carol reporting one
// DocuSign-style phish) become one record that counts 3 reports and lists
// the three reporters, and each of the five other emails keeps its own
// record: six records for eight reports. Without a campaign section in the
// mapping each report makes its own record, which TestSamplesBecomeIncidents
// covers.
func TestTheDefaultSamplesFormACampaign(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	if sb.App.Mapping().Campaign == nil {
		t.Skip("the mapping groups no reports: it has no campaign section")
	}
	samples := Samples()
	var reportIDs []string
	for _, s := range samples {
		id, err := sb.Deliver(s.MIME)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(s.Name, "06-") {
			reportIDs = append(reportIDs, id)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := sb.WaitSettled(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = WriteTable(&table, recs)
	t.Log("\n" + table.String())
	if len(recs) != 6 || totalReports(recs) != 8 {
		t.Fatalf("%d records for %d reports, want 6 records for the 8 reports a rule did not skip", len(recs), totalReports(recs))
	}

	var campaign int
	for i, r := range recs {
		if r.Fields["Reported Subject"] == "Please DocuSign: Northwind_Invoice_INV-58813.pdf" {
			campaign = i
		} else if Reports(r) != 1 {
			t.Errorf("record %d (%v) counts %d reports, want 1", r.ID, r.Fields["Reported Subject"], Reports(r))
		}
	}
	c := recs[campaign]
	if Reports(c) != 3 {
		t.Fatalf("the campaign's record %d counts %d reports, want 3", c.ID, Reports(c))
	}
	reporters := fmt.Sprint(c.Fields["Reporters"])
	for _, who := range []string{"alice@contoso.com", "bob@contoso.com", "carol@contoso.com"} {
		if strings.Count(reporters, who) != 1 {
			t.Errorf("Reporters should name %s once: %s", who, reporters)
		}
	}
	if c.Fields["Latest Report"] == nil || !c.Updated.After(c.Created) {
		t.Errorf("the record was not updated by the later reports: Latest Report %v, Created %v, Updated %v",
			c.Fields["Latest Report"], c.Created, c.Updated)
	}
	if !strings.Contains(table.String(), fmt.Sprintf("%d  3 ", c.ID)) {
		t.Errorf("the table does not show the campaign's 3 reports:\n%s", table.String())
	}

	// Every report's message names the campaign's record.
	want := fmt.Sprintf("Archer %d", c.ID)
	waitFor(t, 10*time.Second, "the three reports' categories", func() bool {
		for _, id := range reportIDs {
			m, err := sb.Graph.Message(Mailbox, id)
			if err != nil || !strings.Contains(strings.Join(m.Categories, ","), want) {
				return false
			}
		}
		return true
	})
}
