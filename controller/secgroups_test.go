package controller_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/controller/controllertest"
	"github.com/ovs-vnet/ovs-vnet/controller/store"
	"github.com/ovs-vnet/ovs-vnet/datapath"
	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
	"github.com/ovs-vnet/ovs-vnet/model"
)

// policyText sums up a policy for the tests' comparisons:
// "groups db#2 web#1 | ports a=db,web | members db=10.0.0.2 web=10.0.0.2,10.0.0.3".
func policyText(p model.Policy) string {
	var groups, ports, members []string
	for _, name := range slices.Sorted(maps.Keys(p.Groups)) {
		groups = append(groups, fmt.Sprintf("%s#%d", name, p.Groups[name].ID))
	}
	for _, name := range slices.Sorted(maps.Keys(p.Ports)) {
		ports = append(ports, fmt.Sprintf("%s=%s", name, p.Ports[name]))
	}
	for _, name := range slices.Sorted(maps.Keys(p.Members)) {
		var addrs []string
		for _, a := range p.Members[name] {
			addrs = append(addrs, a.String())
		}
		members = append(members, name+"="+strings.Join(addrs, ","))
	}
	return fmt.Sprintf("groups %s | ports %s | members %s", strings.Join(groups, " "), strings.Join(ports, " "), strings.Join(members, " "))
}

// policyIs checks the policy the fake was last handed.
func (f *fixture) policyIs(t *testing.T, want string) {
	t.Helper()
	if got := policyText(f.Fake.LastPolicy()); got != want {
		t.Fatalf("policy\n  %s\nwant\n  %s", got, want)
	}
}

// callsAre checks the changes asked of the fake since the last look.
func (f *fixture) callsAre(t *testing.T, want ...string) {
	t.Helper()
	if got := f.Fake.TakeCalls(); !slices.Equal(got, want) {
		t.Fatalf("calls %q, want %q", got, want)
	}
}

// stored sums up the groups and the ports' lists the store holds:
// "ssh#2/0 web#1/1 a=web", a group as its name, ID and number of rules.
func (f *fixture) stored(t *testing.T) string {
	t.Helper()
	s, err := f.St.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, g := range s.SecurityGroups {
		out = append(out, fmt.Sprintf("%s#%d/%d", g.Name, g.ID, len(g.Rules)))
	}
	for _, p := range s.Ports {
		out = append(out, fmt.Sprintf("%s=%s", p.Name, p.SecurityGroups))
	}
	return strings.Join(out, " ")
}

const (
	webRules = `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"80"}]}`
	dbRules  = `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"5432","remote_group":"web"}]}`
)

