package esdbtest

import (
	"context"
	"net"
	"strconv"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	"github.com/google/uuid"
)

// gossip answers the cluster-discovery call of esdb+discover:// and
// gossip-seed connection strings: a cluster of one node, the leader, which
// is this server.
type gossip struct {
	gossipapi.UnimplementedGossipServer
	id   uuid.UUID
	addr string
}

func (g gossip) Read(context.Context, *shared.Empty) (*gossipapi.ClusterInfo, error) {
	host, port, _ := net.SplitHostPort(g.addr) // the listener's own address
	p, _ := strconv.ParseUint(port, 10, 16)
	return &gossipapi.ClusterInfo{Members: []*gossipapi.MemberInfo{{
		InstanceId:   wireUUID(g.id),
		TimeStamp:    time.Now().UnixNano() / 100,
		State:        gossipapi.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossipapi.EndPoint{Address: host, Port: uint32(p)},
	}}}, nil
}
