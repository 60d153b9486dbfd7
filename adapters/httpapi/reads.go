package httpapi

import (
	"context"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/audit"
	"github.com/usersd/usersd/projections/history"
	"github.com/usersd/usersd/projections/memberships"
	"github.com/usersd/usersd/projections/userlist"
)

func invalidParam(name, msg string) error {
	return newProblem(domain.CodeInvalidInput, name+": "+msg).withField(name, msg)
}

// queryLimit reads the page size "limit": absent is 0 (the read model's
// default); anything but a whole number from 1 to most (empty, 0, negative,
// more than most, not a number) is the same 400 naming limit on every list, rather
// than each read model clamping or refusing in its own way.
func queryLimit(q url.Values, most int) (int, error) {
	if !q.Has("limit") {
		return 0, nil
	}
	n, err := strconv.Atoi(q.Get("limit"))
	if err != nil || n < 1 || n > most {
		return 0, invalidParam("limit", "want a whole number from 1 to "+strconv.Itoa(most))
	}
	return n, nil
}

func queryID(q url.Values, name string) (uuid.UUID, error) {
	raw := q.Get(name)
	if raw == "" {
		return uuid.Nil, nil
	}
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, invalidParam(name, "want a user id (a UUID)")
	}
	return id, nil
}

func queryTime(q url.Values, name string) (time.Time, error) {
	raw := q.Get(name)
	if raw == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, invalidParam(name, "want an RFC 3339 time such as 2024-05-01T00:00:00Z")
	}
	return t, nil
}

// paramProblem answers an error of a read model: one about a query
// parameter (its Field) reads as invalidParam's do.
func paramProblem(err error) error {
	var de *domain.Error
	if errors.As(err, &de) && de.Code == domain.CodeInvalidInput && de.Field != "" {
		return invalidParam(de.Field, de.Message)
	}
	return toProblem(err, nil)
}

// listPage is a page of a list: its items and the cursor of the next page,
// null on the last. It must have no methods: userListResponse embeds it,
// and a MarshalJSON here would take over that answer and drop its own
// fields.
type listPage[T any] struct {
	Items      []T     `json:"items"`
	NextCursor *string `json:"nextCursor"`
}

func pageOf[T any](items []T, nextCursor string) listPage[T] {
	return listPage[T]{items, optString(nextCursor)}
}

type userListResponse struct {
	listPage[userlist.Row]
	// ActiveAdmins and SingleAdmin (an extension) flag a workspace that
	// has a single active Admin; the product recommends at least two.
	ActiveAdmins int  `json:"activeAdmins"`
	SingleAdmin  bool `json:"singleAdmin"`
}

// userListOf answers a page of the user list, now or as of a moment, with
// the workspace's count of active Admins then.
func userListOf(page userlist.Page, admins int) userListResponse {
	return userListResponse{listPage: pageOf(page.Items, page.NextCursor), ActiveAdmins: admins, SingleAdmin: admins == 1}
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// GET /v1/workspaces/{ws}/users (Monitor and up).
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, err := pathID(r, "ws")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := queryLimit(q, userlist.MaxLimit)
	if err != nil {
		return err
	}
	f := userlist.Filter{Status: q.Get("status"), Role: q.Get("role"), Q: q.Get("q"), Limit: limit, Cursor: q.Get("cursor"),
		InactiveSince: q.Get("inactiveSince"), Sort: q.Get("sort")}
	if q.Has("asOf") {
		return s.listUsersAsOf(w, r, p, ws, q.Get("asOf"), f)
	}
	if err := s.mayRead(r, p, ws, projUserList, projMemberships); err != nil {
		return err
	}
	page, err := s.users.List(r.Context(), ws, f)
	if err != nil {
		return paramProblem(err)
	}
	admins, err := s.users.AdminSummary(r.Context(), ws)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userListOf(page, admins))
}

// listUsersAsOf answers GET /v1/workspaces/{ws}/users?asOf=: the list as
// it was at a position (the event at it included) or an instant, from the
// history read model.
func (s *Server) listUsersAsOf(w http.ResponseWriter, r *http.Request, p principal, ws uuid.UUID, raw string, f userlist.Filter) error {
	at, err := history.ParseAsOf(raw)
	if err != nil {
		return paramProblem(err)
	}
	// The past list has the filters of api.md's asOf row; dormant access
	// (inactiveSince, sort) reads the current list's login order.
	for name, v := range map[string]string{"inactiveSince": f.InactiveSince, "sort": f.Sort} {
		if v != "" {
			return invalidParam(name, name+" does not combine with asOf: a past list pages by display name, with status, role and q")
		}
	}
	if err := s.mayRead(r, p, ws, projHistory, projMemberships); err != nil {
		return err
	}
	page, err := s.history.List(r.Context(), ws, at, f)
	if err != nil {
		return paramProblem(err)
	}
	admins, err := s.history.AdminSummary(r.Context(), ws, at)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, userListOf(page, admins))
}

