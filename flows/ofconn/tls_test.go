package ofconn

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/ovs-vnet/ovs-vnet/internal/testpki"
)

// TestTLSListener: an ssl: listener runs our handshake with a switch that
// presents a certificate of the configured CA, and turns away one without a
// certificate or with one of another CA.
func TestTLSListener(t *testing.T) {
	ca := testpki.NewCA(t, "ofca")
	ctl := ca.Issue(t, "controller")
	sw := ca.Issue(t, "switch")
	rogue := testpki.NewCA(t, "rogue").Issue(t, "rogue")
	conf, err := TLSFiles{Cert: ctl.CertFile, Key: ctl.KeyFile, CA: ca.CertFile}.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("ssl:127.0.0.1:0"); err == nil {
		t.Fatal("an ssl: listener without a TLS configuration")
	}
	if _, err := ListenTLS("tcp:127.0.0.1:0", conf); err == nil {
		t.Fatal("a TLS configuration on a tcp: listener")
	}
	ln, err := ListenTLS("ssl:127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := make(chan *Conn, 4)
	go func() {
		_ = Serve(ctx, ln, Options{HandshakeTimeout: 2 * time.Second}, func(c *Conn) { sessions <- c })
	}()

	dial := func(leaf *testpki.Leaf) error {
		cc := &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
		if leaf != nil {
			pair, err := tls.LoadX509KeyPair(leaf.CertFile, leaf.KeyFile)
			if err != nil {
				t.Fatal(err)
			}
			cc.Certificates = []tls.Certificate{pair}
		}
		nc, err := tls.Dial("tcp", ln.Addr().String(), cc)
		if err != nil {
			return err
		}
		if err := nc.Handshake(); err != nil {
			nc.Close()
			return err
		}
		fakeSwitch(t, nc, 0x5151, true)
		return nil
	}
	if err := dial(&sw); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-sessions:
		if c.DatapathID() != 0x5151 {
			t.Fatalf("dpid %x", c.DatapathID())
		}
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no session from a switch with a good certificate")
	}
	for name, leaf := range map[string]*testpki.Leaf{"no certificate": nil, "another CA": &rogue} {
		_ = dial(leaf) // TLS 1.3 reports the refusal on the first read, not the handshake
		select {
		case <-sessions:
			t.Fatalf("%s: session accepted", name)
		case <-time.After(300 * time.Millisecond):
		}
	}

	// Our own client side, as vnetctl-like tools or tests would use it.
	srv, err := ListenTLS("ssl:127.0.0.1:0", conf)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		nc, err := srv.Accept()
		if err == nil {
			fakeSwitch(t, nc, 0x77, true)
		}
	}()
	pair, _ := tls.LoadX509KeyPair(sw.CertFile, sw.KeyFile)
	c, err := DialTLS(ctx, "ssl:"+srv.Addr().String(), &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", Certificates: []tls.Certificate{pair}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.DatapathID() != 0x77 {
		t.Fatalf("dpid %x", c.DatapathID())
	}
}
