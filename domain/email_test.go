package domain_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/usersd/usersd/domain"
)

func TestNormalizeEmailAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"jane@example.com", "jane@example.com"},
		{"Jane.Doe@Example.COM", "jane.doe@example.com"},
		{"  jane@example.com\t\n", "jane@example.com"},
		{"o'neil+tag@sub.example.co.uk", "o'neil+tag@sub.example.co.uk"},
		{"a@b.io", "a@b.io"},
		{"first_last-1@my-host.example", "first_last-1@my-host.example"},
		{"jane@xn--mnchen-3ya.de", "jane@münchen.de"},
		{"JÖRG@München.de", "jörg@münchen.de"},
		{strings.Repeat("a", 64) + "@example.com", strings.Repeat("a", 64) + "@example.com"},
		{"jane@" + strings.Repeat("h", 63) + ".com", "jane@" + strings.Repeat("h", 63) + ".com"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			t.Parallel()
			got, err := domain.NormalizeEmail(c.in)
			if err != nil {
				t.Fatalf("NormalizeEmail(%q): got error %v, want %q", c.in, err, c.want)
			}
			if string(got) != c.want || got.String() != c.want {
				t.Fatalf("NormalizeEmail(%q): got %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func TestNormalizeEmailRefuses(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, reason string }{
		{"empty", "", "the address is empty"},
		{"blank", " \t ", "the address is empty"},
		{"longer than 254", strings.Repeat("a", 60) + "@" + strings.Repeat("b", 190) + ".com", "longer than 254 characters"},
		{"inner space", "jane doe@example.com", "contains spaces"},
		{"inner tab", "jane\tdoe@example.com", "contains spaces"},
		{"quoted local part", `"jane"@example.com`, "quoted or bracketed"},
		{"address literal", "jane@[192.0.2.1]", "quoted or bracketed"},
		{"backslash", `ja\ne@example.com`, "quoted or bracketed"},
		{"no at", "jane.example.com", "has no @"},
		{"nothing before at", "@example.com", "nothing before the @"},
		{"local part longer than 64", strings.Repeat("a", 65) + "@example.com", "longer than 64 characters"},
		{"two ats", "jane@doe@example.com", "more than one @"},
		{"nothing after at", "jane@", "nothing after the @"},
		{"domain without dot", "jane@localhost", "has no dot"},
		{"empty label", "jane@example..com", "is not a valid host name"},
		{"trailing dot", "jane@example.com.", "is not a valid host name"},
		{"label starts with hyphen", "jane@-example.com", "is not a valid host name"},
		{"label ends with hyphen", "jane@example-.com", "is not a valid host name"},
		{"underscore in domain", "jane@exa_mple.com", "is not a valid host name"},
		{"label longer than 63", "jane@" + strings.Repeat("h", 64) + ".com", "is not a valid host name"},
		{"double dot in local part", "jane..doe@example.com", "characters an address cannot have"},
		{"leading dot in local part", ".jane@example.com", "characters an address cannot have"},
		{"comment in local part", "jane(doe)@example.com", "characters an address cannot have"},
		{"comma in local part", "ja,ne@example.com", "characters an address cannot have"},
		{"angle bracket in local part", "ja<ne@example.com", "characters an address cannot have"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			wantInvalidEmail(t, c.in, c.reason)
		})
	}
}

// wantInvalidEmail checks that NormalizeEmail refuses in as invalid_email,
// answering no address and a message that says reason.
func wantInvalidEmail(t *testing.T, in, reason string) {
	t.Helper()
	got, err := domain.NormalizeEmail(in)
	if got != "" {
		t.Errorf("NormalizeEmail(%q): got address %q with the error, want none", in, got)
	}
	wantRefusal(t, fmt.Sprintf("NormalizeEmail(%q)", in), err, domain.CodeInvalidEmail, reason)
}

func TestSplitAddressList(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in string
		want     []string
	}{
		{"one", "a@x.com", []string{"a@x.com"}},
		{"commas", "a@x.com,b@x.com, c@x.com", []string{"a@x.com", "b@x.com", "c@x.com"}},
		{"semicolons", "a@x.com;b@x.com ; c@x.com", []string{"a@x.com", "b@x.com", "c@x.com"}},
		{"newlines", "a@x.com\nb@x.com\r\nc@x.com\r", []string{"a@x.com", "b@x.com", "c@x.com"}},
		{"spaces and tabs", "a@x.com b@x.com\tc@x.com   d@x.com", []string{"a@x.com", "b@x.com", "c@x.com", "d@x.com"}},
		{"mixed", " a@x.com,\n\nb@x.com; c@x.com d@x.com ,", []string{"a@x.com", "b@x.com", "c@x.com", "d@x.com"}},
		{"display name", "Jane Doe <Jane@X.com>", []string{"Jane@X.com"}},
		{"display names in a list", "Jane <j@x.com>, Bob Smith <bob@x.com>; c@x.com", []string{"j@x.com", "bob@x.com", "c@x.com"}},
		{"quoted display name", `"Jane Doe" <j@x.com>`, []string{"j@x.com"}},
		{"bracketed address alone", "<j@x.com>", []string{"j@x.com"}},
		{"broken bracket falls back to words", "Bad <nope", []string{"Bad", "<nope"}},
		{"nothing validated", "not-an-address, x", []string{"not-an-address", "x"}},
		{"nothing de-duplicated", "a@x.com, A@X.com, a@x.com", []string{"a@x.com", "A@X.com", "a@x.com"}},
		{"only separators", " ,, ;\n\r\n ; ", nil},
		{"empty", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := domain.SplitAddressList(c.in)
			if len(got) != len(c.want) || len(got) > 0 && !reflect.DeepEqual(got, c.want) {
				t.Fatalf("SplitAddressList(%q): got %q, want %q", c.in, got, c.want)
			}
		})
	}
}

