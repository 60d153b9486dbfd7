// Package web is usersd's browser UI: the Users & Roles page of the seed,
// the audit history, access reviews, the development mailbox and the
// invitation accept page.
// It is HTML, CSS and JavaScript embedded in the binary (no build step,
// nothing fetched from elsewhere; each page is put in the pages' one frame,
// static/layout.html, once, when the handler is made) that speaks only the
// public HTTP API with the bearer token the page was opened with
// (#token=..., kept in sessionStorage, never sent in a URL).
package web

import (
	"bytes"
	"embed"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// pages maps the UI's paths to their HTML files, each rendered once in
// static/layout.html, the frame they share. Everything else the UI serves
// lives under /assets/.
var pages = map[string]string{
	"/":        "index.html",
	"/audit":   "audit.html",
	"/reviews": "reviews.html",
	"/mailbox": "mailbox.html",
	"/accept":  "accept.html",
}

// securityHeaders go on every answer. The policy allows only our own
// scripts, styles and API (no inline code, so injected markup cannot run);
// no-referrer keeps the accept page's ?token= from reaching anyone through
// the Referer header.
var securityHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'",
	"Referrer-Policy":              "no-referrer",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
}

// Handler serves the UI: its pages at /, /audit, /reviews, /mailbox and
// /accept, and their files under /assets/. It answers GET and HEAD only, and 404 for
// anything else, so the API's paths must be routed away before it.
func Handler() http.Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	return &handler{static: static, pages: renderPages(static)}
}

// renderPages renders every page in the layout.
func renderPages(static fs.FS) map[string][]byte {
	layout := template.Must(template.ParseFS(static, "layout.html"))
	out := make(map[string][]byte, len(pages))
	for _, name := range pages {
		t := template.Must(template.Must(layout.Clone()).ParseFS(static, name))
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, "layout.html", nil); err != nil {
			panic(err) // the pages are part of the binary, and tested
		}
		out[name] = b.Bytes()
	}
	return out
}

type handler struct {
	static fs.FS
	pages  map[string][]byte // rendered, by file name
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := pages[r.URL.Path]
	if !ok {
		rest, isAsset := strings.CutPrefix(r.URL.Path, "/assets/")
		// path.Clean must not change the name: no "..", no "//", and no
		// directory listings.
		if !isAsset || rest == "" || path.Clean(rest) != rest || strings.HasSuffix(rest, "/") {
			http.NotFound(w, r)
			return
		}
		name = "assets/" + rest
	}
	// The pages and assets change with the binary, and a stale script
	// against a newer API is a confusing bug: always revalidate.
	w.Header().Set("Cache-Control", "no-cache")
	if page, ok := h.pages[name]; ok {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(page))
		return
	}
	f, err := h.static.Open(name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || info.IsDir() {
		http.NotFound(w, r)
		return
	}
	http.ServeContent(w, r, name, info.ModTime(), f.(io.ReadSeeker))
}