// GET /v1/workspaces/{ws}/users/{userId}/history (Monitor and up): the
// person's intervals of role and status, oldest first; 404 for someone who
// was never in the workspace's list.
func (s *Server) memberHistory(w http.ResponseWriter, r *http.Request, p principal) error {
	return workspaceRead(s, w, r, p, "userId", projHistory, func(ctx context.Context, ws, user uuid.UUID) (itemList[history.Item], error) {
		list, err := userFound(s.history.History(ctx, ws, user))
		return itemList[history.Item]{list}, err
	})
}

// GET /v1/workspaces/{ws}/users/{userId} (Monitor and up).
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, p principal) error {
	return workspaceRead(s, w, r, p, "userId", projUserList, func(ctx context.Context, ws, user uuid.UUID) (userlist.Row, error) {
		return userFound(s.users.Get(ctx, ws, user))
	})
}

// userFound answers what a read model found about a person, or 404
// user_not_found for someone it does not hold.
func userFound[T any](v T, found bool, err error) (T, error) {
	if err == nil && !found {
		err = domain.ErrUserNotFound
	}
	return v, err
}

// workspaceRead answers a read of a workspace's data (Monitor and up): the
// path's workspace and, unless name is "", the id the path names under
// name; once the read model named model and the memberships include the
// request's position and p may read the workspace, what get finds, as JSON.
func workspaceRead[T any](s *Server, w http.ResponseWriter, r *http.Request, p principal, name, model string, get func(ctx context.Context, ws, id uuid.UUID) (T, error)) error {
	var ws, id uuid.UUID
	var err error
	if name == "" {
		ws, err = pathID(r, "ws")
	} else {
		ws, id, err = pathIDs(r, name)
	}
	if err != nil {
		return err
	}
	if err := s.mayRead(r, p, ws, model, projMemberships); err != nil {
		return err
	}
	v, err := get(r.Context(), ws, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, v)
}

// itemList is a list's answer: {"items": [...]}.
type itemList[T any] struct {
	Items []T `json:"items"`
}

// GET /v1/workspaces/{ws}/users/{userId}/permissions: the user itself, or
// Monitor and up.
func (s *Server) permissions(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, user, err := pathIDs(r, "userId")
	if err != nil {
		return err
	}
	if err := s.waitFor(r, projMemberships); err != nil {
		return err
	}
	self := !p.system && p.userID == user
	if !self {
		if err := s.authorizeRead(r.Context(), p, ws, domain.PermReadWorkspace); err != nil {
			return err
		}
	}
	role, status, perms, found, err := s.members.Permissions(r.Context(), ws, user)
	if err != nil {
		return err
	}
	if !found {
		if self {
			return domain.ErrWorkspaceNotFound
		}
		return domain.ErrUserNotFound
	}
	return writeJSON(w, http.StatusOK, struct {
		Role        domain.Role         `json:"role"`
		Status      domain.Status       `json:"status"`
		Permissions []domain.Permission `json:"permissions"`
	}{role, status, perms})
}

// GET /v1/me/workspaces: the workspaces the caller has joined.
func (s *Server) myWorkspaces(w http.ResponseWriter, r *http.Request, p principal) error {
	if p.system {
		return newProblem(domain.CodeNotAllowed, "the platform's token is not a user's")
	}
	if err := s.waitFor(r, projMemberships); err != nil {
		return err
	}
	list, err := s.members.ForUser(r.Context(), p.userID)
	if err != nil {
		return err
	}
	if list == nil {
		list = []memberships.Membership{}
	}
	return writeJSON(w, http.StatusOK, list)
}

