package v1

import (
	"errors"
	"fmt"
	"net"
	"regexp"
)

// ErrInvalid marks a request that is malformed or has an invalid field; the
// daemon answers it with 400.
var ErrInvalid = errors.New("invalid")

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// ValidateName checks an object name (network, router, port or security
// group). It is the API's rule, so that a client can apply it before it
// asks.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return invalid("name %q must be 1-32 characters of a-z, 0-9 and '-', starting and ending with a letter or digit", name)
	}
	return nil
}

// ParseMAC accepts a unicast, non-zero Ethernet address and returns its canonical form.
func ParseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", invalid("mac %q is not an Ethernet address such as 02:00:00:00:00:01", s)
	}
	if mac[0]&1 != 0 {
		return "", invalid("mac %s is a multicast address", mac)
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return "", invalid("mac %s is all zeros", mac)
	}
	return mac.String(), nil
}
