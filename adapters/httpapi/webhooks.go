package httpapi

import (
	"cmp"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/usersd/usersd/commands"
	"github.com/usersd/usersd/domain"
	"github.com/usersd/usersd/projections/webhooks"
)

// Webhooks (api.md, second release; docs/integrations.md): an Admin's.
// The writes go through the commands; the reads wait for the dispatcher
// (projections/webhooks), which applies the subscriptions in event order.

var projWebhooks = webhooks.Name

type subscribeWebhookRequest struct {
	URL    *string  `json:"url"`
	Events []string `json:"events"`
}

func (q *subscribeWebhookRequest) lacks() string {
	return cmp.Or(lacking(q.URL == nil, "url"), lacking(q.Events == nil, "events"))
}

type replayWebhookRequest struct {
	FromPosition *string `json:"fromPosition"`
}

// POST /v1/workspaces/{ws}/webhooks (Admin): 201 with the secret, shown
// this once.
func (s *Server) subscribeWebhook(w http.ResponseWriter, r *http.Request, p principal) error {
	var req subscribeWebhookRequest
	ws, err := workspaceRequest(r, p, &req)
	if err != nil {
		return err
	}
	res, err := s.commands.SubscribeWebhook.Handle(r.Context(), commands.SubscribeWebhook{
		WorkspaceID: ws, URL: *req.URL, Events: req.Events, Meta: s.meta(r, p),
	})
	if err != nil {
		return withFields(err, fields{"url": "url", "events": "events"})
	}
	return wrote(w, http.StatusCreated, res.Position, struct {
		WebhookID uuid.UUID `json:"webhookId"`
		Secret    string    `json:"secret"`
		Position  string    `json:"position"`
	}{res.WebhookID, res.Secret, res.Position.String()})
}

// mayAdminister waits, if the request names a position, until the
// dispatcher and the memberships include it, then checks that p is an
// Admin of ws: the webhooks' reads are an Admin's.
func (s *Server) mayAdminister(r *http.Request, p principal, ws uuid.UUID) error {
	if err := s.waitFor(r, projWebhooks, projMemberships); err != nil {
		return err
	}
	return s.authorizeRead(r.Context(), p, ws, domain.PermAdministerSystem)
}

// GET /v1/workspaces/{ws}/webhooks (Admin): no secrets.
func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, err := pathID(r, "ws")
	if err != nil {
		return err
	}
	if err := s.mayAdminister(r, p, ws); err != nil {
		return err
	}
	items, err := s.hooks.List(r.Context(), ws)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, itemList[webhooks.Webhook]{items})
}

// DELETE /v1/workspaces/{ws}/webhooks/{webhookId} (Admin).
func (s *Server) removeWebhook(w http.ResponseWriter, r *http.Request, p principal) error {
	return bodilessWrite(s, w, r, p, "webhookId", s.commands.RemoveWebhook, func(ws, hook uuid.UUID, m commands.Meta) commands.RemoveWebhook {
		return commands.RemoveWebhook{WorkspaceID: ws, WebhookID: hook, Meta: m}
	})
}

// GET /v1/workspaces/{ws}/webhooks/{webhookId}/deliveries (Admin): the
// delivery log, newest first, by pages.
func (s *Server) webhookDeliveries(w http.ResponseWriter, r *http.Request, p principal) error {
	ws, hook, err := pathIDs(r, "webhookId")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	limit, err := queryLimit(q, webhooks.MaxLimit)
	if err != nil {
		return err
	}
	if err := s.mayAdminister(r, p, ws); err != nil {
		return err
	}
	page, err := s.hooks.Deliveries(r.Context(), ws, hook, limit, q.Get("cursor"))
	if err != nil {
		return paramProblem(err)
	}
	return writeJSON(w, http.StatusOK, pageOf(page.Items, page.NextCursor))
}

// POST /v1/workspaces/{ws}/webhooks/{webhookId}/replay (Admin): the
// workspace's events after fromPosition (absent: from the start) are
// delivered again, in the background: 202.
func (s *Server) replayWebhook(w http.ResponseWriter, r *http.Request, p principal) error {
	var req replayWebhookRequest
	ws, hook, err := pathRequest(r, p, "webhookId", &req, false)
	if err != nil {
		return err
	}
	var from domain.Position
	if req.FromPosition != nil && strings.TrimSpace(*req.FromPosition) != "" {
		if from, err = domain.ParsePosition(*req.FromPosition); err != nil || len(*req.FromPosition) > 64 {
			return newProblem(domain.CodeInvalidInput, "fromPosition must be a position such as a write or the event feed answered").
				withField("fromPosition", "want a position such as 12-3")
		}
	}
	pos, err := s.commands.ReplayWebhook.Handle(r.Context(), commands.ReplayWebhook{WorkspaceID: ws, WebhookID: hook, From: from, Meta: s.meta(r, p)})
	if err != nil {
		return err
	}
	return wrote(w, http.StatusAccepted, pos, positionResponse{pos.String()})
}
