package webhooks_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/usersd/usersd/adapters/messaging/webhooks"
	"github.com/usersd/usersd/domain"
)

func TestRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		ip      string
		refused bool
	}{
		{"127.0.0.1", true}, {"127.255.0.9", true}, {"::1", true},
		{"10.0.0.1", true}, {"172.16.0.1", true}, {"172.31.255.255", true}, {"192.168.1.1", true},
		{"169.254.169.254", true}, {"169.254.0.1", true}, {"fe80::1", true},
		{"fd00:ec2::254", true}, {"fc00::1", true},
		{"100.64.0.1", true}, {"100.127.255.254", true},
		{"0.0.0.0", true}, {"::", true}, {"224.0.0.1", true}, {"ff02::1", true}, {"255.255.255.255", true},
		{"::ffff:127.0.0.1", true}, {"::ffff:10.0.0.1", true}, {"::ffff:169.254.169.254", true},
		{"64:ff9b::7f00:1", true}, {"2002:c0a8:101::1", true}, {"::127.0.0.1", true},
		{"198.18.0.1", true}, {"192.0.0.8", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"203.0.113.10", false}, {"172.32.0.1", false}, {"100.128.0.1", false},
		{"2606:4700:4700::1111", false}, {"::ffff:8.8.8.8", false}, {"64:ff9b::808:808", false},
	} {
		why := webhooks.Refused(netip.MustParseAddr(c.ip))
		if (why != "") != c.refused {
			t.Errorf("Refused(%s) = %q, want refused %v", c.ip, why, c.refused)
		}
	}
}

func TestGuardCheck(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	g := webhooks.Guard{}
	for _, url := range []string{
		"http://127.0.0.1/hook", "https://127.0.0.1:8443/hook", "http://[::1]/", "http://169.254.169.254/latest/meta-data/",
		"http://10.1.2.3/", "http://192.168.0.10:8080/", "http://100.64.1.1/", "http://[fd00:ec2::254]/", "http://0.0.0.0/",
		"http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
		// A host name that resolves to the loopback address.
		"http://localhost/hook", "http://localhost:9/",
		// A host name that does not resolve.
		"https://no-such-host.invalid/hook",
	} {
		err := g.Check(ctx, url)
		var de *domain.Error
		if !errors.As(err, &de) || de.Code != domain.CodeWebhookURLForbidden || de.Field != "url" {
			t.Errorf("Check(%s): %v, want %s about url", url, err, domain.CodeWebhookURLForbidden)
		}
	}
	for _, url := range []string{"https://203.0.113.10/hook", "http://[2606:4700:4700::1111]:8080/x"} {
		if err := g.Check(ctx, url); err != nil {
			t.Errorf("Check(%s): %v, want it allowed", url, err)
		}
	}
	open := webhooks.Guard{AllowPrivate: true}
	for _, url := range []string{"http://127.0.0.1/hook", "http://localhost/hook", "http://169.254.169.254/"} {
		if err := open.Check(ctx, url); err != nil {
			t.Errorf("with AllowPrivate, Check(%s): %v, want it allowed", url, err)
		}
	}
}

// The guard's Control refuses the connection itself, whatever name led to
// it: a host that resolved to a public address at subscription and to a
// private one now (DNS rebinding) is refused at the delivery.
func TestGuardControlRefusesTheConnection(t *testing.T) {
	t.Parallel()
	var reached atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	client := webhooks.NewClientForTest(webhooks.Guard{})
	for _, url := range []string{srv.URL, "http://localhost" + port + "/hook"} {
		resp, err := client.Post(url, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("POST %s through the guard: %s, want the connection refused", url, resp.Status)
			continue
		}
		if !strings.Contains(err.Error(), "refused") {
			t.Errorf("POST %s through the guard: %v, want it refused by the guard", url, err)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the server behind the guard was reached %d times", n)
	}
	resp, err := webhooks.NewClientForTest(webhooks.Guard{AllowPrivate: true}).Get(srv.URL)
	if err != nil {
		t.Fatalf("with AllowPrivate: %v", err)
	}
	resp.Body.Close()
	if reached.Load() != 1 {
		t.Fatal("with AllowPrivate the server was not reached")
	}
}
