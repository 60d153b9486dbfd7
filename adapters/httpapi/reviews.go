package httpapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
)

// Access reviews (api.md): writes for Admins through the commands, reads
// for Monitors and up from the history read model, which keeps the
// reviews; the evidence of a completed review adds the audit head at its
// completion, signed.

// POST /v1/workspaces/{ws}/access-reviews (Admin).
func (s *Server) startAccessReview(w http.ResponseWriter, r *http.Request, p principal) error {
	var req startReviewRequest
	ws, err := workspaceRequest(r, p, &req)
	if err != nil {
		return err
	}
	res, err := s.commands.StartAccessReview.Handle(r.Context(), commands.StartAccessReview{WorkspaceID: ws, Name: *req.Name, Meta: s.meta(r, p)})
	if err != nil {
		return withFields(err, fields{"name": "name"})
	}
	return wrote(w, http.StatusCreated, res.Position, struct {
		ReviewID     uuid.UUID `json:"reviewId"`
		AsOfPosition string    `json:"asOfPosition"`
		Items        int       `json:"items"`
		Position     string    `json:"position"`
	}{res.ReviewID, res.Position.String(), res.Items, res.Position.String()})
}

// PUT /v1/workspaces/{ws}/access-reviews/{id}/items/{userId} (Admin).
func (s *Server) decideAccessReviewItem(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, id, err := commandPath(r, p, "id")
	if err != nil {
		return err
	}
	user, err := pathID(r, "userId")
	if err != nil {
		return err
	}
	var req decideItemRequest
	if err := decodeRequest(r, &req, true); err != nil {
		return err
	}
	role := ""
	if req.Role != nil {
		role = *req.Role
	}
	pos, err := s.commands.DecideAccessReviewItem.Handle(r.Context(), commands.DecideAccessReviewItem{
		WorkspaceID: ws, ReviewID: id, UserID: user, Decision: *req.Decision, Role: role, Comment: req.Comment, Meta: s.meta(r, p),
	})
	if err != nil {
		return withFields(err, fields{"decision": "decision", "role": "role", "comment": "comment"})
	}
	return wrote(w, http.StatusOK, pos, positionResponse{pos.String()})
}

// POST /v1/workspaces/{ws}/access-reviews/{id}/complete (Admin).
func (s *Server) completeAccessReview(w http.ResponseWriter, r *http.Request, p principal) error {
	return bodilessWrite(s, w, r, p, "id", s.commands.CompleteAccessReview, func(ws, id uuid.UUID, m commands.Meta) commands.CompleteAccessReview {
		return commands.CompleteAccessReview{WorkspaceID: ws, ReviewID: id, Meta: m}
	})
}

// GET /v1/workspaces/{ws}/access-reviews (Monitor and up).
func (s *Server) listAccessReviews(w http.ResponseWriter, r *http.Request, p principal) error {
	return workspaceRead(s, w, r, p, "", projHistory, func(ctx context.Context, ws, _ uuid.UUID) (itemList[history.ReviewSummary], error) {
		list, err := s.history.Reviews(ctx, ws)
		if list == nil {
			list = []history.ReviewSummary{}
		}
		return itemList[history.ReviewSummary]{list}, err
	})
}

// GET /v1/workspaces/{ws}/access-reviews/{id} (Monitor and up).
func (s *Server) getAccessReview(w http.ResponseWriter, r *http.Request, p principal) error {
	return workspaceRead(s, w, r, p, "id", projHistory, s.history.Review)
}

// evidenceReview is the review as its evidence states it.
type evidenceReview struct {
	Type              string          `json:"type,omitempty"`
	WorkspaceID       uuid.UUID       `json:"workspaceId"`
	ReviewID          uuid.UUID       `json:"reviewId"`
	Name              string          `json:"name"`
	StartedAt         time.Time       `json:"startedAt"`
	StartedBy         *history.Person `json:"startedBy"`
	AsOfPosition      string          `json:"asOfPosition"`
	CompletedAt       *time.Time      `json:"completedAt"`
	CompletedBy       *history.Person `json:"completedBy"`
	CompletedPosition string          `json:"completedPosition"`
	Items             int             `json:"items"`
	Kept              int             `json:"kept"`
	Changed           int             `json:"changed"`
	Revoked           int             `json:"revoked"`
}

