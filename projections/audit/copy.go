package audit

import (
	"encoding/binary"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
)

// copyEntries loads audit_entries (unqualified: the runner's search_path
// picks the schema) from a binary COPY stream.
var copyEntries = "COPY audit_entries (" + strings.Join(columnNames, ", ") + ") FROM STDIN (FORMAT binary)"

// copyStream is the binary COPY data of the batch's new entries, built one
// entry at a time as PostgreSQL takes it. It encodes the columns itself
// (a rebuild sends a million rows, and pgx's generic encoding per value
// costs more than the rest of the row's work together). pgconn reads it on
// a goroutine of its own and waits for it before CopyFrom returns (unless
// the connection breaks, when Apply fails and drops the batch's state).
type copyStream struct {
	next    func() *row // the next row to send; nil at the end
	pending []byte
	buf     []byte
	started bool
	done    bool
}

// copyHeader opens a binary COPY stream: signature, flags, extension length.
var copyHeader = []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00")

func (c *copyStream) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(c.pending) == 0 {
			if c.done {
				break
			}
			c.fill(len(p) - n)
		}
		k := copy(p[n:], c.pending)
		c.pending = c.pending[k:]
		n += k
	}
	if n == 0 && c.done {
		return 0, io.EOF
	}
	return n, nil
}

// fill encodes rows into c.pending until it holds about want bytes or the
// entries run out, when it adds the trailer.
func (c *copyStream) fill(want int) {
	b := c.buf[:0]
	if !c.started {
		c.started = true
		b = append(b, copyHeader...)
	}
	for len(b) < want {
		r := c.next()
		if r == nil {
			b = binary.BigEndian.AppendUint16(b, 0xffff) // trailer: -1 fields
			c.done = true
			break
		}
		b = appendCopyRow(b, r)
	}
	c.buf, c.pending = b, b
}

// appendCopyRow appends r as one tuple of binary COPY, in the order of
// columnNames, with the binary wire format of each column's type: the
// order and the types of audit_entries (tables.sql), which
// TestCopyMatchesTheTable checks.
func appendCopyRow(b []byte, r *row) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(columnNames)))
	b = appendContent(b, copyEncoding{}, r)
	b = copyEncoding{}.str(b, r.prevHash)
	return copyEncoding{}.str(b, r.hash)
}

// copyEncoding writes each column type in the binary wire format of COPY:
// a 4-byte length (-1 for NULL), then the value.
type copyEncoding struct{}

func copyNull(b []byte) []byte { return binary.BigEndian.AppendUint32(b, 0xffffffff) }

func (copyEncoding) uuid(b []byte, u pgtype.UUID) []byte {
	if !u.Valid {
		return copyNull(b)
	}
	b = binary.BigEndian.AppendUint32(b, 16)
	return append(b, u.Bytes[:]...)
}

func (copyEncoding) int8(b []byte, n int64) []byte {
	b = binary.BigEndian.AppendUint32(b, 8)
	return binary.BigEndian.AppendUint64(b, uint64(n))
}

func (copyEncoding) str(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func (e copyEncoding) text(b []byte, t pgtype.Text) []byte {
	if !t.Valid {
		return copyNull(b)
	}
	return e.str(b, t.String)
}

func (copyEncoding) boolean(b []byte, v bool) []byte {
	b = binary.BigEndian.AppendUint32(b, 1)
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// jsonb is version 1, then the text.
func (copyEncoding) jsonb(b, j []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(1+len(j)))
	b = append(b, 1)
	return append(b, j...)
}

// pgEpochUnix is 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix seconds.
const pgEpochUnix = 946684800

// timestamptz encodes t as microseconds since PostgreSQL's epoch. t has
// microsecond precision already (fill truncates it).
func (e copyEncoding) timestamptz(b []byte, t time.Time) []byte {
	us := (t.Unix()-pgEpochUnix)*1_000_000 + int64(t.Nanosecond()/1000)
	return e.int8(b, us)
}
