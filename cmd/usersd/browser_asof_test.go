package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserHistoryAndAsOf: a row's menu opens the person's history (each
// change of role or status, who made it, the event), and the "as of"
// picker shows the list as it was at an earlier moment, read-only, until
// it is cleared.
func TestBrowserHistoryAndAsOf(t *testing.T) {
	t.Parallel()
	b, _ := signedIn(t)
	const ada = "ada@example.com"
	b.invite("Monitor", ada)
	b.run("see ada invited as Monitor", chromedp.WaitVisible(chromedp.CSS(row(ada)+`[data-role="Monitor"]`)))

	// A moment between the invitation and the role change, to the second
	// (the picker's resolution).
	time.Sleep(1100 * time.Millisecond)
	before := time.Now()
	time.Sleep(1100 * time.Millisecond)
	b.run("change ada's role to Editor",
		chromedp.Click(chromedp.CSS(row(ada)+" button.kebab")),
		chromedp.Click(chromedp.CSS(row(ada)+` [data-action="role:Editor"]`)),
		chromedp.WaitVisible(chromedp.CSS(row(ada)+`[data-role="Editor"]`)))

	// History, from the row menu.
	b.run("open ada's history",
		chromedp.Click(chromedp.CSS(row(ada)+" button.kebab")),
		chromedp.Click(chromedp.CSS(row(ada)+` [data-action="History"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#history-rows tr[data-action="RoleChanged"]`)))
	var got []string
	for i := 1; i <= b.count("#history-rows tr"); i++ {
		r := fmt.Sprintf("#history-rows tr:nth-child(%d)", i)
		got = append(got, strings.Join([]string{b.text(r + " td.action"), b.text(r + " td.role"), b.text(r + " td.status"), b.text(r + " td.by"), b.text(r + " td.to")}, " | "))
	}
	owner := b.text(row(demoAdminEmail) + " td.name")
	want := []string{
		"UserInvited | Monitor | invited | " + owner + " | " + b.text("#history-rows tr:nth-child(1) td.to"),
		"RoleChanged | Editor | invited | " + owner + " | now",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || b.text("#history-rows tr:nth-child(1) td.to") == "now" {
		t.Errorf("history:\n%s\nwant\n%s\n(the first ending when the second starts)", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b.screenshot("history")
	b.run("close the history", chromedp.Click(chromedp.CSS("#history-close")), chromedp.WaitNotVisible(chromedp.CSS("#history")))

	// As of the moment before the change: ada is still a Monitor, and the
	// row offers its history only.
	setAsOf := fmt.Sprintf(`(() => { const d = new Date(%d); const p = (n) => String(n).padStart(2, "0");
		document.getElementById("filter-asof").value = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) +
			"T" + p(d.getHours()) + ":" + p(d.getMinutes()) + ":" + p(d.getSeconds()); return true; })()`, before.UnixMilli())
	b.waitFor("set the as-of picker", setAsOf)
	b.run("list as of then",
		chromedp.Click(chromedp.CSS("#filter-apply")),
		chromedp.WaitVisible(chromedp.CSS(row(ada)+`[data-role="Monitor"]`)),
		chromedp.WaitVisible(chromedp.CSS("#asof-notice")))
	if n := b.count(row(ada) + ` [role="menuitemradio"]`); n != 0 {
		t.Errorf("as of a past moment the row menu offers %d role changes, want none", n)
	}
	if n := b.count(row(ada) + ` [data-action="History"]`); n != 1 {
		t.Errorf("as of a past moment the row menu has %d History items, want 1", n)
	}
	b.screenshot("as-of")

	b.run("back to now",
		chromedp.SetValue(chromedp.CSS("#filter-asof"), ""),
		chromedp.Click(chromedp.CSS("#filter-apply")),
		chromedp.WaitVisible(chromedp.CSS(row(ada)+`[data-role="Editor"]`)),
		chromedp.WaitNotVisible(chromedp.CSS("#asof-notice")))
}