// TestSecurityGroups: groups are stored with IDs, their references
// checked, and every change that alters the policy hands it over; a
// request that changes nothing sends nothing.
func TestSecurityGroups(t *testing.T) {
	f := newFixture(t)
	f.callsAre(t, "policy") // the start's, of an empty state
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 404)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	f.callsAre(t, "policy", "policy")
	f.policyIs(t, "groups db#2 web#1 | ports  | members ")
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 200)
	f.callsAre(t) // the same rules: nothing to send

	for _, bad := range []string{
		`{"rules":[{"direction":"ingress","protocol":"tcp","ports":"90-80"}]}`,
		`{"rules":[{"direction":"ingress","remote":"10.0.0.0/8","remote_group":"web"}]}`,
		`{"rules":[{"direction":"ingress","protocol":"icmp","ports":"80"}]}`,
		`{"rules":[{"direction":"up"}]}`,
		`{"rules":null}`,
		`{"rules":[` + strings.Repeat(`{"direction":"ingress"},`, 1000) + `{"direction":"ingress"}]}`,
	} {
		f.mustDo(t, "PUT", "/v1/security-groups/web", bad, 400)
	}
	f.callsAre(t)
	view := f.mustDo(t, "GET", "/v1/security-groups/web", "", 200)
	if fmt.Sprint(view["rules"], view["referenced_by"]) != "[map[direction:ingress ports:80 protocol:tcp]] [db]" {
		t.Fatalf("web is %v after refused PUTs", view)
	}

	dir := t.TempDir()
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2","security_groups":["web","db"]}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ip":"10.0.0.3","security_groups":["web"]}`, 201)
	// The policy names a new port before its attach: its rules come with it.
	f.callsAre(t, "policy", "attach a", "policy", "attach b")
	f.policyIs(t, "groups db#2 web#1 | ports a=db,web b=web | members db=10.0.0.2 web=10.0.0.2,10.0.0.3")
	if view := f.mustDo(t, "GET", "/v1/security-groups/web", "", 200); fmt.Sprint(view["ports"]) != "[a b]" {
		t.Fatalf("web lists ports %v", view["ports"])
	}
	if list := f.mustDo(t, "GET", "/v1/security-groups", "", 200); len(list["security_groups"].([]any)) != 2 {
		t.Fatalf("list: %v", list)
	}
	f.Fake.Mu.Lock()
	f.Fake.RuleStats = []datapath.RuleStats{{Group: "db", Index: 0, Packets: 9, Bytes: 900}, {Group: "web", Index: 0, Packets: 5, Bytes: 500}}
	f.Fake.Mu.Unlock()
	if view := f.mustDo(t, "GET", "/v1/security-groups/web?stats=true", "", 200); fmt.Sprint(view["hits"]) != "[map[bytes:500 packets:5 rule:0]]" {
		t.Fatalf("web's hits %v", view["hits"])
	}
	if view := f.mustDo(t, "GET", "/v1/security-groups/web", "", 200); view["hits"] != nil {
		t.Fatalf("hits %v without stats=true", view["hits"])
	}

	out := f.mustDo(t, "DELETE", "/v1/security-groups/web", "", 409)
	if msg := fmt.Sprint(out["error"]); msg != `conflict: security group "web" is used by ports a, b and groups db` {
		t.Fatalf("DELETE web: %s", msg)
	}
	f.mustDo(t, "DELETE", "/v1/security-groups/nope", "", 404)
	f.callsAre(t)

	f.mustDo(t, "DELETE", "/v1/ports/a", "", 204)
	// Out of the policy once it is detached.
	f.callsAre(t, "detach a", "policy")
	f.policyIs(t, "groups db#2 web#1 | ports b=web | members web=10.0.0.3")
	f.mustDo(t, "DELETE", "/v1/security-groups/db", "", 204)
	f.callsAre(t, "policy")
	f.policyIs(t, "groups web#1 | ports b=web | members web=10.0.0.3")
	if s, err := f.St.Load(context.Background()); err != nil || len(s.SecurityGroups) != 1 {
		t.Fatalf("stored groups %v %v", s.SecurityGroups, err)
	}
	if got := f.LoggedErrors(); len(got) > 0 {
		t.Fatalf("refusals logged errors: %q", got)
	}
}

// TestPortGroupsInPlace: a PUT of an existing port that changes only its
// security groups changes them in place (docs/DESIGN.md §8.0): 200, the
// record and the policy change, the port is neither detached nor
// attached. Any other change is 409, an unknown group 404, and neither
// changes anything.
func TestPortGroupsInPlace(t *testing.T) {
	f := newFixture(t)
	f.callsAre(t, "policy") // the start's, of an empty state
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/ssh", `{"rules":[{"direction":"ingress","protocol":"tcp","ports":"22"}]}`, 201)
	dir := t.TempDir()
	spec := func(extra string) string {
		return `{"network":"blue","netns":"` + dir + `","ip":"10.0.0.2"` + extra + `}`
	}
	f.mustDo(t, "PUT", "/v1/ports/a", spec(""), 201)
	f.callsAre(t, "policy", "policy", "attach a") // a port without groups changes no policy
	f.policyIs(t, "groups ssh#2 web#1 | ports  | members ")

	out := f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["web"]`), 200)
	if fmt.Sprintf("%v %v", out["security_groups"], out["status"]) != "[web] forwarding" {
		t.Fatalf("answer %v", out)
	}
	f.callsAre(t, "policy")
	f.policyIs(t, "groups ssh#2 web#1 | ports a=web | members web=10.0.0.2")
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["ssh","web"]`), 200)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["web","ssh"]`), 200) // the same list
	f.callsAre(t, "policy")
	f.policyIs(t, "groups ssh#2 web#1 | ports a=ssh,web | members ssh=10.0.0.2 web=10.0.0.2")

	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"ifname":"eth1","security_groups":["web"]`), 409)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["web","nope"]`), 404)
	f.mustDo(t, "PUT", "/v1/ports/a", spec(`,"security_groups":["web","web"]`), 400)
	f.mustDo(t, "DELETE", "/v1/security-groups/ssh", "", 409)
	f.callsAre(t) // the store refused the unknown group: nothing to undo
	f.policyIs(t, "groups ssh#2 web#1 | ports a=ssh,web | members ssh=10.0.0.2 web=10.0.0.2")
	if ports, err := controllertest.StoredPorts(t, f.St); err != nil || ports[0].SecurityGroups != "ssh,web" {
		t.Fatalf("stored %v %v", ports, err)
	}

	f.mustDo(t, "PUT", "/v1/ports/a", spec(""), 200) // a PUT is a whole spec: no groups
	f.callsAre(t, "policy")
	f.policyIs(t, "groups ssh#2 web#1 | ports  | members ")
	if out := f.mustDo(t, "GET", "/v1/ports/a", "", 200); out["security_groups"] != nil {
		t.Fatalf("port a still lists %v", out["security_groups"])
	}
	f.mustDo(t, "DELETE", "/v1/security-groups/ssh", "", 204)
}

