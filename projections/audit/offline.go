package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/usersd/usersd/internal/pii"
)

// Offline verification of an NDJSON export: what an auditor runs on their
// own machine (usersd audit verify -file), with the export and the public
// keys, and no database. Each entry line is turned back into the stored row
// it came from and hashed with the same function as Apply and Verify
// (computeHash), so the online and offline checks cannot drift apart.

// maxExportLine bounds one line of an export read back (entries are a few
// hundred bytes; a user agent may make one longer).
const maxExportLine = 16 << 20

// ExportReport is what VerifyExport found.
type ExportReport struct {
	// OK is true when every entry's hash matches its content, each entry
	// links to the one before it, the last line is a checkpoint over the
	// last entry whose signature holds, and (unless the export was
	// declared filtered) seqs run from 1 without a gap.
	OK          bool
	WorkspaceID uuid.UUID
	Entries     int
	// Complete is true when the seqs run from 1 to the last without a gap:
	// the whole chain up to the checkpoint.
	Complete bool
	// Linked counts the entries the checkpoint vouches for: the last entry
	// and those before it that link to it without a gap (every entry of a
	// complete export).
	Linked int
	// Checkpoint is the signed head the export ends with, if it has one.
	Checkpoint *SignedHead
	// FirstBrokenSeq names the first entry that does not check out (0 when
	// the trouble is not an entry's: a line that is not an entry, a
	// missing or bad checkpoint); FirstBrokenLine its line, from 1.
	FirstBrokenSeq  int64
	FirstBrokenLine int
	// Problem says what is wrong, for a person.
	Problem string
}

// ExportCheck says what VerifyExport checks beyond the chain and the
// checkpoint.
type ExportCheck struct {
	// Filtered accepts gaps in the seqs, as a filtered export has: only the
	// entries that link to the checkpoint without a gap are then vouched
	// for (Linked). Without it a gap (an entry removed from the file) is a
	// break.
	Filtered bool
	// Contains, if set, is an entry kept from earlier (a signed head, an
	// earlier export's checkpoint): the export must hold it, vouched for by
	// its checkpoint, or the chain was rewritten or cut since.
	Contains *Kept
}

// VerifyExport checks an NDJSON audit export (ExportSigned) read from r
// against the public keys: it recomputes each entry's hash from its
// content, checks that consecutive entries link, and that the last line is
// a checkpoint over the last entry signed by one of keys; then what opts
// asks. The error is for reading r only; what is wrong with the export is
// in the report.
func VerifyExport(r io.Reader, keys []Key, opts ExportCheck) (ExportReport, error) {
	v := exportVerifier{keys: keys, opts: opts, foundAt: -1, rep: ExportReport{OK: true, Complete: true}}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := readLine(br)
		if len(line) > 0 || (err == nil) {
			v.line++
			v.add(line)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ExportReport{}, err
		}
	}
	v.end()
	return v.rep, nil
}

// readLine reads one line without its newline; io.EOF with the last one
// if it has none, or with nothing at the end.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxExportLine {
			return nil, fmt.Errorf("a line is longer than %d bytes: not an audit export", maxExportLine)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return line, err
		}
	}
}

type exportVerifier struct {
	keys []Key
	opts ExportCheck
	rep  ExportReport
	// foundAt is the index of the entry opts.Contains asks about, -1
	// while not found.
	foundAt int
	line    int
	// prev is the last entry read: its seq and hash.
	prev      chainHead
	entries   bool
	ended     bool // the checkpoint was read
	runStart  int  // Entries when the current gap-free run began
	buf       []byte
	workspace uuid.UUID
}

// broken records the first problem.
func (v *exportVerifier) broken(seq int64, format string, args ...any) {
	if !v.rep.OK {
		return
	}
	v.rep.OK = false
	v.rep.FirstBrokenSeq = seq
	v.rep.FirstBrokenLine = v.line
	v.rep.Problem = fmt.Sprintf(format, args...)
}