// auditFilter reads the audit query parameters.
func auditFilter(q url.Values) (audit.Filter, error) {
	var f audit.Filter
	var err error
	if f.Actor, err = queryID(q, "actor"); err != nil {
		return f, err
	}
	if f.Target, err = queryID(q, "target"); err != nil {
		return f, err
	}
	f.Action = q.Get("action")
	if f.From, err = queryTime(q, "from"); err != nil {
		return f, err
	}
	if f.To, err = queryTime(q, "to"); err != nil {
		return f, err
	}
	if f.Limit, err = queryLimit(q, audit.MaxLimit); err != nil {
		return f, err
	}
	f.Cursor = q.Get("cursor")
	return f, nil
}

// exportFormat picks the audit answer's form from Accept: the JSON page, or
// the whole history streamed as NDJSON or CSV. The highest quality wins;
// ties go to the first listed.
func exportFormat(accept string) string {
	best, bestQ := "", -1.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		var format string
		switch mt {
		case "application/x-ndjson", "application/ndjson":
			format = audit.FormatNDJSON
		case "text/csv":
			format = audit.FormatCSV
		case "application/json", "*/*", "application/*":
			format = "json"
		default:
			continue
		}
		if q > bestQ && q > 0 {
			best, bestQ = format, q
		}
	}
	if best == "" {
		return "json"
	}
	return best
}

// GET /v1/workspaces/{ws}/audit (Monitor and up).
func (s *Server) auditList(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, err := pathID(r, "ws")
	if err != nil {
		return err
	}
	f, err := auditFilter(r.URL.Query())
	if err != nil {
		return err
	}
	w.Header().Set("Vary", "Accept")
	if err := s.mayRead(r, p, ws, projAudit, projMemberships); err != nil {
		return err
	}
	format := exportFormat(r.Header.Get("Accept"))
	if format == "json" {
		page, err := audit.List(r.Context(), s.cfg.DB, s.cfg.Keys, ws, f)
		if err != nil {
			return paramProblem(err)
		}
		return writeJSON(w, http.StatusOK, pageOf(page.Items, page.NextCursor))
	}
	st, err := s.openStream(w, r, p.userID.String(), func(h http.Header) {
		ext, ct := ".ndjson", "application/x-ndjson"
		if format == audit.FormatCSV {
			ext, ct = ".csv", "text/csv; charset=utf-8"
		}
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Disposition", `attachment; filename="audit-`+ws.String()+ext+`"`)
	})
	if err != nil {
		return err
	}
	defer st.close()
	if err := audit.ExportSigned(r.Context(), s.cfg.DB, s.cfg.Keys, ws, f, st, format, s.cfg.AuditSigner); err != nil {
		if !st.started {
			return paramProblem(err)
		}
		s.abortStream(r, st, "audit export", err)
	}
	if err := st.finish(); err != nil {
		s.abortStream(r, st, "audit export", err)
	}
	return nil
}

// GET /v1/workspaces/{ws}/audit/verify[?contains={seq}:{hash}] (Monitor
// and up).
func (s *Server) auditVerify(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, err := pathID(r, "ws")
	if err != nil {
		return err
	}
	var kept *audit.Kept
	if q := r.URL.Query(); q.Has("contains") {
		k, err := audit.ParseKept("contains", q.Get("contains"))
		if err != nil {
			return paramProblem(err)
		}
		kept = &k
	}
	if err := s.mayRead(r, p, ws, projAudit, projMemberships); err != nil {
		return err
	}
	// A verify reads the whole chain on one connection: it takes a slot
	// as an export does.
	release, err := s.takeSlot(p.userID.String())
	if err != nil {
		return err
	}
	defer release()
	res, err := audit.VerifyKept(r.Context(), s.cfg.DB, ws, kept)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// GET /v1/workspaces/{ws}/audit/head (Monitor and up): the chain's head,
// signed now. One read through the primary key, one signature.
func (s *Server) auditHead(w http.ResponseWriter, r *http.Request, p principal) error {
	return workspaceRead(s, w, r, p, "", projAudit, func(ctx context.Context, ws, _ uuid.UUID) (audit.SignedHead, error) {
		head, err := audit.ReadHead(ctx, s.cfg.DB, ws)
		if err != nil {
			return audit.SignedHead{}, err
		}
		return s.cfg.AuditSigner.Sign(head, s.cfg.Now()), nil
	})
}

// GET /v1/audit/keys (anyone): the public keys that check signed heads,
// the current one first.
func (s *Server) auditKeys(w http.ResponseWriter, _ *http.Request) {
	_ = writeJSON(w, http.StatusOK, struct {
		Keys []audit.Key `json:"keys"`
	}{s.cfg.AuditSigner.Keys()})
}
