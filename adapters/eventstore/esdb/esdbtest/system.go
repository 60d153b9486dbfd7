package esdbtest

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// isSystem reports whether a stream is one of the server's own: their
// names start with "$" (metadata streams with "$$").
func isSystem(stream string) bool { return strings.HasPrefix(stream, "$") }

// seed writes what a fresh server writes before any client does: the
// first epoch, the default users, the settings and the scavenge stream's
// metadata. Every subscription to $all meets them first.
func (st *store) seed() {
	st.mu.Lock()
	defer st.mu.Unlock()
	leader := st.leaderLocked()
	st.writeEpochLocked(leader)
	write := func(stream, eventType, data string) {
		st.writeLocked(leader, []*record{st.systemEventLocked(stream, eventType, data)})
	}
	write("$$$scavenges", "$metadata", `{"$maxAge":2592000}`)
	for _, u := range []string{"admin", "ops"} {
		write("$user-"+u, "$user", fmt.Sprintf(`{"loginName":%q,"fullName":%q,"groups":["$%ss"]}`, u, u, u))
		write("$users", "$UserCreated", u)
	}
	write("$settings", "$settings",
		`{"$userStreamAcl":{"$r":"$all","$w":"$all","$d":"$all","$mr":"$all","$mw":"$all"},"$systemStreamAcl":{"$r":"$admins","$w":"$admins","$d":"$admins","$mr":"$admins","$mw":"$admins"}}`)
}

// systemEventLocked makes the next event of a system stream.
func (st *store) systemEventLocked(stream, eventType, data string) *record {
	_, last, _ := st.streams[stream].view(len(st.log))
	return &record{
		event: true, id: uuid.New(), stream: stream, revision: last + 1,
		eventType: eventType, contentType: "application/json", data: []byte(data),
	}
}

// writeEpochLocked writes a new epoch, as a node does when it becomes the
// leader: an epoch record (no event) and an event in $epoch-information.
func (st *store) writeEpochLocked(leader *Server) {
	start := st.end
	st.writeLocked(leader, []*record{{}})
	st.epoch++
	id := uuid.Nil
	if leader != nil {
		id = leader.id
	}
	e := st.systemEventLocked("$epoch-information", "$epoch-information",
		fmt.Sprintf(`{"epochNumber":%d,"epochPosition":%d,"epochId":%q,"leaderInstanceId":%q}`, st.epoch-1, start, uuid.NewString(), id))
	st.writeLocked(leader, []*record{e})
}

// WriteSystemEvent writes an event to a system stream ("$"-prefixed) as the
// server itself does (statistics, scavenges, projections): it appears in
// $all, between the clients' events. It returns the event's position.
func (s *Server) WriteSystemEvent(stream, eventType string, data []byte) uint64 {
	if !isSystem(stream) {
		panic("esdbtest: WriteSystemEvent to " + stream + ": not a system stream")
	}
	st := s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	e := st.systemEventLocked(stream, eventType, string(data))
	e.data = data
	st.writeLocked(st.leaderLocked(), []*record{e})
	return e.position
}

// Scavenge writes the records a scavenge leaves in $all: its start and
// completion, in "$scavenges-<id>" and "$scavenges". (Nothing is removed.)
func (s *Server) Scavenge() {
	id := uuid.NewString()
	started := fmt.Sprintf(`{"scavengeId":%q,"nodeEndpoint":%q}`, id, s.Addr())
	s.WriteSystemEvent("$scavenges", "$scavengeStarted", []byte(started))
	s.WriteSystemEvent("$scavenges-"+id, "$scavengeStarted", []byte(started))
	done := fmt.Sprintf(`{"scavengeId":%q,"nodeEndpoint":%q,"result":"Success","error":"","timeTaken":"00:00:00.01","spaceSaved":0}`, id, s.Addr())
	s.WriteSystemEvent("$scavenges-"+id, "$scavengeCompleted", []byte(done))
	s.WriteSystemEvent("$scavenges", "$scavengeCompleted", []byte(done))
}

// WriteStats writes a statistics record, as a node that writes its stats
// to the database does every StatsPeriodSec.
func (s *Server) WriteStats() {
	data := fmt.Sprintf(`{"proc-startTime":%q,"proc-cpu":1.5,"proc-mem":123456789,"sys-freeMem":987654321,"es-queue-Main Queue-length":0}`,
		time.Now().UTC().Format(time.RFC3339Nano))
	s.WriteSystemEvent("$stats-"+s.Addr(), "$statsCollected", []byte(data))
}
