// Package esdbtest is an in-process gRPC server that speaks the part of
// EventStoreDB's / KurrentDB's Streams and Gossip services that the
// official Go client (v4) uses, and answers as a real server does, so that
// the esdb adapter can be proven against it: EventStoreDB cannot run on
// our machines. It keeps everything in memory and is no database. Where a
// behaviour differs between server versions, it follows KurrentDB
// 24.10.5 / 25.1 and later; docs/esdb.md lists where it still differs
// from a real server.
//
// # A single node
//
// Start (or StartOn, on a given address) starts one node that leads. Its
// URL is an esdb:// connection string; esdb+discover:// and gossip-seed
// strings work too, as gossip answers a cluster of one. Restart restarts
// it with its data; Stop stops it as a failure would; SetStateFor(
// StatePreLeader, d) is an election as its clients see it.
//
// # A cluster
//
// StartCluster starts three nodes (three listeners on 127.0.0.1) sharing
// one log, each answering gossip with the whole membership. Node 0 leads.
// Cluster.URL names the three as gossip seeds, Cluster.DiscoverURL reaches
// them through node 0's gossip.
//
//   - Followers serve reads and subscriptions from their own copy, and
//     forward appends (and deletes) to the leader, unless the call carries
//     the gRPC header "requires-leader: true": then they answer "not
//     leader" (NotFound "Leader info available", with the trailers
//     exception=not-leader, leader-endpoint-host and leader-endpoint-port,
//     which the client turns into ErrorCodeNotLeader and a reconnection
//     to that address). On a subscription this comes after the
//     confirmation, at the first catch-up read, as on the real server.
//   - Replication lag: SetReplicationLag(i, d) makes follower i read
//     records only once they have been committed for d;
//     HoldReplication(i) freezes its copy (and its acknowledgements)
//     until ReleaseReplication(i).
//   - Elections: Elect(i) makes node i lead at once; Election(i, d) puts
//     every node in an election (Unknown, node i PreLeader) for d first,
//     during which appends answer "Server Is Not Ready" and discovery
//     finds no node it may connect to. Server.SetState sets any state.
//   - StallReplication: appends are written but not committed; they
//     answer Aborted "Operation timed out: Commit phase timeout." after
//     the write timeout (WithWriteTimeout), and commit on
//     ResumeReplication.
//
// # Appends and idempotency
//
// An append is decided as KurrentDB's IndexWriter.CheckCommit does:
//
//   - with an exact expected revision (or no-stream) below the stream's,
//     the ids must be the stream's events right after that revision: then
//     the server answers the original result (revision and position),
//     otherwise wrong expected version. This check reads the index, so it
//     holds for as long as the events exist;
//   - with the expected revision equal to the stream's, there is no check:
//     the same ids are stored again;
//   - with any or stream-exists, the ids are looked up only in the
//     leader's bounded cache of recent writes (WithIdempotencyCache),
//     emptied by a restart and not carried over to a new leader: past it,
//     a repeat is stored again. Ids found only in part (or in another
//     stream, for the first) answer wrong expected version;
//   - a repeat of a write not yet committed is dropped, and times out;
//   - appends larger than WithMaxAppendSize (1 MiB by default, the limit
//     of servers up to 25.0) answer InvalidArgument "Maximum Append Size
//     of 1048576 Exceeded." with exception=maximum-append-size-exceeded.
//
// Delete soft-deletes a stream ("$tb" in its metadata stream: reads
// answer "not found"; an append with any or no-stream brings it back from
// the next revision; stream-exists answers "stream deleted"); Tombstone
// deletes it for good (reads and appends answer FailedPrecondition with
// exception=stream-deleted, which the client turns into
// ErrorCodeStreamDeleted).
//
// # $all and subscriptions
//
// Positions are byte offsets of records in a log (commit and prepare
// position alike for events), which starts with the server's own system
// records ($epoch-information, $users, $settings, $$$scavenges); each
// election or restart writes a new epoch. WriteSystemEvent, Scavenge and
// WriteStats add more. Reading $all from a position inside a record
// answers InvalidArgument "Trying to read from an invalid position.".
// Subscriptions to $all behave as described on the subscription type:
// confirmation, catch-up in pages with checkpoints every window ×
// multiplier records considered (as the client sends them), a checkpoint
// lagging the end when the catch-up ends, caught-up, live events, and a
// second caught-up after falling behind.
//
// # Faults
//
// Inject(op, fault, n) makes a node answer the next n calls of one kind
// (OpAppend, OpReadStream, OpReadAll, OpSubscribe, OpDelete) with one of
// the errors a real server sends (Timeout, NotReady, TooBusy,
// NoLeaderInfo, NotLeader, InvalidPosition, AccessDenied), every call
// with n < 0 until ClearFaults. FailAppendsAfterStoring makes appends
// store and then fail with Unavailable (a lost reply); DropSubscriptions
// ends live subscriptions with Unavailable.
package esdbtest
