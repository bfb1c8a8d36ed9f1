package controller

import (
	"context"
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
// zeros, for the same reason. A lookup may go to a directory service
// (NSS: LDAP, sssd), so it is bounded by ctx; one that hangs is left to
// finish on its own.
func resolveTapIDs(ctx context.Context, p model.Port) (model.Port, error) {
	if p.Owner == "" && p.Group == "" {
		return p, nil
	}
	type result struct {
		p   model.Port
		err error
	}
	done := make(chan result, 1)
	go func(q model.Port) {
		var err error
		if q.Owner, err = resolveID("owner", q.Owner, lookupUID); err == nil {
			q.Group, err = resolveID("group", q.Group, lookupGID)
		}
		done <- result{q, err}
	}(p)
	select {
	case r := <-done:
		return r.p, r.err
	case <-ctx.Done():
		return p, fmt.Errorf("resolve owner and group of port %s: %w", p.Name, ctx.Err())
	}
}

// resolveID resolves one owner or group that model.NewPort accepted; lookup
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