// TestPolicyOfUnknownGroup: a port listing a group this host has not
// heard of yet — made on another host moments ago, here stored behind
// the controller's back — is handed over with its whole list, so that
// the backend guards it (an unknown group allows nothing, and limits
// egress: model.Policy), never without it. Both for a new port and for a
// change in place, and with no group known at all.
func TestPolicyOfUnknownGroup(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	unknown := func(name string) {
		t.Helper()
		if _, _, _, err := f.St.PutSecurityGroup(context.Background(), model.SecurityGroup{Name: name, Rules: []model.Rule{}}); err != nil {
			t.Fatal(err)
		}
	}
	unknown("xn")
	f.mustDo(t, "PUT", "/v1/ports/x1", `{"network":"blue","type":"tap","ip":"10.0.0.2","security_groups":["xn"]}`, 201)
	f.policyIs(t, "groups  | ports x1=xn | members xn=10.0.0.2")

	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/ports/w1", `{"network":"blue","type":"tap","ip":"10.0.0.3","security_groups":["web"]}`, 201)
	unknown("xm")
	f.mustDo(t, "PUT", "/v1/ports/w1", `{"network":"blue","type":"tap","ip":"10.0.0.3","security_groups":["web","xm"]}`, 200)
	f.policyIs(t, "groups web#2 | ports w1=web,xm x1=xn | members web=10.0.0.3 xm=10.0.0.3 xn=10.0.0.2")
	p := f.Fake.LastPolicy()
	for _, port := range []string{"w1", "x1"} {
		if !p.Guarded(port) || !p.EgressLimited(port) {
			t.Errorf("%s: guarded %v, egress limited %v; want both", port, p.Guarded(port), p.EgressLimited(port))
		}
	}
}

// TestGroupPutOverUncached: a group PUT over a group this host has not
// heard of yet (made on another host, here stored behind the controller's
// back) is a replace — 200, not 201 — and when the backend refuses it,
// the group is put back as the store had it, not deleted.
func TestGroupPutOverUncached(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"xn", "xm"} {
		g := model.SecurityGroup{Name: name, Rules: []model.Rule{{Direction: model.Ingress}}}
		if _, _, _, err := f.St.PutSecurityGroup(context.Background(), g); err != nil {
			t.Fatal(err)
		}
	}
	f.mustDo(t, "PUT", "/v1/security-groups/xn", `{"rules":[]}`, 200)
	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = errors.New("switch refused")
	f.Fake.Mu.Unlock()
	f.mustDo(t, "PUT", "/v1/security-groups/xm", `{"rules":[]}`, 500)
	if got := f.stored(t); got != "xm#2/1 xn#1/0" {
		t.Fatalf("stored %s; want xm as it was, xn replaced", got)
	}
	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = nil
	f.Fake.Mu.Unlock()
	if out := f.mustDo(t, "GET", "/v1/security-groups/xm", "", 200); fmt.Sprint(out["rules"]) != "[map[direction:ingress protocol:any]]" {
		t.Fatalf("xm is %v", out)
	}
}

