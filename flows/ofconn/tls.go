package ofconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLSFiles names the PEM files of an ssl: OpenFlow listener: our certificate
// and its private key, and the CA certificate that must have signed every
// switch's certificate. They are the files OVS's SSL table names for its own
// side too (private_key, certificate, ca_cert).
type TLSFiles struct {
	Cert, Key, CA string
}

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

// ServerConfig loads the files into a mutual-TLS server configuration: a
// switch must present a certificate signed by CA (TLS 1.2 or later), as OVS
// does with its SSL table set.
func (f TLSFiles) ServerConfig() (*tls.Config, error) {
	if f.Cert == "" || f.Key == "" || f.CA == "" {
		return nil, errors.New("openflow TLS needs a certificate, its key and a CA certificate")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("openflow TLS key pair: %w", err)
	}
	pool, err := loadCAs(f.CA)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("openflow TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("openflow TLS CA %s: no PEM certificate in it", path)
	}
	return pool, nil
}
