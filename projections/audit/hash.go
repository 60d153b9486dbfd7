package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// row is one audit entry exactly as stored: the columns of audit_entries.
// Nullable columns use pgtype values, so that NULL and "" stay distinct in
// the hash.
type row struct {
	workspaceID      pgtype.UUID
	seq              int64
	eventID          pgtype.UUID
	occurredAt       time.Time
	actorID          pgtype.UUID
	actorEmail       pgtype.Text
	actorSystem      bool
	action           string
	targetID         pgtype.UUID
	targetEmail      pgtype.Text
	details          []byte // JSON, canonical (see canonicalJSON)
	correlationID    pgtype.Text
	causationID      pgtype.Text
	requestIP        pgtype.Text
	requestUserAgent pgtype.Text
	commitPosition   int64
	preparePosition  int64
	prevHash         string
	hash             string
}

// columns lists the columns of audit_entries in the order of row's fields;
// scan reads them in that order.
const columns = `workspace_id, seq, event_id, occurred_at, actor_id, actor_email, actor_system,
	action, target_id, target_email, details, correlation_id, causation_id,
	request_ip, request_user_agent, commit_position, prepare_position, prev_hash, hash`

// columnNames are columns as a list, for COPY.
var columnNames = strings.Split(strings.Join(strings.Fields(columns), ""), ",")

func (r *row) scanTargets() []any {
	return []any{&r.workspaceID, &r.seq, &r.eventID, &r.occurredAt, &r.actorID, &r.actorEmail, &r.actorSystem,
		&r.action, &r.targetID, &r.targetEmail, &r.details, &r.correlationID, &r.causationID,
		&r.requestIP, &r.requestUserAgent, &r.commitPosition, &r.preparePosition, &r.prevHash, &r.hash}
}

// canonicalVersion opens every canonical encoding, so that a future change
// of the encoding cannot be confused with this one.
const canonicalVersion = "usersd.audit.v1\n"

// timeLayout is UTC RFC 3339 with all nine fractional digits. Stored times
// have microsecond precision (PostgreSQL's), so the last three are zeros.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// appendCanonical appends the canonical content of r to b: every stored
// column but the two hashes, in the fixed order of columns, each as
// "<byte length>:<bytes>\n", or "-\n" for NULL. Lengths make it
// unambiguous whatever the fields contain. UUIDs are lower-case, times UTC,
// details canonical JSON.
func appendCanonical(b []byte, r *row) []byte {
	b = append(b, canonicalVersion...)
	return appendContent(b, canonicalEncoding{}, r)
}

// columnEncoding writes a value of each column type of audit_entries.
type columnEncoding interface {
	uuid(b []byte, u pgtype.UUID) []byte
	int8(b []byte, n int64) []byte
	timestamptz(b []byte, t time.Time) []byte
	text(b []byte, t pgtype.Text) []byte
	str(b []byte, s string) []byte
	boolean(b []byte, v bool) []byte
	jsonb(b, j []byte) []byte
}

// appendContent appends the columns of r that the hash covers, all but
// prev_hash and hash, in the order of columns, as enc writes their types:
// the canonical encoding hashes them, COPY stores them. So a column added
// here for COPY changes the stored hash format too, which stored chains
// were verified with (TestHashEncodingIsStable fails): a column the hash
// must not cover is written by appendCopyRow, like prev_hash and hash.
func appendContent(b []byte, enc columnEncoding, r *row) []byte {
	b = enc.uuid(b, r.workspaceID)
	b = enc.int8(b, r.seq)
	b = enc.uuid(b, r.eventID)
	b = enc.timestamptz(b, r.occurredAt)
	b = enc.uuid(b, r.actorID)
	b = enc.text(b, r.actorEmail)
	b = enc.boolean(b, r.actorSystem)
	b = enc.str(b, r.action)
	b = enc.uuid(b, r.targetID)
	b = enc.text(b, r.targetEmail)
	b = enc.jsonb(b, r.details)
	b = enc.text(b, r.correlationID)
	b = enc.text(b, r.causationID)
	b = enc.text(b, r.requestIP)
	b = enc.text(b, r.requestUserAgent)
	b = enc.int8(b, r.commitPosition)
	return enc.int8(b, r.preparePosition)
}

// computeHash returns hex(sha256(prevHash || canonical content of r)).
// buf is scratch space, returned for reuse.
func computeHash(buf []byte, prevHash string, r *row) (string, []byte) {
	buf = append(buf[:0], prevHash...)
	buf = appendCanonical(buf, r)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:]), buf
}

// canonicalEncoding writes each column type as a field of the canonical
// content: "<byte length>:<bytes>\n", or "-\n" for NULL.
type canonicalEncoding struct{}

// lengthPrefixed is the canonical form of every present value: its
// length, a colon, its bytes and a newline.
func lengthPrefixed[T ~string | ~[]byte](b []byte, s T) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, '\n')
}

func (canonicalEncoding) str(b []byte, s string) []byte { return lengthPrefixed(b, s) }

func (canonicalEncoding) jsonb(b, j []byte) []byte { return lengthPrefixed(b, j) }

func (canonicalEncoding) int8(b []byte, n int64) []byte {
	var nb [20]byte
	return lengthPrefixed(b, strconv.AppendInt(nb[:0], n, 10))
}

func (e canonicalEncoding) text(b []byte, t pgtype.Text) []byte {
	if !t.Valid {
		return append(b, "-\n"...)
	}
	return e.str(b, t.String)
}

func (canonicalEncoding) uuid(b []byte, u pgtype.UUID) []byte {
	if !u.Valid {
		return append(b, "-\n"...)
	}
	var ub [36]byte
	return lengthPrefixed(b, appendUUID(ub[:0], u.Bytes))
}

func (e canonicalEncoding) boolean(b []byte, v bool) []byte {
	return e.str(b, strconv.FormatBool(v))
}

func (canonicalEncoding) timestamptz(b []byte, t time.Time) []byte {
	var tb [40]byte
	return lengthPrefixed(b, t.UTC().AppendFormat(tb[:0], timeLayout))
}

// appendUUID appends u in its lower-case 8-4-4-4-12 form.
func appendUUID(b []byte, u [16]byte) []byte {
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:], u[10:])
	return append(b, s[:]...)
}