// TestPolicyRefused: when the backend refuses the policy, the request
// fails and changes nothing — in the store, in what the API shows, and in
// the policy the backend is left with.
func TestPolicyRefused(t *testing.T) {
	f := newFixture(t)
	f.callsAre(t, "policy") // the start's, of an empty state
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/ssh", `{"rules":[]}`, 201)
	dir := t.TempDir()
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2","security_groups":["web"]}`, 201)
	const before = "groups ssh#2 web#1 | ports a=web | members web=10.0.0.2"
	f.policyIs(t, before)
	was := f.stored(t)

	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = errors.New("switch refused")
	f.Fake.Mu.Unlock()
	out := f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 500)
	if msg := fmt.Sprint(out["error"]); !strings.Contains(msg, `enforce security group "db": switch refused`) {
		t.Errorf("refused PUT says %q", msg) // the store took it; the backend refused
	}
	f.mustDo(t, "PUT", "/v1/security-groups/web", `{"rules":[]}`, 500)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","netns":"`+dir+`","ip":"10.0.0.2","security_groups":["ssh"]}`, 500)
	f.mustDo(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","security_groups":["web"]}`, 500)
	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = nil
	attachedB := f.Fake.Ports["b"]
	f.Fake.Mu.Unlock()

	if attachedB || slices.Contains(f.Fake.TakeCalls(), "attach b") {
		t.Fatal("port b attached with a policy the backend refused")
	}
	f.policyIs(t, before)
	if got := f.stored(t); got != was {
		t.Fatalf("stored %s, was %s", got, was)
	}
	f.mustDo(t, "GET", "/v1/security-groups/db", "", 404)
	f.mustDo(t, "GET", "/v1/ports/b", "", 404)
	if out := f.mustDo(t, "GET", "/v1/security-groups/web", "", 200); fmt.Sprint(out["rules"], out["ports"]) != "[map[direction:ingress ports:80 protocol:tcp]] [a]" {
		t.Fatalf("web is %v", out)
	}
	// The next change hands over the policy with it: nothing was left half done.
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	f.policyIs(t, "groups db#3 ssh#2 web#1 | ports a=web | members web=10.0.0.2")
}

// TestGroupDeleteRefused: a group's DELETE is not undone when the
// backend refuses the policy without it — stored again it could come back
// under another ID — and the policy is handed over again in the
// background until the backend takes it.
func TestGroupDeleteRefused(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/ssh", `{"rules":[]}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = errors.New("switch refused")
	f.Fake.Mu.Unlock()
	f.mustDo(t, "DELETE", "/v1/security-groups/ssh", "", 204)
	f.mustDo(t, "GET", "/v1/security-groups/ssh", "", 404)
	if got := f.stored(t); got != "db#3/1 web#1/1" {
		t.Fatalf("stored %s; want web and db", got)
	}
	f.policyIs(t, "groups db#3 ssh#2 web#1 | ports  | members ") // refused: the backend's is the old
	f.Fake.Mu.Lock()
	f.Fake.FailPolicy = nil
	f.Fake.Mu.Unlock()
	const want = "groups db#3 web#1 | ports  | members "
	waitUntil(t, "the policy without ssh", func() bool { return policyText(f.Fake.LastPolicy()) == want })
}