func valid(input, email string) domain.BatchEntry {
	return domain.BatchEntry{Input: input, Email: domain.Email(email)}
}

func invalid(input, problem string) domain.BatchEntry {
	return domain.BatchEntry{Input: input, Problem: problem}
}

func addresses(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("user%04d@example.com", i)
	}
	return out
}

func TestParseBatch(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		lists []string
		want  []domain.BatchEntry
	}{
		{"trimmed and normalised", []string{"  Jane@Example.com  "}, []domain.BatchEntry{valid("Jane@Example.com", "jane@example.com")}},
		{
			"duplicates count once, case-insensitively, first spelling kept",
			[]string{"jane@example.com, JANE@Example.com\nbob@example.com; Jane@example.COM"},
			[]domain.BatchEntry{valid("jane@example.com", "jane@example.com"), valid("bob@example.com", "bob@example.com")},
		},
		{
			"invalid kept with its reason, in order",
			[]string{"jane@example.com, nope, bob@example.com, x@localhost"},
			[]domain.BatchEntry{
				valid("jane@example.com", "jane@example.com"),
				invalid("nope", "the address has no @"),
				valid("bob@example.com", "bob@example.com"),
				invalid("x@localhost", `the domain "localhost" has no dot`),
			},
		},
		{
			"invalid duplicates compared by their text",
			[]string{"nope, nope, NOPE"},
			[]domain.BatchEntry{invalid("nope", "the address has no @"), invalid("NOPE", "the address has no @")},
		},
		{
			"several lists, order first seen",
			[]string{"b@example.com", "a@example.com\nB@example.com", "", "c@example.com"},
			[]domain.BatchEntry{valid("b@example.com", "b@example.com"), valid("a@example.com", "a@example.com"), valid("c@example.com", "c@example.com")},
		},
		{
			"display name form",
			[]string{"Jane Doe <Jane@Example.com>, jane@example.com"},
			[]domain.BatchEntry{valid("Jane@Example.com", "jane@example.com")},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseBatch(c.lists...)
			if err != nil {
				t.Fatalf("ParseBatch(%q): got error %v, want %d entries", c.lists, err, len(c.want))
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("ParseBatch(%q):\n got  %+v\n want %+v", c.lists, got, c.want)
			}
			for _, e := range got {
				if e.Valid() != (e.Problem == "") || e.Valid() == (e.Email == "") {
					t.Errorf("entry %+v: Valid() is %v, want true exactly when it has an address and no problem", e, e.Valid())
				}
			}
		})
	}
}

func TestParseBatchSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		lists []string
		want  int
		err   domain.Code
	}{
		{name: "no list", err: domain.CodeEmptyBatch},
		{name: "empty text", lists: []string{""}, err: domain.CodeEmptyBatch},
		{name: "only separators", lists: []string{" , ;\n", "\n"}, err: domain.CodeEmptyBatch},
		{name: "one", lists: []string{"a@example.com"}, want: 1},
		{name: "exactly 500", lists: []string{strings.Join(addresses(domain.MaxBatch), ",")}, want: 500},
		{name: "500 distinct and repeats", lists: []string{strings.Join(addresses(domain.MaxBatch), ","), strings.ToUpper(strings.Join(addresses(domain.MaxBatch), "\n"))}, want: 500},
		{name: "501", lists: []string{strings.Join(addresses(domain.MaxBatch+1), ",")}, err: domain.CodeBatchTooLarge},
		{name: "500 valid and one invalid", lists: []string{strings.Join(addresses(domain.MaxBatch), ","), "nope"}, err: domain.CodeBatchTooLarge},
		{name: "501 across lists", lists: []string{strings.Join(addresses(300), ","), strings.Join(addresses(domain.MaxBatch + 1)[300:], ",")}, err: domain.CodeBatchTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := domain.ParseBatch(c.lists...)
			if code := domain.ErrorCode(err); code != c.err {
				t.Fatalf("ParseBatch: got error %v (code %q), want code %q", err, code, c.err)
			}
			if len(got) != c.want {
				t.Fatalf("ParseBatch: got %d entries, want %d", len(got), c.want)
			}
		})
	}
}

func TestMaxBatchIs500(t *testing.T) {
	t.Parallel()
	if domain.MaxBatch != 500 {
		t.Fatalf("MaxBatch: got %d, want 500 (product.md: a batch holds at most 500 addresses)", domain.MaxBatch)
	}
}
