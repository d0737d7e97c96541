package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mail2archer/mail2archer/internal/config"
	"github.com/mail2archer/mail2archer/internal/sim/archersim"
)

// consoleToken is the admin token of the browser test's service.
const consoleToken = "console-test-token-0123456789abcdef"

// browserBinary finds Chromium or Chrome in PATH.
func browserBinary() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// consoleMessages keeps what the page wrote to its console.
type consoleMessages struct {
	mu   sync.Mutex
	list []chromedp.ConsoleMessage
}

func (c *consoleMessages) add(m chromedp.ConsoleMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.list = append(c.list, m)
}

func (c *consoleMessages) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.list {
		fmt.Fprintf(&b, "\n  %s: %s", m.Type, m.Text)
	}
	return b.String()
}

// problems are the page's uncaught exceptions and the policy violations.
func (c *consoleMessages) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.list {
		lower := strings.ToLower(m.Text)
		if m.Type == chromedp.ConsoleException || strings.Contains(lower, "content security policy") ||
			strings.Contains(lower, "trusted type") {
			out = append(out, string(m.Type)+": "+m.Text)
		}
	}
	return out
}

// adminStatus is the status of a GET with the admin token.
func adminStatus(t *testing.T, url string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+consoleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

// listedReports asks the admin API how many reports it lists.
func listedReports(ctx context.Context, t *testing.T, admin string) int {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/api/v1/reports?limit=200", nil)
	req.Header.Set("Authorization", "Bearer "+consoleToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Reports []json.RawMessage `json:"reports"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/reports: %d %v", resp.StatusCode, err)
	}
	return len(body.Reports)
}

// TestConsoleInABrowser drives the operator console in headless Chromium
// against the real service: the page asks for the admin token, shows a
// report that Archer refused with a validation error first with its
// reason, and after the fault is cleared its Retry button brings the
// record id into the row. The screenshot is saved under the build's
// artifacts (and, with M2A_UPDATE_SCREENSHOT=1, as docs/console.png).
func TestConsoleInABrowser(t *testing.T) {
	bin := browserBinary()
	if bin == "" {
		t.Skip("no Chromium or Chrome in PATH (chromium, chromium-browser, google-chrome): " +
			"install Debian's chromium package to run the console's browser test")
	}
	// Archer refuses the first record: a validation message, which ends
	// the job. The admin listener has a token, so that the page must ask
	// for it.
	sb := start(t, Options{
		ArcherSetup: func(a *archersim.Server) {
			a.FailNextWith(1, archersim.Failure{Body: archersim.FailureValidation, PathSuffix: "/core/content"})
		},
		Configure: func(c *config.Config) { c.AdminToken = config.Secret(consoleToken) },
	})
	admin := "http://" + sb.App.AdminAddr()
	if code := adminStatus(t, admin+"/"); code != http.StatusOK {
		t.Fatalf("GET / on the admin listener: %d", code)
	}
	if _, err := sb.Deliver(sample(t, "01-")); err != nil {
		t.Fatal(err)
	}

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1400, 1000))
	t.Cleanup(cancelAlloc)
	browserCtx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelBrowser)
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	t.Cleanup(cancel)
	// Start the browser and its tab before subscribing to the console.
	// (Not with a context of its own: its end would close the browser.)
	if err := chromedp.Do(browserCtx); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	console := &consoleMessages{}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			console.add(m)
		}
	}()
	step := func(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v\nbrowser console:%s", what, err, console)
		}
	}
	rows := `//tbody[@id='report-rows']`

	// No token yet: the page asks for it.
	step("the page asks for the admin token", 60*time.Second,
		chromedp.Navigate(admin+"/"), chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("token"), consoleToken),
		chromedp.Click(chromedp.CSS("#login-form button[type=submit]")))
	step("the failed report shows its reason", 30*time.Second,
		chromedp.WaitVisible(rows+`/tr[contains(@class,'state-failed')][contains(., 'archer_validation')]`),
		chromedp.WaitVisible(chromedp.CSS("#report-rows tr.state-failed button.retry")))
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#report-rows tr.state-failed"), "data-message-id"))
	if err != nil || !attr.Exists || attr.Value == "" || strings.ContainsAny(attr.Value, `'"`) {
		t.Fatalf("the failed row's message id: %+v %v", attr, err)
	}
	row := rows + `/tr[@data-message-id='` + attr.Value + `']`

	// The fault is cleared, more mail arrives, and the operator retries.
	sb.Archer.FailNextWith(0, archersim.Failure{})
	for _, p := range []string{"02-", "04-", "05-"} {
		if _, err := sb.Deliver(sample(t, p)); err != nil {
			t.Fatal(err)
		}
	}
	step("retry", 10*time.Second, chromedp.Click(chromedp.CSS("#report-rows tr.state-failed button.retry")))
	step("the record id appears in the retried row", 30*time.Second,
		chromedp.WaitVisible(row+`[contains(@class,'state-done')]//td[contains(@class,'record')]/a`))
	link, err := chromedp.Run(ctx, chromedp.Attributes(row+`//td[contains(@class,'record')]/a`))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(row+`//td[contains(@class,'record')]/a`))
	if err != nil {
		t.Fatal(err)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
	if err != nil {
		t.Fatalf("the record cell shows %q", text)
	}
	found := false
	for _, r := range sb.Incidents() {
		found = found || r.ID == id
	}
	if !found {
		t.Errorf("the row shows record %d, which Archer does not hold", id)
	}
	if !strings.HasPrefix(link["href"], "http") || link["rel"] != "noopener noreferrer" || link["target"] != "_blank" {
		t.Errorf("the record link: %v", link)
	}

	// Everything settles; the page lists every report as done.
	if _, err := sb.WaitSettled(waitCtx(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	n := listedReports(ctx, t, admin)
	step(fmt.Sprintf("all %d reports done", n), 30*time.Second,
		chromedp.WaitVisible(fmt.Sprintf(`%s[count(tr)=%d][count(tr[contains(@class,'state-done')])=%d]`, rows, n, n)))

	// Its history shows the refused attempt.
	step("the retried report's history", 30*time.Second,
		chromedp.Click(row+`/td[contains(@class,'subject')]`),
		chromedp.WaitVisible(`//ol[@id='history-jobs']/li[contains(., 'archer_validation')]`))
	step("the readiness and the subscription", 30*time.Second,
		chromedp.WaitVisible(`//ul[@id='components']/li`),
		chromedp.WaitVisible(`//tbody[@id='subscription-rows']/tr[contains(., '`+Mailbox+`')]`))

	if p := console.problems(); len(p) > 0 {
		t.Errorf("the page broke its policy or threw:\n  %s", strings.Join(p, "\n  "))
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	saveScreenshot(t, png)
}

// saveScreenshot writes the screenshot to $M2A_ARTIFACTS_DIR (default
// the build's artifacts folder) and, with M2A_UPDATE_SCREENSHOT=1, to
// docs/console.png.
func saveScreenshot(t *testing.T, png []byte) {
	t.Helper()
	dir := os.Getenv("M2A_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "artifacts")
	}
	dests := []string{filepath.Join(dir, "console.png")}
	if os.Getenv("M2A_UPDATE_SCREENSHOT") == "1" {
		dests = append(dests, filepath.Join("..", "..", "docs", "console.png"))
	}
	for _, p := range dests {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
		abs, _ := filepath.Abs(p)
		t.Logf("screenshot: %s (%d bytes)", abs, len(png))
	}
}
