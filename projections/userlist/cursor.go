package userlist

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// cursor is the sort key of the last row of a page: the next page starts
// after it.
type cursor struct {
	// sortKey is the display name's key, or sorted by last login its
	// loginKey ("never" for none), which validate parses into login.
	sortKey string
	userID  uuid.UUID
	login   pgtype.Timestamptz
}

const (
	cursorVersion = 1
	cursorSumLen  = 8
	// maxCursorLen bounds what we decode: a sort key is a name or an
	// e-mail address, far shorter.
	maxCursorLen = 2048
)

// The opaque form is base64url(version ‖ user id ‖ check ‖ sort key). The
// check is a hash over the workspace, the filter and the key: it catches a
// cursor that was damaged or edited, or that belongs to another workspace or
// filter. It is not a secret: a cursor forged with a correct check is only a
// place in the sort order, and reveals nothing the caller may not read.
func encodeCursor(ws uuid.UUID, f filter, c cursor) string {
	b := make([]byte, 0, 1+16+cursorSumLen+len(c.sortKey))
	b = append(b, cursorVersion)
	b = append(b, c.userID[:]...)
	b = append(b, cursorSum(ws, f, c)...)
	b = append(b, c.sortKey...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string, ws uuid.UUID, f filter) (cursor, error) {
	if len(s) > maxCursorLen {
		return cursor{}, errors.New("too long")
	}
	// The decoder skips line breaks and ignores spare bits: only the
	// spelling encodeCursor writes is a cursor.
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || base64.RawURLEncoding.EncodeToString(b) != s {
		return cursor{}, errors.New("not base64url")
	}
	if len(b) < 1+16+cursorSumLen || b[0] != cursorVersion {
		return cursor{}, errors.New("unknown format")
	}
	var c cursor
	copy(c.userID[:], b[1:17])
	sum, key := b[17:17+cursorSumLen], b[17+cursorSumLen:]
	if !utf8.Valid(key) || bytes.IndexByte(key, 0) >= 0 {
		return cursor{}, errors.New("damaged")
	}
	c.sortKey = string(key)
	if !bytes.Equal(sum, cursorSum(ws, f, c)) {
		return cursor{}, errors.New("damaged, or made for another workspace or filter")
	}
	return c, nil
}

func cursorSum(ws uuid.UUID, f filter, c cursor) []byte {
	h := sha256.New()
	h.Write([]byte("usersd userlist cursor v1\x00"))
	h.Write(ws[:])
	for _, s := range []string{f.status, f.role, f.q, c.sortKey} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	// Only when set, so the cursors of the list by name stay valid: a
	// cursor of one sort or inactiveSince is refused by another.
	if f.sort != "" || f.sinceKey != "" {
		h.Write([]byte("sort=" + f.sort + "\x00since=" + f.sinceKey + "\x00"))
	}
	h.Write(c.userID[:])
	return h.Sum(nil)[:cursorSumLen]
}
