package main

import (
	"strings"
	"testing"
)

func TestNATSConfig(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		url, wantErr, wantServers string
	}{
		{url: "", wantServers: ""},
		{url: " nats://127.0.0.1:4222 ", wantServers: "127.0.0.1:4222"},
		{url: "nats://usersd:s3cret@n1:4222,tls://n2:4222", wantServers: "n1:4222,n2:4222"},
		{url: "ws://n1:8080,wss://n2", wantServers: "n1:8080,n2"},
		{url: "127.0.0.1:4222", wantErr: "USERSD_NATS_URL: server 1 of 1 is not a URL"},
		{url: "nats://n1:4222,http://user:s3cret@n2", wantErr: "USERSD_NATS_URL: server 2 of 2: want the scheme nats://"},
		{url: "nats://tok3n@n1:4222/path", wantErr: "server 1 of 1 is not a URL"},
		{url: "nats://n1:4222,", wantErr: "server 2 of 2 is not a URL"},
	} {
		cfg, err := readNATSConfig(func(k string) string {
			if k == envNATSURL {
				return c.url
			}
			return ""
		})
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%q: got %v, want an error with %q", c.url, err, c.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "tok3n")) {
				t.Errorf("%q: the error shows a credential: %v", c.url, err)
			}
		case err != nil:
			t.Errorf("%q: %v", c.url, err)
		case cfg.servers != c.wantServers || (cfg.url == "") != (c.url == ""):
			t.Errorf("%q: servers %q, url set %v; want %q", c.url, cfg.servers, cfg.url != "", c.wantServers)
		}
	}
}
