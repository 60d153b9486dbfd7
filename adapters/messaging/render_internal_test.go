package messaging

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

func TestRenderNamesEverythingAndEscapesHTML(t *testing.T) {
	t.Parallel()
	mail := commands.InvitationEmail{
		To: "ann@example.com", WorkspaceName: `Acme <script>alert("x")</script>`, InviterName: "Olga & Co",
		InviterEmail: "olga@example.com", Role: domain.RoleManager,
		ExpiresAt: time.Date(2026, 12, 5, 9, 0, 0, 0, time.UTC), Token: "TOKEN_abc-123",
	}
	cmd := commands.SendInvitationEmail{WorkspaceID: uuid.New(), InvitationID: uuid.New(), Attempt: 3}
	e, err := render(mail, cmd, "https://users.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	link := "https://users.example.com/accept?token=TOKEN_abc-123"
	if n := strings.Count(e.Text, link); n != 1 {
		t.Errorf("the text part holds the link %d times, want once:\n%s", n, e.Text)
	}
	for _, want := range []string{"Olga & Co (olga@example.com)", "Manager", `"Acme <script>alert("x")</script>"`, "Sat, 05 Dec 2026 09:00:00 UTC"} {
		if !strings.Contains(e.Text, want) {
			t.Errorf("the text part lacks %q:\n%s", want, e.Text)
		}
	}
	if strings.Contains(e.HTML, "<script>") || !strings.Contains(e.HTML, "&lt;script&gt;") || !strings.Contains(e.HTML, `href="`+link+`"`) {
		t.Errorf("the HTML part must escape the workspace name and link the accept page:\n%s", e.HTML)
	}
	if e.To != mail.To || e.InvitationID != cmd.InvitationID || e.Attempt != 3 || !strings.Contains(e.Subject, "Acme") {
		t.Errorf("envelope %+v does not match the command and the e-mail", e)
	}
}