func (v *exportVerifier) add(line []byte) {
	if v.ended {
		v.broken(0, "line %d: a line after the checkpoint", v.line)
		return
	}
	if len(bytes.TrimSpace(line)) == 0 {
		v.broken(0, "line %d: an empty line", v.line)
		return
	}
	if err := checkJSON(line); err != nil {
		v.broken(0, "line %d: %v", v.line, err)
		return
	}
	var kind struct {
		Type *string `json:"type"`
	}
	_ = json.Unmarshal(line, &kind) // checkJSON has parsed it
	if kind.Type != nil {
		if *kind.Type != CheckpointType {
			v.broken(0, "line %d: unknown type %q", v.line, *kind.Type)
			return
		}
		v.checkpoint(line)
		return
	}
	v.entry(line)
}

func (v *exportVerifier) entry(line []byte) {
	var r row
	shown, err := decodeEntryLine(line, &r)
	if err != nil {
		v.broken(0, "line %d: not an audit entry: %v", v.line, err)
		return
	}
	ws := uuid.UUID(r.workspaceID.Bytes)
	switch {
	case v.rep.Entries == 0:
		v.workspace = ws
		v.rep.WorkspaceID = ws
	case ws != v.workspace:
		v.broken(r.seq, "seq %d (line %d) belongs to workspace %s, the export to %s", r.seq, v.line, ws, v.workspace)
	}
	v.rep.Entries++
	switch {
	case v.entries && r.seq <= v.prev.seq:
		v.broken(r.seq, "seq %d (line %d) comes after seq %d: entries must be in increasing seq order", r.seq, v.line, v.prev.seq)
	case r.seq != v.prev.seq+1:
		v.rep.Complete = false
		v.runStart = v.rep.Entries - 1
		if !v.opts.Filtered {
			v.broken(r.seq, "seq %d (line %d) follows seq %d: entries %d to %d are not in the export (if it was filtered, say so with -filtered)",
				r.seq, v.line, v.prev.seq, v.prev.seq+1, r.seq-1)
		}
	case r.prevHash != v.prev.hash:
		v.broken(r.seq, "seq %d (line %d) does not link to seq %d: its prevHash %q is not that entry's hash %q", r.seq, v.line, v.prev.seq, r.prevHash, v.prev.hash)
	}
	if k := v.opts.Contains; k != nil && r.seq == k.Seq && r.hash == k.Hash {
		v.foundAt = v.rep.Entries - 1
	}
	want, buf := computeHash(v.buf, r.prevHash, &r)
	v.buf = buf
	if r.hash != want {
		v.broken(r.seq, "seq %d (line %d): its content does not match its hash %q (recomputed %q)", r.seq, v.line, r.hash, want)
	}
	if shown != nil {
		v.broken(r.seq, "seq %d (line %d): %v", r.seq, v.line, shown)
	}
	v.prev = chainHead{seq: r.seq, hash: r.hash}
	v.entries = true
}

