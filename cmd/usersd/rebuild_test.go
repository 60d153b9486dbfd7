package main

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/adapters/eventstore"
	"github.com/usersd/usersd/adapters/eventstore/eventstoretest"
	pgstore "github.com/usersd/usersd/adapters/eventstore/postgres"
	"github.com/usersd/usersd/adapters/postgres/pgtest"
	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
)

// TestRebuildRefusesRewrittenEvents is the first forgery of issue 15: the
// database's owner rewrites who revoked an invitation in the events (in
// the maintenance procedure), then rebuilds the audit. The rebuild refuses
// to swap, names the workspace, the seq and both hashes, and leaves the
// live history as it was; with -accept-divergence it swaps, after
// recording AuditDivergenceAccepted in the workspace, which the audit then
// shows.
func TestRebuildRefusesRewrittenEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, dbURL := pgtest.New(t)
	store := pgstore.New(pool)
	t.Cleanup(store.Close)
	codec := testCodec(t, pool)
	app := commands.NewApplication(eventstoretest.Deps(store, codec, commands.EphemeralLinkSecrets()), commands.DefaultInvitationPolicy(), commands.Instrumentation{})
	created, err := app.Commands.CreateWorkspace.Handle(ctx, commands.CreateWorkspace{
		WorkspaceID: uuid.New(), Name: "Forged", OwnerEmail: "ada@forged.test", OwnerName: "Ada",
		Meta: commands.Meta{Actor: domain.Actor{System: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ws, owner := created.WorkspaceID, created.OwnerUserID
	as := commands.Meta{Actor: domain.Actor{UserID: owner}}
	invited, err := app.Commands.InviteUsers.Handle(ctx, commands.InviteUsers{WorkspaceID: ws, Emails: []string{"ivy@forged.test"}, Role: "Editor", Meta: as})
	if err != nil || len(invited.Results) != 1 || invited.Results[0].UserID == uuid.Nil {
		t.Fatalf("invite: %+v, %v", invited, err)
	}
	if _, err := app.Commands.RemoveUser.Handle(ctx, commands.RemoveUser{WorkspaceID: ws, UserID: invited.Results[0].UserID, Meta: as}); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{envDatabaseURL: dbURL, envKeyEncryptionKey: testKEK}
	if got := runUsersd(t, vars, "projections", "rebuild", "audit"); got.code != exitOK {
		t.Fatalf("first rebuild (fills the live audit): exit %d, %s", got.code, got.stderr)
	}
	before := auditEntries(t, pool, ws)
	revoked := before[len(before)-1]
	if revoked.Action != "InvitationRevoked" || revoked.Actor.Email != "ada@forged.test" {
		t.Fatalf("the live audit's last entry: %+v, want Ada's InvitationRevoked", revoked)
	}

	// The forgery: as the owner, in the maintenance procedure.
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL usersd.maintenance = on`); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '{"userId":"`+uuid.NewString()+`","email":"mallory@forged.test"}')
			WHERE type = 'InvitationRevoked' AND stream_id = $1`, eventstore.WorkspaceStream(ws))
		if err == nil && tag.RowsAffected() != 1 {
			t.Fatalf("forgery changed %d events, want 1", tag.RowsAffected())
		}
		return err
	})
	if err != nil {
		t.Fatalf("forge: %v", err)
	}

	got := runUsersd(t, vars, "projections", "rebuild", "audit")
	for _, want := range []string{"refused", "workspace " + ws.String(), "seq " + itoa(revoked.Seq), "live hash " + revoked.Hash, "rebuilt hash ", "-accept-divergence"} {
		if got.code != exitFailure || !strings.Contains(got.stderr, want) {
			t.Errorf("rebuild over rewritten events: exit %d, stderr %q; want exit 1 naming %q", got.code, got.stderr, want)
		}
	}
	after := auditEntries(t, pool, ws)
	if len(after) != len(before) || after[len(after)-1].Hash != revoked.Hash || after[len(after)-1].Actor.Email != "ada@forged.test" {
		t.Errorf("the live audit after the refused rebuild: last entry %+v, want Ada's as before", after[len(after)-1])
	}

	got = runUsersd(t, vars, "projections", "rebuild", "audit", "-accept-divergence")
	if got.code != exitOK || !strings.Contains(got.stdout, "workspace "+ws.String()+": accepted the rebuilt audit from seq "+itoa(revoked.Seq)) {
		t.Fatalf("rebuild -accept-divergence: exit %d, stdout %q, stderr %q; want the acceptance recorded and a swap", got.code, got.stdout, got.stderr)
	}
	// No runner runs here: a rebuild brings the recorded event in.
	if got := runUsersd(t, vars, "projections", "rebuild", "audit"); got.code != exitOK {
		t.Fatalf("rebuild after the accepted one: exit %d, %s", got.code, got.stderr)
	}
	final := auditEntries(t, pool, ws)
	last := final[len(final)-1]
	if last.Action != "AuditDivergenceAccepted" || !last.Actor.System || !strings.Contains(string(last.Details), `"seq":`+itoa(revoked.Seq)) ||
		!strings.Contains(string(last.Details), `"liveHash":"`+revoked.Hash+`"`) {
		t.Errorf("the audit's last entry after the accepted rebuild: %+v %s, want AuditDivergenceAccepted at seq %d by the system", last, last.Details, revoked.Seq)
	}
	if forged := final[len(final)-2]; forged.Actor.Email != "mallory@forged.test" {
		t.Errorf("the accepted rebuild's entry: %+v, want the forged actor (the divergence was accepted)", forged)
	}
}

// auditEntries lists ws's audit entries, oldest first, opened with the key
// store of pool's database.
func auditEntries(t *testing.T, pool *pgxpool.Pool, ws uuid.UUID) []audit.Entry {
	t.Helper()
	page, err := audit.List(context.Background(), pool, testCodec(t, pool).Keys(), ws, audit.Filter{Limit: audit.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := page.Items
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
