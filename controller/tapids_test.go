package controller

import (
	"context"
	"errors"
	"os/user"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// TestResolveTapIDs: a tap's owner and group are stored as the host's
// numeric IDs — a name resolved, a number written without leading zeros —
// and a name the host does not know is the client's mistake, named.
func TestResolveTapIDs(t *testing.T) {
	ctx := context.Background()
	root, err := user.LookupId("0")
	if err != nil {
		t.Fatal(err)
	}
	rootGroup, err := user.LookupGroupId("0")
	if err != nil {
		t.Fatal(err)
	}
	p, err := resolveTapIDs(ctx, model.Port{Owner: root.Username, Group: rootGroup.Name})
	if err != nil || p.Owner != "0" || p.Group != "0" {
		t.Errorf("%s:%s resolved to %q:%q, %v; want 0:0", root.Username, rootGroup.Name, p.Owner, p.Group, err)
	}
	if p, err := resolveTapIDs(ctx, model.Port{Owner: "0065534", Group: "100"}); err != nil || p.Owner != "65534" || p.Group != "100" {
		t.Errorf("numeric IDs: %q:%q, %v", p.Owner, p.Group, err)
	}
	if p, err := resolveTapIDs(ctx, model.Port{}); err != nil || p.Owner != "" || p.Group != "" {
		t.Errorf("no IDs: %q:%q, %v", p.Owner, p.Group, err)
	}
	for _, p := range []model.Port{{Owner: "vnt-no-such-user"}, {Group: "vnt-no-such-user"}} {
		if _, err := resolveTapIDs(ctx, p); !errors.Is(err, v1.ErrInvalid) || !strings.Contains(err.Error(), `"vnt-no-such-user"`) {
			t.Errorf("%+v: %v, want invalid, naming it", p, err)
		}
	}
}