// GET /v1/workspaces/{ws}/access-reviews/{id}/evidence (Monitor and up):
// a completed review, every item with its decision, and the audit head at
// the completion (the completion's own entry, which the chain of every
// step before it leads to), signed now; as JSON (default), CSV or NDJSON.
// An open review has no evidence yet: 409 review_incomplete.
func (s *Server) accessReviewEvidence(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, id, err := pathIDs(r, "id")
	if err != nil {
		return err
	}
	w.Header().Set("Vary", "Accept")
	if err := s.mayRead(r, p, ws, projHistory, projMemberships); err != nil {
		return err
	}
	rev, err := s.history.Review(r.Context(), ws, id)
	if err != nil {
		return err
	}
	if rev.Status != history.ReviewCompleted {
		return newProblem(domain.CodeReviewIncomplete, "the review is still open: its evidence comes with its completion")
	}
	if err := s.waitUntil(r, rev.CompletedPosition, projAudit); err != nil {
		return err
	}
	head, found, err := audit.HeadAt(r.Context(), s.cfg.DB, ws, rev.CompletedEventID)
	if err != nil {
		return err
	}
	if !found {
		return newProblem(codeProjectionLag, "the audit history does not hold the review's completion yet; try again")
	}
	signed := s.cfg.AuditSigner.Sign(head, s.cfg.Now())
	er := evidenceReview{
		WorkspaceID: ws, ReviewID: rev.ReviewID, Name: rev.Name, StartedAt: rev.StartedAt, StartedBy: rev.StartedBy,
		AsOfPosition: rev.AsOfPosition, CompletedAt: rev.CompletedAt, CompletedBy: rev.CompletedBy,
		CompletedPosition: rev.CompletedPosition.String(), Items: len(rev.Items),
	}
	for _, it := range rev.Items {
		switch domain.ReviewDecision(deref(it.Decision)) {
		case domain.DecisionKeep:
			er.Kept++
		case domain.DecisionChangeRole:
			er.Changed++
		case domain.DecisionRevoke:
			er.Revoked++
		}
	}
	format := exportFormat(r.Header.Get("Accept"))
	if format == "json" {
		return writeJSON(w, http.StatusOK, struct {
			Review    evidenceReview       `json:"review"`
			Items     []history.ReviewItem `json:"items"`
			AuditHead audit.SignedHead     `json:"auditHead"`
		}{er, rev.Items, signed})
	}
	ext, ct := ".ndjson", "application/x-ndjson"
	if format == audit.FormatCSV {
		ext, ct = ".csv", "text/csv; charset=utf-8"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", `attachment; filename="access-review-`+id.String()+ext+`"`)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	if format == audit.FormatCSV {
		writeEvidenceCSV(bw, er, rev.Items, signed)
	} else {
		writeEvidenceNDJSON(bw, er, rev.Items, signed)
	}
	if err := bw.Flush(); err != nil {
		s.log.InfoContext(r.Context(), "access review evidence: the client left", "request_id", requestID(r.Context()), "err", err)
	}
	return nil
}

// writeEvidenceNDJSON writes the review, an item a line, then the signed
// head: {"type": "review" | "item" | "auditHead", ...}.
func writeEvidenceNDJSON(bw *bufio.Writer, er evidenceReview, items []history.ReviewItem, head audit.SignedHead) {
	line := func(v any) {
		b, _ := json.Marshal(v) // plain structs: never fails
		_, _ = bw.Write(append(b, '\n'))
	}
	er.Type = "review"
	line(er)
	for _, it := range items {
		line(struct {
			Type string `json:"type"`
			history.ReviewItem
		}{"item", it})
	}
	line(struct {
		Type string `json:"type"`
		audit.SignedHead
	}{"auditHead", head})
}

// evidenceCSVHeader names the columns of the CSV evidence: a row per item,
// with the review and the signed head repeated on each, so that any row
// read alone says what it belongs to.
var evidenceCSVHeader = []string{
	"workspaceId", "reviewId", "reviewName", "startedAt", "asOfPosition", "completedAt", "completedPosition",
	"userId", "email", "displayName", "erased", "role", "statusAtStart", "status",
	"grantedById", "grantedByEmail", "grantedAt", "lastLoginAt", "dormant",
	"decision", "newRole", "decidedById", "decidedByEmail", "decidedAt", "comment",
	"auditSeq", "auditHash", "auditSignedAt", "auditKeyId", "auditSignature",
}

func writeEvidenceCSV(bw *bufio.Writer, er evidenceReview, items []history.ReviewItem, head audit.SignedHead) {
	cw := csv.NewWriter(bw)
	_ = cw.Write(evidenceCSVHeader)
	safe := audit.SpreadsheetSafe
	ts := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	person := func(p *history.Person) (string, string) {
		if p == nil {
			return "", ""
		}
		return p.UserID.String(), safe(deref(p.Email))
	}
	rec := make([]string, len(evidenceCSVHeader))
	for _, it := range items {
		gID, gEmail := person(it.GrantedBy)
		dID, dEmail := person(it.DecidedBy)
		newRole := ""
		if it.NewRole != nil {
			newRole = string(*it.NewRole)
		}
		copy(rec, []string{
			er.WorkspaceID.String(), er.ReviewID.String(), safe(er.Name), ts(&er.StartedAt), er.AsOfPosition, ts(er.CompletedAt), er.CompletedPosition,
			it.UserID.String(), safe(deref(it.Email)), safe(deref(it.DisplayName)), strconv.FormatBool(it.Erased), string(it.Role), string(it.StatusAtStart), it.Status,
			gID, gEmail, ts(it.GrantedAt), ts(it.LastLoginAt), strconv.FormatBool(it.Dormant),
			deref(it.Decision), newRole, dID, dEmail, ts(it.DecidedAt), safe(deref(it.Comment)),
			strconv.FormatInt(head.Seq, 10), head.Hash, head.SignedAt.UTC().Format(time.RFC3339Nano), head.KeyID, head.Signature,
		})
		_ = cw.Write(rec)
	}
	cw.Flush()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