func (v *exportVerifier) checkpoint(line []byte) {
	v.ended = true
	var c struct {
		Type        string    `json:"type"`
		WorkspaceID uuid.UUID `json:"workspaceId"`
		Seq         *int64    `json:"seq"`
		Hash        *string   `json:"hash"`
		SignedAt    time.Time `json:"signedAt"`
		KeyID       string    `json:"keyId"`
		Signature   string    `json:"signature"`
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Seq == nil || c.Hash == nil {
		v.broken(0, "line %d: not a checkpoint: %v", v.line, errOr(err, "seq or hash missing"))
		return
	}
	sh := SignedHead{WorkspaceID: c.WorkspaceID, Seq: *c.Seq, Hash: *c.Hash, SignedAt: c.SignedAt, KeyID: c.KeyID, Signature: c.Signature}
	v.rep.Checkpoint = &sh
	if v.rep.Entries == 0 {
		v.rep.WorkspaceID = sh.WorkspaceID
	}
	if err := VerifyHead(sh, v.keys); err != nil {
		v.broken(0, "the checkpoint (line %d) is not signed by a key given: %v", v.line, err)
		return
	}
	switch {
	case sh.WorkspaceID != v.rep.WorkspaceID:
		v.broken(0, "the checkpoint (line %d) is for workspace %s, the entries for %s", v.line, sh.WorkspaceID, v.rep.WorkspaceID)
	case sh.Seq != v.prev.seq || sh.Hash != v.prev.hash:
		v.broken(v.prev.seq, "the checkpoint (line %d) is over seq %d with hash %q, but the last entry is seq %d with hash %q: entries were cut from the end or changed",
			v.line, sh.Seq, sh.Hash, v.prev.seq, v.prev.hash)
	}
}

func (v *exportVerifier) end() {
	if !v.ended {
		v.broken(0, "no checkpoint line at the end: the export was cut short, or is not from a usersd that signs its exports")
	}
	if k := v.opts.Contains; k != nil && v.foundAt < v.runStart {
		v.broken(k.Seq, "the export does not hold seq %d with hash %q, kept from earlier, linked to its checkpoint: the chain was rewritten or cut since", k.Seq, k.Hash)
	}
	if v.rep.OK {
		v.rep.Linked = v.rep.Entries - v.runStart
	}
}

func errOr(err error, msg string) string {
	if err != nil {
		return err.Error()
	}
	return msg
}

// checkJSON refuses what a lenient decoder would read one way and another
// tool another: invalid UTF-8 and a name given twice in one object.
func checkJSON(line []byte) error {
	if !utf8.Valid(line) {
		return errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := checkValue(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value on the line")
	}
	return nil
}

func checkValue(dec *json.Decoder) error {
	t, err := dec.Token()
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	switch t {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return fmt.Errorf("not JSON: %w", err)
			}
			key, _ := k.(string)
			if seen[key] {
				return fmt.Errorf("the name %q is given twice", key)
			}
			seen[key] = true
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	case json.Delim('['):
		for dec.More() {
			if err := checkValue(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	return nil
}

// entryLine is an entry line of an NDJSON export (Entry's JSON form);
// pointers tell null from a value.
type entryLine struct {
	Seq         int64     `json:"seq"`
	EventID     uuid.UUID `json:"eventId"`
	WorkspaceID uuid.UUID `json:"workspaceId"`
	OccurredAt  string    `json:"occurredAt"`
	Action      string    `json:"action"`
	Actor       struct {
		ID     *uuid.UUID `json:"id"`
		Email  *string    `json:"email"`
		System bool       `json:"system"`
		Erased bool       `json:"erased"`
	} `json:"actor"`
	Target *struct {
		ID     *uuid.UUID `json:"id"`
		Email  *string    `json:"email"`
		Erased bool       `json:"erased"`
	} `json:"target"`
	Details       json.RawMessage `json:"details"`
	CorrelationID *string         `json:"correlationId"`
	CausationID   *string         `json:"causationId"`
	Request       *struct {
		IP        *string `json:"ip"`
		UserAgent *string `json:"userAgent"`
	} `json:"request"`
	Position string  `json:"position"`
	PrevHash *string `json:"prevHash"`
	Hash     *string `json:"hash"`
	// Sealed is absent from exports made before sealing, whose shown
	// values are the stored ones.
	Sealed *struct {
		ActorEmail       *string         `json:"actorEmail"`
		TargetEmail      *string         `json:"targetEmail"`
		RequestIP        *string         `json:"requestIp"`
		RequestUserAgent *string         `json:"requestUserAgent"`
		Details          json.RawMessage `json:"details"`
	} `json:"sealed"`
}

// decodeEntryLine turns an entry line back into the row it was exported
// from (see row.entry and Entry.appendJSON): null is NULL, details in
// their canonical form, personal values as stored ("sealed"). shown says
// how the values shown disagree with those stored, where that needs no
// key to tell.
func decodeEntryLine(line []byte, r *row) (shown, err error) {
	var e entryLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, err
	}
	if e.PrevHash == nil || e.Hash == nil || e.Seq < 1 || e.Action == "" || e.WorkspaceID == uuid.Nil {
		return nil, errors.New("seq, workspaceId, action, prevHash or hash missing")
	}
	at, err := time.Parse(time.RFC3339Nano, e.OccurredAt)
	if err != nil {
		return nil, fmt.Errorf("occurredAt: %w", err)
	}
	commit, prepare, ok := strings.Cut(e.Position, "-")
	c, err1 := strconv.ParseInt(commit, 10, 64)
	p, err2 := strconv.ParseInt(prepare, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("position %q: want <commit>-<prepare>", e.Position)
	}
	details, err := canonicalJSON(e.Details)
	if err != nil {
		return nil, err
	}
	*r = row{
		workspaceID:     pgUUID(e.WorkspaceID),
		seq:             e.Seq,
		eventID:         pgtype.UUID{Bytes: e.EventID, Valid: true},
		occurredAt:      at.UTC(),
		actorID:         nullUUID(e.Actor.ID),
		actorEmail:      nullText(e.Actor.Email),
		actorSystem:     e.Actor.System,
		action:          e.Action,
		details:         details,
		correlationID:   nullText(e.CorrelationID),
		causationID:     nullText(e.CausationID),
		commitPosition:  c,
		preparePosition: p,
		prevHash:        *e.PrevHash,
		hash:            *e.Hash,
	}
	if e.Target != nil {
		r.targetID = nullUUID(e.Target.ID)
		r.targetEmail = nullText(e.Target.Email)
	}
	if e.Request != nil {
		r.requestIP = nullText(e.Request.IP)
		r.requestUserAgent = nullText(e.Request.UserAgent)
	}
	if v := e.Sealed; v != nil {
		// The hash covers the stored forms. The shown values are their
		// opened forms, which no key is needed to check where the stored
		// value is plain: there they must be the same.
		opened := *r
		r.actorEmail, r.targetEmail = nullText(v.ActorEmail), nullText(v.TargetEmail)
		r.requestIP, r.requestUserAgent = nullText(v.RequestIP), nullText(v.RequestUserAgent)
		if r.details, err = canonicalJSON(v.Details); err != nil {
			return nil, fmt.Errorf("sealed: %w", err)
		}
		return shownMatchesStored(&opened, r), nil
	}
	return nil, nil
}

// shownMatchesStored checks the opened values of an entry line against
// its stored ones where that needs no key: a plain stored value must be
// shown as it is, a sealed one as a string or null (erased); details must
// have the same keys, and the same values but for sealed strings.
func shownMatchesStored(shown, stored *row) error {
	texts := []struct {
		name          string
		shown, stored pgtype.Text
	}{
		{"actor.email", shown.actorEmail, stored.actorEmail},
		{"target.email", shown.targetEmail, stored.targetEmail},
		{"request.ip", shown.requestIP, stored.requestIP},
		{"request.userAgent", shown.requestUserAgent, stored.requestUserAgent},
	}
	for _, t := range texts {
		if !isSealedText(t.stored) && t.shown != t.stored {
			return fmt.Errorf("its %s is shown as %q, but stored (plain) as %q", t.name, t.shown.String, t.stored.String)
		}
	}
	sf, err1 := readFields(shown.details)
	tf, err2 := readFields(stored.details)
	if err1 != nil || err2 != nil || len(sf) != len(tf) {
		return errors.New("its details shown do not match its details stored (sealed.details)")
	}
	for i := range tf { // both sorted by key (canonicalJSON)
		s, t := sf[i], tf[i]
		sealed := t.kind == kindString && pii.IsSealed(t.s)
		if s.key != t.key || (!sealed && s != t) || (sealed && s.kind != kindString && s.kind != kindNull) {
			return fmt.Errorf("its details %q shown do not match the value stored (sealed.details)", t.key)
		}
	}
	return nil
}

func nullUUID(u *uuid.UUID) pgtype.UUID {
	if u == nil {
		return pgtype.UUID{}
	}
	return pgtype.UUID{Bytes: *u, Valid: true}
}

func nullText(s *string) pgtype.Text {
	if s == nil {
		return pgtype.Text{}
	}
	return pgtype.Text{String: *s, Valid: true}
}
