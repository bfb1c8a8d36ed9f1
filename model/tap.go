package model

import (
	"regexp"
	"strconv"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
)

// maxQueues is the most queues a tap may have (the kernel's MAX_TAP_QUEUES).
const maxQueues = 256

// idNameRE is the user and group names a tap's owner and group may give:
// the portable shadow-utils names, a trailing '$' allowed (Samba's machine
// accounts). A name never starts with a digit, so a number is an ID.
var idNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$`)

// tapSpec takes the fields only a tap has from s into p: owner and group
// as given (a name or an ID; the controller resolves names), and
// multi_queue and queues as the one MultiQueue they mean.
func tapSpec(p *Port, s v1.PortSpec) error {
	for _, id := range []struct{ field, value string }{{"owner", s.Owner}, {"group", s.Group}} {
		if err := validateID(id.field, id.value); err != nil {
			return err
		}
	}
	switch {
	case s.Queues < 0 || s.Queues > maxQueues:
		return invalid("queues %d is outside 1-%d", s.Queues, maxQueues)
	case s.Queues == 1 && s.MultiQueue:
		return invalid("queues 1 asks for a single-queue tap and multi_queue for a multi-queue one; give one of them")
	case s.Adopt && s.Ifname == "":
		return invalid("adopt needs ifname: the name of the tap to take over")
	}
	p.Owner, p.Group = s.Owner, s.Group
	p.MultiQueue = s.MultiQueue || s.Queues >= 2
	p.Adopt = s.Adopt
	return nil
}

// refuseTapSpec refuses the fields only a tap has on a port of another type.
func refuseTapSpec(s v1.PortSpec) error {
	for _, f := range []struct {
		name string
		set  bool
	}{{"owner", s.Owner != ""}, {"group", s.Group != ""}, {"multi_queue", s.MultiQueue}, {"queues", s.Queues != 0}, {"adopt", s.Adopt}} {
		if f.set {
			return invalid("%s is for a tap port", f.name)
		}
	}
	return nil
}

// validateID checks a tap's owner or group (field): empty, a user or group
// name, or a numeric ID other than the kernel's invalid (uid_t)-1.
func validateID(field, value string) error {
	if value == "" || idNameRE.MatchString(value) {
		return nil
	}
	if id, err := strconv.ParseUint(value, 10, 32); err != nil || id == 1<<32-1 {
		return invalid("%s %q is neither a name nor a numeric ID below 4294967295", field, value)
	}
	return nil
}
