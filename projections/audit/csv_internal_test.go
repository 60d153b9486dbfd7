package audit

import "testing"

// Internal: the guard is a detail of the CSV encoding, not of the API.
func TestSpreadsheetSafeDefusesFormulas(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"=cmd@example.com": "'=cmd@example.com",
		"+1@example.com":   "'+1@example.com",
		"-x":               "'-x",
		"@SUM(A1)":         "'@SUM(A1)",
		"\tx":              "'\tx",
		"ada@example.com":  "ada@example.com",
		"":                 "",
	} {
		if got := SpreadsheetSafe(in); got != want {
			t.Errorf("SpreadsheetSafe(%q) = %q, want %q", in, got, want)
		}
	}
}
