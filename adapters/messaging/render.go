package messaging

import (
	"bytes"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/usersd/usersd/commands"
)

// AcceptLink is where an invitation link leads: the accept page, with the
// token in the query (api.md).
func AcceptLink(publicURL, token string) string {
	return strings.TrimRight(publicURL, "/") + "/accept?token=" + token
}

type emailView struct {
	Workspace string
	Inviter   string
	Role      string
	Expires   string
	Link      string
}

// The text part carries the link exactly once (api.md); the HTML part links
// it from a button and spells it out for clients that show no buttons.
var (
	textTemplate = texttemplate.Must(texttemplate.New("text").Parse(`Hello,

{{.Inviter}} invited you to join the workspace "{{.Workspace}}" as {{.Role}}.

Accept the invitation here:
{{.Link}}

The link works once and expires on {{.Expires}}. If you did not expect this
invitation, ignore this e-mail: nothing happens until the link is used.
`))
	htmlTemplate = htmltemplate.Must(htmltemplate.New("html").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Invitation to {{.Workspace}}</title></head>
<body style="font-family: sans-serif; line-height: 1.5">
<p>Hello,</p>
<p><strong>{{.Inviter}}</strong> invited you to join the workspace <strong>{{.Workspace}}</strong> as <strong>{{.Role}}</strong>.</p>
<p><a href="{{.Link}}" style="display: inline-block; padding: 0.6em 1.2em; background: #1d4ed8; color: #fff; text-decoration: none; border-radius: 4px">Accept the invitation</a></p>
<p>The link works once and expires on {{.Expires}}. If you did not expect this invitation, ignore this e-mail.</p>
</body></html>
`))
)

// render builds the e-mail of one attempt.
func render(m commands.InvitationEmail, cmd commands.SendInvitationEmail, publicURL string) (commands.Email, error) {
	inviter := m.InviterName
	switch {
	case inviter != "" && m.InviterEmail != "":
		inviter = fmt.Sprintf("%s (%s)", inviter, m.InviterEmail)
	case m.InviterEmail != "":
		inviter = string(m.InviterEmail)
	case inviter == "":
		inviter = "An administrator"
	}
	v := emailView{
		Workspace: m.WorkspaceName, Inviter: inviter, Role: string(m.Role),
		Expires: m.ExpiresAt.UTC().Format(time.RFC1123), Link: AcceptLink(publicURL, m.Token),
	}
	var text, html bytes.Buffer
	if err := textTemplate.Execute(&text, v); err != nil {
		return commands.Email{}, fmt.Errorf("render the text part: %w", err)
	}
	if err := htmlTemplate.Execute(&html, v); err != nil {
		return commands.Email{}, fmt.Errorf("render the HTML part: %w", err)
	}
	return commands.Email{
		WorkspaceID: cmd.WorkspaceID, InvitationID: cmd.InvitationID, Attempt: cmd.Attempt, To: m.To,
		Subject: fmt.Sprintf("You are invited to join %s", m.WorkspaceName),
		Text:    text.String(), HTML: html.String(),
	}, nil
}
