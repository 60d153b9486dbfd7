package audit

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MarshalJSON renders e as GET /audit shows it:
//
//	{"seq":1,"eventId":"…","workspaceId":"…","occurredAt":"RFC 3339","action":"RoleChanged",
//	 "actor":{"id":"…"|null,"email":"…"|null,"system":false,"erased":false},
//	 "target":{"id":"…","email":"…"|null,"erased":false}|null,"details":{…},
//	 "correlationId":"…"|null,"causationId":"…"|null,
//	 "request":{"ip":"…"|null,"userAgent":"…"|null}|null,
//	 "position":"<commit>-<prepare>","prevHash":"…","hash":"…",
//	 "sealed":{"actorEmail":"…"|null,"targetEmail":"…"|null,"requestIp":"…"|null,
//	           "requestUserAgent":"…"|null,"details":{…}}}
//
// Unknown values are null, so every entry has the same keys. Personal
// values are shown opened, null once erased; "sealed" holds them as stored
// and hashed (see StoredValues), absent only from an entry not read for
// display.
func (e Entry) MarshalJSON() ([]byte, error) { return e.appendJSON(nil), nil }

// appendJSON appends e's JSON form to b without reflection, so that an
// export allocates little per entry.
func (e *Entry) appendJSON(b []byte) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, `,"eventId":`...)
	b = appendJSONUUID(b, e.EventID)
	b = append(b, `,"workspaceId":`...)
	b = appendJSONUUID(b, e.WorkspaceID)
	b = append(b, `,"occurredAt":"`...)
	b = e.OccurredAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","action":`...)
	b = appendJSONString(b, e.Action)
	b = append(b, `,"actor":{"id":`...)
	b = appendJSONUUID(b, e.Actor.ID)
	b = appendMemberStringOrNull(b, `,"email":`, e.Actor.Email)
	b = append(b, `,"system":`...)
	b = strconv.AppendBool(b, e.Actor.System)
	b = append(b, `,"erased":`...)
	b = strconv.AppendBool(b, e.Actor.Erased)
	b = append(b, `},"target":`...)
	if e.Target == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"id":`...)
		b = appendJSONUUID(b, e.Target.ID)
		b = appendMemberStringOrNull(b, `,"email":`, e.Target.Email)
		b = append(b, `,"erased":`...)
		b = strconv.AppendBool(b, e.Target.Erased)
		b = append(b, '}')
	}
	b = append(b, `,"details":`...)
	b = appendRawJSON(b, e.Details)
	b = appendMemberStringOrNull(b, `,"correlationId":`, e.CorrelationID)
	b = appendMemberStringOrNull(b, `,"causationId":`, e.CausationID)
	b = append(b, `,"request":`...)
	if e.Request == nil {
		b = append(b, "null"...)
	} else {
		b = appendMemberStringOrNull(b, `{"ip":`, e.Request.IP)
		b = appendMemberStringOrNull(b, `,"userAgent":`, e.Request.UserAgent)
		b = append(b, '}')
	}
	b = append(b, `,"position":"`...)
	b = strconv.AppendUint(b, e.Position.Commit, 10)
	b = append(b, '-')
	b = strconv.AppendUint(b, e.Position.Prepare, 10)
	b = append(b, `","prevHash":`...)
	b = appendJSONString(b, e.PrevHash)
	b = append(b, `,"hash":`...)
	b = appendJSONString(b, e.Hash)
	if v := e.Sealed; v != nil {
		b = appendMemberStringOrNull(b, `,"sealed":{"actorEmail":`, v.ActorEmail)
		b = appendMemberStringOrNull(b, `,"targetEmail":`, v.TargetEmail)
		b = appendMemberStringOrNull(b, `,"requestIp":`, v.RequestIP)
		b = appendMemberStringOrNull(b, `,"requestUserAgent":`, v.RequestUserAgent)
		b = append(b, `,"details":`...)
		b = appendRawJSON(b, v.Details)
		b = append(b, '}')
	}
	return append(b, '}')
}

// CheckpointType is the "type" of an NDJSON export's checkpoint line;
// entries have no "type".
const CheckpointType = "checkpoint"

