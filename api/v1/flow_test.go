package v1

import "testing"

func TestOwnerString(t *testing.T) {
	for _, c := range []struct {
		kind, name, host, want string
	}{
		{OwnerPipeline, "", "", "pipeline"},
		{OwnerNetwork, "blue", "", "network blue"},
		{OwnerRoutes, "blue", "", "routes of network blue"},
		{OwnerPort, "web1", "", "port web1"},
		{OwnerRemote, "db2", "h2", "remote port db2 on h2"},
		{OwnerRule, RuleOwner("db", 2), "", "rule 2 of security group db"},
		{OwnerRule, "db", "", "rule of security group db"},
		{OwnerMember, "web1", "", "member port web1"},
		{OwnerMember, "db2", "h2", "member port db2 on h2"},
	} {
		if got := OwnerString(c.kind, c.name, c.host); got != c.want {
			t.Errorf("OwnerString(%q, %q, %q) = %q, want %q", c.kind, c.name, c.host, got, c.want)
		}
	}
	if DropMeaning(DropPolicy) == DropPolicy {
		t.Error("drop reason policy has no meaning for people")
	}
}
