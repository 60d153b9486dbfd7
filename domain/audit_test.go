package domain_test

import (
	"strings"
	"testing"

	"github.com/usersd/usersd/domain"
)

func TestAcceptAuditDivergence(t *testing.T) {
	t.Parallel()
	live, rebuilt := strings.Repeat("a", 64), strings.Repeat("b", 64)
	accept := func(w *domain.Workspace) error { return w.AcceptAuditDivergence(7, live, rebuilt) }
	runSpecs(t, []spec{
		{
			name:  "recorded in the workspace, changing nothing else",
			given: team(),
			when:  accept,
			then:  evs(domain.AuditDivergenceAccepted{WorkspaceID: wsID, Seq: 7, LiveHash: live, RebuiltHash: rebuilt}),
			check: func(t *testing.T, w *domain.Workspace) {
				wantStatus(t, w, editor, domain.RoleEditor, domain.StatusActive)
				wantActiveAdmins(t, w, 1)
			},
		},
		{name: "no workspace, no audit", when: accept, wantErr: domain.CodeWorkspaceNotFound},
	})
}
