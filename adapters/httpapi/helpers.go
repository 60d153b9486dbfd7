package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
)

// HeaderConsistentWith names the position a read must include.
const HeaderConsistentWith = "X-Consistent-With"

// HeaderPosition carries a write's position, also on 204 answers.
const HeaderPosition = "X-Position"

// pathID reads the UUID path variable name.
func pathID(r *http.Request, name string) (uuid.UUID, error) {
	raw := mux.Vars(r)[name]
	id, err := uuid.Parse(raw)
	if err != nil || len(raw) != 36 {
		return uuid.Nil, newProblem(domain.CodeInvalidInput, name+" in the path must be a UUID").withField(name, "want a UUID")
	}
	return id, nil
}

// decodeBody reads a JSON body into dst. A required body must be there;
// an optional one may be empty (dst keeps its zero value).
func decodeBody(r *http.Request, dst any, required bool) error {
	body, p := readBody(r)
	if p != nil {
		return p
	}
	if body == nil {
		if required {
			return newProblem(codeInvalidJSON, "send a JSON object as the request body")
		}
		return nil
	}
	if p := decodeJSON(body, dst); p != nil {
		return p
	}
	return nil
}

func (s *Server) meta(r *http.Request, p principal) commands.Meta {
	m := commands.Meta{Actor: p.actor(), CorrelationID: requestID(r.Context())}
	if rc := requestContext(r.Context()); rc != nil {
		c := *rc
		m.Request = &c
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
	return nil
}

// wrote answers a successful write: its JSON body with the position, also
// in the X-Position header.
func wrote(w http.ResponseWriter, status int, pos domain.Position, v any) error {
	w.Header().Set(HeaderPosition, pos.String())
	if status == http.StatusNoContent {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		return nil
	}
	return writeJSON(w, status, v)
}

// waitFor waits, if the request names a position, until the named read
// models include it.
func (s *Server) waitFor(r *http.Request, names ...string) error {
	pos, ok, err := consistentWith(r.Header)
	if !ok || err != nil {
		return err
	}
	return s.waitUntil(r, pos, names...)
}

// waitUntil waits, as long as a read waits for X-Consistent-With, until the
// read models names include pos.
func (s *Server) waitUntil(r *http.Request, pos domain.Position, names ...string) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ConsistencyTimeout)
	defer cancel()
	if err := s.cfg.Waiter.WaitFor(ctx, pos, names...); err != nil {
		if r.Context().Err() != nil {
			return r.Context().Err()
		}
		if p := waiterOutage(s.cfg.Waiter, err); p != nil {
			return p
		}
		s.log.WarnContext(r.Context(), "read models lag", "request_id", requestID(r.Context()), "err", err)
		return newProblem(codeProjectionLag, "the read models have not caught up with "+pos.String()+" yet; try again")
	}
	return nil
}

// consistentWith reads X-Consistent-With: ok is false when it is absent or
// blank; a value that is not a position a write answered is invalid_input.
func consistentWith(h http.Header) (pos domain.Position, ok bool, err error) {
	raw := strings.TrimSpace(h.Get(HeaderConsistentWith))
	if raw == "" {
		return domain.Position{}, false, nil
	}
	pos, err = domain.ParsePosition(raw)
	if err != nil || len(raw) > 64 {
		return domain.Position{}, false, newProblem(domain.CodeInvalidInput, HeaderConsistentWith+" must be a position a write answered").
			withField(HeaderConsistentWith, "want a position such as 12-3")
	}
	return pos, true, nil
}

// mayRead waits, if the request names a position, until the named read
// models include it, then checks that p may read workspace ws.
func (s *Server) mayRead(r *http.Request, p principal, ws uuid.UUID, names ...string) error {
	if err := s.waitFor(r, names...); err != nil {
		return err
	}
	return s.authorizeRead(r.Context(), p, ws, domain.PermReadWorkspace)
}

// authorizeRead checks, with the memberships read model's row, that p may
// read ws as domain.Authorize says; the platform's token is not a member.
func (s *Server) authorizeRead(ctx context.Context, p principal, ws uuid.UUID, perm domain.Permission) error {
	if p.system {
		return newProblem(domain.CodeNotAllowed, "the platform's token does not read workspaces; use a member's token")
	}
	role, status, _, found, err := s.members.Permissions(ctx, ws, p.userID)
	if err != nil {
		return err
	}
	var m *domain.Member
	if found {
		m = &domain.Member{UserID: p.userID, Role: role, Status: status}
	}
	return domain.Authorize(m, perm)
}

// asMember refuses the platform's token on a member's command: the platform
// is no member, and telling it so is clearer than "workspace not found".
func asMember(p principal) error {
	if p.system {
		return newProblem(domain.CodeNotAllowed, "the platform's token acts for no member; use a member's token")
	}
	return nil
}
