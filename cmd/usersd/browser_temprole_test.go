package main

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// TestBrowserTemporaryRole: with an end set above the list, a role change
// from the row menu is temporary; the row shows the end.
func TestBrowserTemporaryRole(t *testing.T) {
	t.Parallel()
	b, _ := signedIn(t)
	b.invite("Monitor", "ada@example.com")
	// Two days ahead, in the input's own local format (minutes).
	want := b.evalString(`(() => {
		const d = new Date(Date.now() + 2 * 864e5);
		const p = (n) => String(n).padStart(2, "0");
		const v = d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + "T" + p(d.getHours()) + ":" + p(d.getMinutes());
		const input = document.getElementById("role-until");
		input.value = v;
		return String(new Date(v).getTime());
	})()`)
	b.run("give ada Manager until then",
		chromedp.Click(chromedp.CSS(row("ada@example.com")+" button.kebab")),
		chromedp.Click(chromedp.CSS(row("ada@example.com")+` [data-action="role:Manager"]`)),
		chromedp.WaitVisible(chromedp.CSS(row("ada@example.com")+`[data-role="Manager"]:not([data-role-until=""])`)))
	if got := b.evalString(`String(Date.parse(document.querySelector('#user-rows tr[data-email="ada@example.com"]').dataset.roleUntil))`); got != want {
		t.Errorf("ada's roleUntil %s ms, want %s (the end set)", got, want)
	}
	if got := b.text(row("ada@example.com") + " td.role .hint"); len(got) < len("until ") || got[:6] != "until " {
		t.Errorf("role cell hint %q, want the end", got)
	}
	b.screenshot("temporary-role")

	// Without an end, a role change is for good, and clears the end.
	b.run("clear the end and give ada Editor",
		chromedp.SetValue(chromedp.CSS("#role-until"), ""),
		chromedp.Click(chromedp.CSS(row("ada@example.com")+" button.kebab")),
		chromedp.Click(chromedp.CSS(row("ada@example.com")+` [data-action="role:Editor"]`)),
		chromedp.WaitVisible(chromedp.CSS(row("ada@example.com")+`[data-role="Editor"][data-role-until=""]`)))
}