// appendCheckpoint appends the checkpoint line of an NDJSON export, with
// its newline.
func appendCheckpoint(b []byte, h SignedHead) []byte {
	b = append(b, `{"type":"`+CheckpointType+`","workspaceId":`...)
	b = appendJSONUUID(b, h.WorkspaceID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, h.Seq, 10)
	b = append(b, `,"hash":`...)
	b = appendJSONString(b, h.Hash)
	b = append(b, `,"signedAt":"`...)
	b = h.SignedAt.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","keyId":`...)
	b = appendJSONString(b, h.KeyID)
	b = append(b, `,"signature":`...)
	b = appendJSONString(b, h.Signature)
	return append(b, "}\n"...)
}

// appendRawJSON appends details compacted (jsonb text has spaces); {} when
// empty or not JSON, which a stored jsonb value never is.
func appendRawJSON(b []byte, raw json.RawMessage) []byte {
	buf := bytes.NewBuffer(b)
	if len(raw) == 0 || json.Compact(buf, raw) != nil {
		return append(b, "{}"...)
	}
	return buf.Bytes()
}

func appendJSONUUID(b []byte, u uuid.UUID) []byte {
	if u == uuid.Nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = appendUUID(b, u)
	return append(b, '"')
}

// appendMemberStringOrNull appends pre, the text before a member's value
// (a separator and the key: `,"email":`), then s as a JSON string, or null
// when it is empty (unknown).
func appendMemberStringOrNull(b []byte, pre, s string) []byte {
	b = append(b, pre...)
	if s == "" {
		return append(b, "null"...)
	}
	return appendJSONString(b, s)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string, escaping what JSON requires
// and, like encoding/json, <, >, &, U+2028 and U+2029, so that the output
// is safe to embed in HTML. Invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// csvHeader names the columns of a CSV export.
var csvHeader = []string{
	"seq", "eventId", "workspaceId", "occurredAt", "action",
	"actorId", "actorEmail", "actorSystem", "targetId", "targetEmail",
	"details", "correlationId", "causationId", "requestIp", "requestUserAgent",
	"position", "prevHash", "hash", "actorErased", "targetErased",
}

// SpreadsheetSafe defuses text a spreadsheet would run as a formula (in the
// audit's CSV export and an access review's evidence): a
// cell starting with = + - @ or a tab or carriage return gets a leading
// apostrophe. People open CSV exports in spreadsheets; addresses such as
// "=cmd@example.com" are valid, and user agents are whatever a client sent.
// The NDJSON export keeps every value verbatim, for hash verification.
func SpreadsheetSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvRecord fills rec (len(csvHeader) long) with e's fields; unknown
// values are empty cells, details its JSON text. scratch is reused space,
// returned grown.
func (e *Entry) csvRecord(rec []string, scratch []byte) ([]string, []byte) {
	uuidOrEmpty := func(u uuid.UUID) string {
		if u == uuid.Nil {
			return ""
		}
		return u.String()
	}
	rec[0] = strconv.FormatInt(e.Seq, 10)
	rec[1] = e.EventID.String()
	rec[2] = e.WorkspaceID.String()
	rec[3] = e.OccurredAt.UTC().Format(time.RFC3339Nano)
	rec[4] = e.Action
	rec[5] = uuidOrEmpty(e.Actor.ID)
	rec[6] = SpreadsheetSafe(e.Actor.Email)
	rec[7] = strconv.FormatBool(e.Actor.System)
	rec[8], rec[9] = "", ""
	if e.Target != nil {
		rec[8] = uuidOrEmpty(e.Target.ID)
		rec[9] = SpreadsheetSafe(e.Target.Email)
	}
	scratch = appendRawJSON(scratch[:0], e.Details)
	rec[10] = string(scratch)
	rec[11] = SpreadsheetSafe(e.CorrelationID)
	rec[12] = SpreadsheetSafe(e.CausationID)
	rec[13], rec[14] = "", ""
	if e.Request != nil {
		rec[13] = e.Request.IP
		rec[14] = SpreadsheetSafe(e.Request.UserAgent)
	}
	rec[15] = e.Position.String()
	rec[16] = e.PrevHash
	rec[17] = e.Hash
	rec[18] = strconv.FormatBool(e.Actor.Erased)
	rec[19] = strconv.FormatBool(e.Target != nil && e.Target.Erased)
	return rec, scratch
}
