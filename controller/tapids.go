package controller

import (
	"errors"
	"fmt"
	"os/user"
	"strconv"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// resolveTapIDs turns the owner and group of a tap port into the numeric
// IDs this host gives them, so that the record holds what the kernel is
// told (TUNSETOWNER takes a number) and a later PUT naming the same user
// by its name or its number is the same spec. A name this host does not
// know is the client's mistake (400). IDs are written without leading
// zeros, for the same reason.
func resolveTapIDs(p model.Port) (model.Port, error) {
	var err error
	if p.Owner, err = resolveID("owner", p.Owner, lookupUID); err != nil {
		return p, err
	}
	p.Group, err = resolveID("group", p.Group, lookupGID)
	return p, err
}

// resolveID resolves one valid (model.ValidateID) owner or group; lookup
// returns "" for a name the host does not know.
func resolveID(field, value string, lookup func(string) (string, error)) (string, error) {
	if value == "" {
		return "", nil
	}
	if id, err := strconv.ParseUint(value, 10, 32); err == nil {
		return strconv.FormatUint(id, 10), nil
	}
	id, err := lookup(value)
	switch {
	case err != nil:
		return "", fmt.Errorf("resolve %s %q: %w", field, value, err)
	case id == "":
		return "", fmt.Errorf("%w: %s %q: no such name on this host", v1.ErrInvalid, field, value)
	}
	return id, nil
}

func lookupUID(name string) (string, error) {
	u, err := user.Lookup(name)
	if errors.As(err, new(user.UnknownUserError)) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return u.Uid, nil
}

func lookupGID(name string) (string, error) {
	g, err := user.LookupGroup(name)
	if errors.As(err, new(user.UnknownGroupError)) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return g.Gid, nil
}
