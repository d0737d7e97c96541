package sandbox

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mail2archer/mail2archer/internal/app"
	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// campaignPhish is one phishing email as it reached several people.
func campaignPhish(sender, subject, link string) []byte {
	return []byte("From: \"DocuSign\" <" + sender + ">\r\n" +
		"To: Alice Smith <alice@contoso.com>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Sun, 29 Nov 2026 08:05:00 +0000\r\n" +
		"Message-ID: <" + strings.ReplaceAll(link, "/", ".") + "@" + strings.Split(sender, "@")[1] + ">\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		"You have a document waiting for your signature.\r\n\r\n" +
		"Review the document: " + link + "\r\n\r\nDocuSign\r\n")
}

// inlineForward is a colleague forwarding phish inline, as Outlook does,
// to the phishing mailbox.
func inlineForward(reporter, sender, subject, link string) []byte {
	return []byte("From: Carol White <" + reporter + ">\r\n" +
		"To: " + Mailbox + "\r\n" +
		"Subject: FW: " + subject + "\r\n" +
		"Date: Sun, 29 Nov 2026 09:00:00 +0000\r\n" +
		"Message-ID: <fw-" + reporter + "@contoso.com>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" +
		"This looks like phishing.\r\n\r\n" +
		"________________________________\r\n" +
		"From: DocuSign <" + sender + ">\r\n" +
		"Sent: Sunday, November 29, 2026 8:05 AM\r\n" +
		"To: Carol White <" + reporter + ">\r\n" +
		"Subject: " + subject + "\r\n\r\n" +
		"You have a document waiting for your signature.\r\n\r\n" +
		"Review the document: " + link + "\r\n\r\nDocuSign\r\n")
}

const (
	phishSender  = "no-reply@docusign-secure.example"
	phishSubject = "Please sign: Q4 bonus agreement"
	phishLink    = "https://docusign-secure.example/sign/b7f3"
)

// incidentsWait waits for want incidents and a quiet queue, and fails
// unless Archer then holds exactly want.
func incidentsWait(t *testing.T, sb *Sandbox, want int) []archersim.Record {
	t.Helper()
	settle(t, sb)
	if _, err := sb.WaitRecords(waitCtx(t, 30*time.Second), want); err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	recs := sb.incidents()
	if len(recs) != want {
		t.Fatalf("%d incidents, want %d", len(recs), want)
	}
	return recs
}

// settle waits until Graph has notified every delivery and the queue has
// nothing left to do.
func settle(t *testing.T, sb *Sandbox) {
	t.Helper()
	if err := sb.Graph.WaitDelivered(waitCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := sb.WaitIdle(waitCtx(t, 30*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func reportsOf(r archersim.Record) string { return fmt.Sprint(r.Fields["Number of Reports"]) }

func TestFiveReportsOfOnePhishMakeOneRecord(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	phish := campaignPhish(phishSender, phishSubject, phishLink)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	var mails [][]byte
	for i, who := range []string{"alice", "bob", "dave", "erin"} {
		r, err := WrapAsReport(phish, who+"@contoso.com", t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		mails = append(mails, r)
	}
	// One report is an inline forward; a different phish comes between.
	mails = append(mails[:2], append([][]byte{
		campaignPhish("billing@fabrikam-pay.example", "Invoice overdue", "https://fabrikam-pay.example/pay/77"),
		inlineForward("carol@contoso.com", phishSender, phishSubject, phishLink),
	}, mails[2:]...)...)
	var ids []string
	for _, m := range mails {
		id, err := sb.Deliver(m)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		// One after the other, so that the record forms as people report.
		settle(t, sb)
	}
	recs := incidentsWait(t, sb, 2)
	var campaign, other archersim.Record
	for _, r := range recs {
		if strings.Contains(fmt.Sprint(r.Fields["Reported Subject"]), "Q4 bonus") {
			campaign = r
		} else {
			other = r
		}
	}
	if got := reportsOf(campaign); got != "5" {
		t.Errorf("the campaign's record counts %s reports, want 5", got)
	}
	reporters := fmt.Sprint(campaign.Fields["Reporters"])
	for _, who := range []string{"alice", "bob", "carol", "dave", "erin"} {
		if !strings.Contains(reporters, who+"@contoso.com") {
			t.Errorf("the reporters lack %s: %s", who, reporters)
		}
	}
	if campaign.Fields["Latest Report"] == nil || !campaign.Updated.After(campaign.Created) {
		t.Errorf("the record was not updated with the latest report: %+v", campaign)
	}
	if got := reportsOf(other); got != "1" {
		t.Errorf("the other phish counts %s reports, want 1", got)
	}
	// Every report's message carries the campaign's record as its
	// category; the other phish its own.
	want := fmt.Sprintf("Archer %d", campaign.ID)
	n := 0
	for _, id := range ids {
		m, err := sb.Graph.Message(Mailbox, id)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.Join(m.Categories, ","), want) {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d messages carry %q, want the 5 reports", n, want)
	}
}

func TestTwentyReportsAtOnceMakeOneRecord(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{Configure: func(c *config.Config) { c.Workers = 8 }})
	phish := campaignPhish(phishSender, phishSubject, phishLink)
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 20 {
		r, err := WrapAsReport(phish, fmt.Sprintf("user%02d@contoso.com", i), t0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if _, err := sb.Deliver(r); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d deliveries failed", failed.Load())
	}
	recs := incidentsWait(t, sb, 1)
	if got := reportsOf(recs[0]); got != "20" {
		t.Errorf("the record counts %s reports, want 20", got)
	}
	if lines := strings.Count(fmt.Sprint(recs[0].Fields["Reporters"]), "@contoso.com"); lines != 20 {
		t.Errorf("%d reporters listed, want 20", lines)
	}
}

func TestAReportAfterTheWindowOpensANewRecord(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC).UnixNano())
	sb := start(t, Options{App: app.Options{Now: func() time.Time { return time.Unix(0, now.Load()).UTC() }}})
	phish := campaignPhish(phishSender, phishSubject, phishLink)
	deliver := func(who string, want int) {
		t.Helper()
		r, err := WrapAsReport(phish, who, time.Unix(0, now.Load()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Deliver(r); err != nil {
			t.Fatal(err)
		}
		incidentsWait(t, sb, want)
	}
	deliver("alice@contoso.com", 1)
	now.Add(int64(71 * time.Hour))
	deliver("bob@contoso.com", 1) // within 72 h of the first report
	now.Add(int64(2 * time.Hour))
	deliver("carol@contoso.com", 2) // 73 h after the first
	counts := map[string]int{}
	for _, r := range sb.incidents() {
		counts[reportsOf(r)]++
	}
	if counts["2"] != 1 || counts["1"] != 1 {
		t.Errorf("report counts %v, want one record of 2 and one of 1", counts)
	}
}

func TestTheSameSubjectFromAnotherSenderIsAnotherRecord(t *testing.T) {
	t.Parallel()
	sb := start(t, Options{})
	t0 := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	for i, phish := range [][]byte{
		campaignPhish(phishSender, phishSubject, phishLink),
		campaignPhish("hr@contoso-payroll.example", phishSubject, "https://contoso-payroll.example/bonus"),
	} {
		r, err := WrapAsReport(phish, "alice@contoso.com", t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sb.Deliver(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range incidentsWait(t, sb, 2) {
		if got := reportsOf(r); got != "1" {
			t.Errorf("record %d counts %s reports, want 1", r.ID, got)
		}
	}
}
