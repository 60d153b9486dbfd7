package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// reviewItem is the row of one person in the open review.
func reviewItem(email string) string { return fmt.Sprintf(`#item-rows tr[data-email=%q]`, email) }

// TestBrowserAccessReview: an Admin starts a review of everyone, decides
// each item in the dialog (a refused decision, the last Admin's
// revocation, shows why and records nothing), completes it and downloads
// its evidence; members invited after the start are not in it.
func TestBrowserAccessReview(t *testing.T) {
	t.Parallel()
	b, s := signedIn(t)
	const ada, bob, cyd = "ada@example.com", "bob@example.com", "cyd@example.com"
	b.invite("Monitor", ada, bob)
	b.run("open Access reviews and start one",
		chromedp.Navigate(s.base+"/reviews"),
		chromedp.WaitVisible(chromedp.CSS("#start-form")),
		chromedp.SendKeys(chromedp.CSS("#review-name"), "Q4 review"),
		chromedp.Click(chromedp.CSS("#review-start")),
		chromedp.WaitVisible(chromedp.CSS(reviewItem(bob))))
	if n := b.count("#item-rows tr[data-user-id]"); n != 3 {
		t.Errorf("the review holds %d people, want 3 (the Admin and the two invitations)", n)
	}

	// Invited after the start: not in the review.
	b.run("invite cyd on Users & Roles",
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(row(demoAdminEmail))))
	b.invite("Editor", cyd)
	b.run("back to the review",
		chromedp.Navigate(s.base+"/reviews"),
		chromedp.WaitVisible(chromedp.CSS(`#review-rows tr[data-status="open"] button.open`)),
		chromedp.Click(chromedp.CSS(`#review-rows tr[data-status="open"] button.open`)),
		chromedp.WaitVisible(chromedp.CSS(reviewItem(bob))))
	if n := b.count(reviewItem(cyd)); n != 0 {
		t.Errorf("cyd, invited after the start, is in the review")
	}

	decide := func(email, decision, role string) {
		t.Helper()
		steps := []chromedp.Action[chromedp.Void]{
			chromedp.Click(chromedp.CSS(reviewItem(email) + " button.decide")),
			chromedp.WaitVisible(chromedp.CSS("#decision-dialog")),
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`#decision-dialog input[value=%q]`, decision))),
		}
		if role != "" {
			steps = append(steps, chromedp.SetValue(chromedp.CSS("#decision-role"), role))
		}
		steps = append(steps, chromedp.SendKeys(chromedp.CSS("#decision-comment"), "checked with "+email),
			chromedp.Click(chromedp.CSS("#decision-save")),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`%s[data-decision=%q]`, reviewItem(email), decision))))
		b.run(fmt.Sprintf("decide %s: %s %s", email, decision, role), steps...)
	}

	// The last Admin cannot be revoked: the dialog says why, nothing is recorded.
	b.run("try to revoke the last Admin",
		chromedp.Click(chromedp.CSS(reviewItem(demoAdminEmail)+" button.decide")),
		chromedp.WaitVisible(chromedp.CSS("#decision-dialog")),
		chromedp.Click(chromedp.CSS(`#decision-dialog input[value="revoke"]`)),
		chromedp.Click(chromedp.CSS("#decision-save")),
		chromedp.WaitVisible(chromedp.CSS(`#decision-dialog [role="alert"].notice.error`)))
	b.screenshot("review-refused")
	b.run("cancel", chromedp.Click(chromedp.CSS(`#decision-dialog button[value="cancel"]`)), chromedp.WaitNotPresent(chromedp.CSS("#decision-dialog")))
	if got := b.text(reviewItem(demoAdminEmail) + " td.decision"); !strings.Contains(got, "Decide") {
		t.Errorf("after a refusal the Admin's decision cell reads %q, want still undecided", got)
	}

	decide(demoAdminEmail, "keep", "")
	decide(ada, "change_role", "Editor")
	if b.evalString(`String(document.getElementById("review-complete").disabled)`) != "true" {
		t.Errorf("Complete is enabled with bob undecided")
	}
	decide(bob, "revoke", "")
	if got := b.text(reviewItem(ada) + " td.decision"); !strings.Contains(got, "Change role → Editor") {
		t.Errorf("ada's decision reads %q, want the change to Editor", got)
	}
	b.screenshot("review-decided")

	b.run("complete the review",
		chromedp.Click(chromedp.CSS("#review-complete")),
		chromedp.WaitVisible(chromedp.CSS(`#review-section[data-status="completed"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#review-rows tr[data-status="completed"]`)))
	if n := b.count("#item-rows button.decide"); n != 0 {
		t.Errorf("a completed review still offers %d decisions", n)
	}
	for _, f := range []string{"json", "csv", "ndjson"} {
		b.run("download the evidence as "+f, chromedp.Click(chromedp.CSS("#evidence-"+f)))
		b.waitFor("the "+f+" evidence downloaded", fmt.Sprintf(`(() => {
			const n = document.getElementById("review-notice");
			return !n.hidden && n.classList.contains("ok") && n.textContent.includes(%q);
		})()`, "as "+strings.ToUpper(f)+" ("))
	}
	b.screenshot("review-completed")

	// The decisions ran the ordinary commands: ada is an Editor, bob's
	// invitation is gone.
	b.run("see the effects on Users & Roles",
		chromedp.Navigate(s.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(row(ada)+`[data-role="Editor"]`)))
	if n := b.count(row(bob)); n != 0 {
		t.Errorf("bob's invitation is still listed after its revocation")
	}
}
