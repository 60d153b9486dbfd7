package web_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/usersd/usersd/adapters/web"
)

func get(t *testing.T, h http.Handler, method, path string) *http.Response {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec.Result()
}

func TestPagesAndAssets(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	tests := []struct {
		path     string
		wantType string
		wantBody string
	}{
		{"/", "text/html", "Send invitations"},
		{"/audit", "text/html", "Verify the hash chain"},
		{"/reviews", "text/html", "Start review"},
		{"/assets/reviews.js", "text/javascript", "evidence"},
		{"/mailbox", "text/html", "Development mailbox"},
		{"/accept?token=abc", "text/html", "Accept invitation"},
		{"/assets/app.js", "text/javascript", "export async function api"},
		{"/assets/users.js", "text/javascript", "rowMenu"},
		{"/assets/app.css", "text/css", ".menu"},
	}
	for _, tt := range tests {
		r := get(t, h, http.MethodGet, tt.path)
		body, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200", tt.path, r.StatusCode)
			continue
		}
		if got := r.Header.Get("Content-Type"); !strings.HasPrefix(got, tt.wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", tt.path, got, tt.wantType)
		}
		if !strings.Contains(string(body), tt.wantBody) {
			t.Errorf("GET %s: body lacks %q", tt.path, tt.wantBody)
		}
		// A page is a whole document, rendered in the layout.
		if tt.wantType == "text/html" && (!strings.HasPrefix(string(body), "<!doctype html>\n") || !strings.HasSuffix(string(body), "</main>\n</body>\n</html>\n")) {
			t.Errorf("GET %s: not a whole page: %.80q", tt.path, body)
		}
		for k, want := range map[string]string{
			"Referrer-Policy":        "no-referrer",
			"X-Content-Type-Options": "nosniff",
		} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tt.path, k, got, want)
			}
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.HasPrefix(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q, want default-src 'self' first", tt.path, csp)
		}
	}
}

func TestRefusesWhatItDoesNotServe(t *testing.T) {
	t.Parallel()
	h := web.Handler()
	tests := []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/nope", http.StatusNotFound},
		{http.MethodGet, "/assets/", http.StatusNotFound},
		{http.MethodGet, "/assets/../index.html", http.StatusNotFound},
		{http.MethodGet, "/assets//app.js", http.StatusNotFound},
		{http.MethodGet, "/assets/missing.js", http.StatusNotFound},
		{http.MethodGet, "/index.html", http.StatusNotFound},
		{http.MethodPost, "/", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/assets/app.js", http.StatusMethodNotAllowed},
		{http.MethodHead, "/", http.StatusOK},
	}
	for _, tt := range tests {
		r := get(t, h, tt.method, tt.path)
		if r.StatusCode != tt.want {
			t.Errorf("%s %s: status %d, want %d", tt.method, tt.path, r.StatusCode, tt.want)
		}
		if r.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s: no Referrer-Policy on an error answer", tt.method, tt.path)
		}
	}
}

// TestNoExternalOrInlineCode keeps the UI within its policy: nothing loaded
// from another origin (no CDN), and no inline script, style or event
// handler, which default-src 'self' would block anyway.
func TestNoExternalOrInlineCode(t *testing.T) {
	t.Parallel()
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	inline := regexp.MustCompile(`(?i)<script(\s+type="module")?\s*>|<style|\son[a-z]+\s*=|\sstyle\s*=`)
	checked := 0
	err := filepath.WalkDir("static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		if m := external.Find(b); m != nil {
			t.Errorf("%s loads something from elsewhere: %q", path, m)
		}
		if strings.HasSuffix(path, ".html") {
			if m := inline.Find(b); m != nil {
				t.Errorf("%s has inline code: %q", path, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 10 {
		t.Errorf("checked %d files, want the 5 pages and their assets", checked)
	}
}