// TestPolicyLeftBeforeAddressFreed: a port with groups that is deleted,
// or whose attach is rolled back, keeps its address until the policy
// without it is handed over: a port given the address meanwhile would be
// a member of the gone port's groups until that policy lands.
func TestPolicyLeftBeforeAddressFreed(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2","security_groups":["web"]}`, 201)
	holdPolicy := func() (release func()) {
		gate := make(chan struct{})
		f.Fake.Mu.Lock()
		f.Fake.PolicyGate = gate
		f.Fake.Mu.Unlock()
		f.Fake.PolicyHeld.Store(0)
		release = sync.OnceFunc(func() {
			f.Fake.Mu.Lock()
			f.Fake.PolicyGate = nil
			f.Fake.Mu.Unlock()
			close(gate)
		})
		t.Cleanup(release) // a failed check must not leave the controller stuck
		return release
	}
	// request runs in the background and answers on the channel.
	request := func(method, path, body string) <-chan int {
		code := make(chan int, 1)
		go func() {
			c, _ := f.Do(t, method, path, body)
			code <- c
		}()
		return code
	}
	// addressHeld checks, while the policy without the gone port is held,
	// that port name cannot take its address ip (409); then lets the
	// policy through, checks the request answered want, and that the
	// address is free for name.
	addressHeld := func(name, ip string, release func(), answer <-chan int, want int) {
		t.Helper()
		spec := `{"network":"blue","type":"tap","ip":"` + ip + `"}`
		waitUntil(t, "a policy held", func() bool { return f.Fake.PolicyHeld.Load() > 0 })
		f.mustDo(t, "PUT", "/v1/ports/"+name, spec, 409)
		release()
		if code := <-answer; code != want {
			t.Fatalf("the request whose policy was held: %d, want %d", code, want)
		}
		f.policyIs(t, "groups web#1 | ports  | members ")
		f.mustDo(t, "PUT", "/v1/ports/"+name, spec, 201)
	}

	release := holdPolicy()
	addressHeld("c", "10.0.0.2", release, request("DELETE", "/v1/ports/a", ""), 204)

	// An attach rolled back: the policy that named b was handed over
	// before the attach; the one without it is held.
	attach := make(chan struct{})
	openAttach := sync.OnceFunc(func() { close(attach) })
	t.Cleanup(openAttach)
	f.Fake.Mu.Lock()
	f.Fake.FailPorts["b"] = errors.New("switch refused")
	f.Fake.Mu.Unlock()
	f.Fake.Gate = attach // no attach runs yet: set before the request
	answer := request("PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ip":"10.0.0.3","security_groups":["web"]}`)
	waitUntil(t, "b's attach", func() bool { return f.Fake.Attaching.Load() > 0 })
	release = holdPolicy()
	openAttach()
	addressHeld("d", "10.0.0.3", release, answer, 500)
}

// TestGroupsNeedAnEnforcer: a backend that enforces no security groups
// gets none: a group, or a port that lists one, is refused (501) and
// nothing of it kept — stored, it would promise a filter nothing applies.
func TestGroupsNeedAnEnforcer(t *testing.T) {
	f := &fixture{controllertest.NewUnenforcingFixture(t)}
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	dir := t.TempDir()
	out := f.mustDo(t, "PUT", "/v1/ports/web1", `{"network":"blue","netns":"`+dir+`","security_groups":["web"]}`, 501)
	if !strings.Contains(fmt.Sprint(out["error"]), "does not enforce security groups") {
		t.Fatalf("%v", out)
	}
	f.mustDo(t, "PUT", "/v1/security-groups/db", `{"rules":[]}`, 501)
	f.mustDo(t, "GET", "/v1/security-groups/web?stats=true", "", 501)
	if ports, _ := controllertest.StoredPorts(t, f.St); len(ports) != 0 || f.Fake.Ports["web1"] {
		t.Fatalf("refused port kept: stored %v, attached %v", ports, f.Fake.Ports["web1"])
	}
	f.mustDo(t, "GET", "/v1/security-groups/db", "", 404)
	f.mustDo(t, "PUT", "/v1/ports/web1", `{"network":"blue","netns":"`+dir+`"}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/web1", `{"network":"blue","netns":"`+dir+`","security_groups":["web"]}`, 501)
}

