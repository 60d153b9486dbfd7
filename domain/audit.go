package domain

// AcceptAuditDivergence records that a rebuild of the workspace's audit
// history may replace its live entries, which differ from the rebuilt
// ones from seq on (liveHash and rebuiltHash: the entry's hash at seq in
// each chain, "" for none). It changes nothing else; a workspace that does
// not exist has no audit to diverge.
func (w *Workspace) AcceptAuditDivergence(seq int64, liveHash, rebuiltHash string) error {
	if !w.exists {
		return ErrWorkspaceNotFound
	}
	w.record(AuditDivergenceAccepted{WorkspaceID: w.id, Seq: seq, LiveHash: liveHash, RebuiltHash: rebuiltHash})
	return nil
}
