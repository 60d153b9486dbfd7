package esdbtest

import (
	"context"
	"net"
	"strconv"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
)

// gossip answers the cluster-discovery call of esdb+discover:// and
// gossip-seed connection strings with every node of the cluster (one for
// a single server): its state, whether it is alive, and its address.
type gossip struct {
	gossipapi.UnimplementedGossipServer
	s *Server
}

func (g gossip) Read(context.Context, *shared.Empty) (*gossipapi.ClusterInfo, error) {
	st := g.s.st
	st.mu.Lock()
	defer st.mu.Unlock()
	info := &gossipapi.ClusterInfo{}
	now := time.Now().UnixNano() / 100
	for _, n := range st.nodes {
		host, port, _ := net.SplitHostPort(n.addr)
		p, _ := strconv.ParseUint(port, 10, 16)
		info.Members = append(info.Members, &gossipapi.MemberInfo{
			InstanceId:   wireUUID(n.id),
			TimeStamp:    now,
			State:        n.state,
			IsAlive:      n.alive,
			HttpEndPoint: &gossipapi.EndPoint{Address: host, Port: uint32(p)},
		})
	}
	return info, nil
}