// TestPolicyAtStart: a restarted daemon hands the backend the policy of the
// stored state before it attaches a port, and the same to Prune — equal to
// the one the last run left, so that a backend holding it sends nothing.
func TestPolicyAtStart(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := startFixture(t, st)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	f.mustDo(t, "PUT", "/v1/ports/a", `{"network":"blue","type":"tap","ip":"10.0.0.2","security_groups":["db"]}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/b", `{"network":"blue","type":"tap","ip":"10.0.0.3","security_groups":["web"]}`, 201)
	f.mustDo(t, "PUT", "/v1/ports/c", `{"network":"blue","type":"tap","ip":"10.0.0.4"}`, 201)
	last := f.Fake.LastPolicy()
	f.Stop()

	g := startFixture(t, st)
	calls := g.Fake.TakeCalls()
	if len(calls) != 4 || calls[0] != "policy" {
		t.Fatalf("calls at start %q; want the policy, then the attaches", calls)
	}
	if p := g.Fake.LastPolicy(); !p.Equal(last) || policyText(p) != policyText(last) {
		t.Fatalf("policy at start\n  %s\nlast run's\n  %s", policyText(p), policyText(last))
	}
	g.Fake.Mu.Lock()
	pruned := g.Fake.Pruned.Policy
	g.Fake.Mu.Unlock()
	if policyText(pruned) != policyText(last) {
		t.Fatalf("Prune got\n  %s\nwant\n  %s", policyText(pruned), policyText(last))
	}
}

// TestClusterSecurityGroups: groups are the cluster's. Each host's policy
// holds every group, its own ports' groups, and the addresses of every
// host's ports as members — kept current as other hosts' ports come, change
// their groups in place, and go.
func TestClusterSecurityGroups(t *testing.T) {
	etcd := testbed.StartEtcd(t, 1)
	h1 := startClusterHost(t, etcd, "h1", "192.0.2.1")
	h2 := startClusterHost(t, etcd, "h2", "192.0.2.2")
	policy := func(h *clusterHost, want string) {
		t.Helper()
		waitUntil(t, h.C.HostName()+"'s policy "+want, func() bool { return policyText(h.Fake.LastPolicy()) == want })
	}
	h1.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.1.0.0/24"}`, 201)
	h2.mustDo(t, "PUT", "/v1/networks/red", `{"subnet":"10.2.0.0/24"}`, 201)
	h1.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	policy(h2, "groups web#1 | ports  | members ")
	h2.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	policy(h1, "groups db#2 web#1 | ports  | members ")

	h1.mustDo(t, "PUT", "/v1/ports/w1", `{"network":"blue","type":"tap","ip":"10.1.0.11","security_groups":["web"]}`, 201)
	h2.mustDo(t, "PUT", "/v1/ports/d2", `{"network":"red","type":"tap","ip":"10.2.0.12","security_groups":["db"]}`, 201)
	policy(h1, "groups db#2 web#1 | ports w1=web | members db=10.2.0.12 web=10.1.0.11")
	policy(h2, "groups db#2 web#1 | ports d2=db | members db=10.2.0.12 web=10.1.0.11")

	// Another host's port changed in place, and one created: members here.
	h2.mustDo(t, "PUT", "/v1/ports/d2", `{"network":"red","type":"tap","ip":"10.2.0.12","security_groups":["db","web"]}`, 200)
	h2.mustDo(t, "PUT", "/v1/ports/w2", `{"network":"red","type":"tap","ip":"10.2.0.13","security_groups":["web"]}`, 201)
	policy(h1, "groups db#2 web#1 | ports w1=web | members db=10.2.0.12 web=10.1.0.11,10.2.0.12,10.2.0.13")
	// A group only another host's port lists cannot go either.
	h1.mustDo(t, "DELETE", "/v1/security-groups/db", "", 409)
	h2.mustDo(t, "DELETE", "/v1/ports/w2", "", 204)
	h2.mustDo(t, "DELETE", "/v1/ports/d2", "", 204)
	policy(h1, "groups db#2 web#1 | ports w1=web | members web=10.1.0.11")
	h1.mustDo(t, "DELETE", "/v1/security-groups/db", "", 204)
	policy(h2, "groups web#1 | ports  | members web=10.1.0.11")
}

// TestPolicyOfConcurrentChanges: ports with groups attached, changed in
// place and deleted side by side leave the backend with the policy of the
// state they end in — each hand-over computed after the last.
func TestPolicyOfConcurrentChanges(t *testing.T) {
	f := newFixture(t)
	f.mustDo(t, "PUT", "/v1/networks/blue", `{"subnet":"10.0.0.0/24"}`, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/web", webRules, 201)
	f.mustDo(t, "PUT", "/v1/security-groups/db", dbRules, 201)
	const ports = 24
	spec := func(i int, groups string) string {
		return fmt.Sprintf(`{"network":"blue","type":"tap","ip":"10.0.0.%d","security_groups":[%s]}`, 10+i, groups)
	}
	for i := range ports / 2 {
		f.mustDo(t, "PUT", fmt.Sprintf("/v1/ports/p%d", i), spec(i, `"web"`), 201)
	}
	var wg sync.WaitGroup
	for i := range ports {
		wg.Go(func() {
			path := fmt.Sprintf("/v1/ports/p%d", i)
			switch {
			case i >= ports/2:
				f.mustDo(t, "PUT", path, spec(i, `"web","db"`), 201)
			case i%2 == 0:
				f.mustDo(t, "PUT", path, spec(i, `"db"`), 200)
			default:
				f.mustDo(t, "DELETE", path, "", 204)
			}
		})
	}
	wg.Wait()
	var local, db, web []string
	for i := range ports {
		ip := fmt.Sprintf("10.0.0.%d", 10+i)
		switch {
		case i >= ports/2:
			local, db, web = append(local, fmt.Sprintf("p%d=db,web", i)), append(db, ip), append(web, ip)
		case i%2 == 0:
			local, db = append(local, fmt.Sprintf("p%d=db", i)), append(db, ip)
		}
	}
	slices.SortFunc(local, func(a, b string) int { // by port name, as policyText
		return strings.Compare(strings.Split(a, "=")[0], strings.Split(b, "=")[0])
	})
	f.policyIs(t, fmt.Sprintf("groups db#2 web#1 | ports %s | members db=%s web=%s",
		strings.Join(local, " "), strings.Join(db, ","), strings.Join(web, ",")))
}
