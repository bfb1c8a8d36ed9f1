package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// docsCNIVersion is the cniVersion docs/CNI.md's examples must use: the
// newest every runtime it names accepts (podman 4.3's CNI backend and
// containerd 1.6 refuse 1.1.0).
const docsCNIVersion = "1.0.0"

// docsCNIConfig is a CNI configuration as docs/CNI.md shows it.
type docsCNIConfig struct {
	where string // which example, for messages
	file  string // its name in the configuration directory
	conf  map[string]any
}

// docsBlock is an example of docs/CNI.md as a user copies it: a fenced
// block (lang is its language) or a heredoc (lang "heredoc").
type docsBlock struct{ lang, text string }

// docsCNIBlocks are docs/CNI.md's fenced blocks and heredocs, in the order
// they end.
func docsCNIBlocks(t *testing.T) []docsBlock {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docs", "CNI.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docsBlock
	var fenced, heredoc *docsBlock // the open ones: a heredoc may be in a fenced block
	for line := range strings.SplitSeq(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case fenced == nil && heredoc == nil && strings.HasPrefix(trimmed, "```"):
			fenced = &docsBlock{lang: strings.TrimPrefix(trimmed, "```")}
			continue
		case fenced != nil && heredoc == nil && trimmed == "```":
			blocks = append(blocks, *fenced)
			fenced = nil
			continue
		case fenced != nil:
			fenced.text += line + "\n"
		}
		switch {
		case heredoc != nil && trimmed == "JSON":
			blocks = append(blocks, *heredoc)
			heredoc = nil
		case heredoc != nil:
			heredoc.text += line + "\n"
		case strings.Contains(line, "<<'JSON'"):
			heredoc = &docsBlock{lang: "heredoc"}
		}
	}
	return blocks
}

// docsCNIExample is the one block of language lang in docs/CNI.md that
// holds marker: found by what it is, so the test fails, rather than test
// nothing, if an edit of the docs drops it or makes it ambiguous.
func docsCNIExample(t *testing.T, lang, marker string) string {
	t.Helper()
	var found []string
	for _, b := range docsCNIBlocks(t) {
		if b.lang == lang && strings.Contains(b.text, marker) {
			found = append(found, b.text)
		}
	}
	if len(found) != 1 {
		t.Fatalf("docs/CNI.md: %d ```%s blocks hold %q, want one", len(found), lang, marker)
	}
	return found[0]
}

// docsCNIConfigs reads the CNI configurations of docs/CNI.md as a user
// copies them: the ```json blocks that configure ovs-vnet-cni (the
// conflist), and the configuration the cnitool recipe writes with a
// heredoc. They are found by what they are, not where they are, and the
// test fails if either is missing or no longer parses, so an edit of the
// docs cannot leave them untested.
func docsCNIConfigs(t *testing.T) []docsCNIConfig {
	t.Helper()
	var lists, singles []docsCNIConfig
	for _, blk := range docsCNIBlocks(t) {
		b := blk.text
		if (blk.lang != "json" && blk.lang != "heredoc") || !strings.Contains(b, `"ovs-vnet-cni"`) {
			continue
		}
		var conf map[string]any
		if err := json.Unmarshal([]byte(b), &conf); err != nil {
			t.Fatalf("docs/CNI.md: an example of ovs-vnet-cni is not JSON: %v\n%s", err, b)
		}
		if conf["cniVersion"] != docsCNIVersion {
			t.Fatalf("docs/CNI.md: an example has cniVersion %v, want %s (what podman 4/5, containerd 1.6/1.7 and CRI-O accept):\n%s",
				conf["cniVersion"], docsCNIVersion, b)
		}
		if _, ok := conf["plugins"]; ok {
			lists = append(lists, docsCNIConfig{where: "docs/CNI.md conflist", file: "10-ovs-vnet.conflist", conf: conf})
		} else {
			singles = append(singles, docsCNIConfig{where: "docs/CNI.md cnitool recipe", file: "10-ovs-vnet.conf", conf: conf})
		}
	}
	if len(lists) == 0 || len(singles) == 0 {
		t.Fatalf("docs/CNI.md: found %d conflist(s) (```json blocks with \"plugins\") and %d heredoc configuration(s) (<<'JSON') of ovs-vnet-cni, want at least one of each",
			len(lists), len(singles))
	}
	return append(lists, singles...)
}

// cniPluginDirs are where CNI plugins other than ours are installed: Debian's
// containernetworking-plugins, and upstream's release tarball.
var cniPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// newCNIEnvFromDocs is a cniEnv for a configuration of docs/CNI.md, as
// written but for what locates things on this machine: a unique name, the
// test daemon's socket as "server", tokenFile as "token_file" where the
// example has one, and CNI_PATH holding the plugins it chains.
func newCNIEnvFromDocs(t *testing.T, bins cniBins, dc docsCNIConfig, sock, tokenFile string) *cniEnv {
	t.Helper()
	e := &cniEnv{t: t, bins: bins, confDir: t.TempDir(), ifname: "eth0", cniPath: bins.pluginDir, conf: dc.conf}
	e.conf["name"] = testbed.UniqueName("vnt-cnidoc-")
	plugins := []any{e.conf}
	if list, ok := e.conf["plugins"].([]any); ok {
		plugins = list
	}
	for _, p := range plugins {
		p, ok := p.(map[string]any)
		if !ok {
			t.Fatalf("%s: a plugin is not an object: %v", dc.where, p)
		}
		if p["type"] != "ovs-vnet-cni" {
			e.cniPath += ":" + cniPluginDir(t, dc.where, p["type"])
			continue
		}
		p["server"] = sock
		if _, ok := p["token_file"]; ok {
			p["token_file"] = tokenFile
		}
	}
	e.write(dc.file)
	return e
}

// unusedTokenFile is a token_file for the docs' examples, which have one:
// the test daemons want no token, but the plugin reads the file and sends it
// all the same.
func unusedTokenFile(t *testing.T) string {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tokenFile
}

// cniPluginDir is the directory holding CNI plugin typ.
func cniPluginDir(t *testing.T, where string, typ any) string {
	t.Helper()
	name, _ := typ.(string)
	for _, dir := range cniPluginDirs {
		if fi, err := os.Stat(filepath.Join(dir, name)); name != "" && err == nil && fi.Mode().IsRegular() {
			return dir
		}
	}
	testbed.Need(t, false, "CNI plugin "+name+", which "+where+" chains, in "+strings.Join(cniPluginDirs, " or ")+
		": apt-get install containernetworking-plugins (hack/install-deps.sh)")
	return ""
}

// runCNIDocs: each configuration docs/CNI.md shows, copied as written,
// attaches a container through the plugins it chains, answers in its
// cniVersion, passes CHECK, and DEL leaves no port.
func runCNIDocs(t *testing.T, d *daemon, bins cniBins, sock string) {
	tokenFile := unusedTokenFile(t)
	for _, dc := range docsCNIConfigs(t) {
		e := newCNIEnvFromDocs(t, bins, dc, sock, tokenFile)
		ns := newNetns(t, "vnt-cd-")
		path := "/var/run/netns/" + ns
		out, err := e.tool("add", path)
		if err != nil {
			t.Fatalf("%s: %v", dc.where, err)
		}
		port := cniPort(t, d, path)
		checkCNIResult(t, out, docsCNIVersion, port, path, "10.71.0.1")
		ping(t, ns, "10.71.0.1", true)
		for _, cmd := range []string{"check", "del"} {
			if _, err := e.tool(cmd, path); err != nil {
				t.Fatalf("%s: %v", dc.where, err)
			}
		}
		d.must("GET", "/v1/ports/"+port.Name, nil, 404, nil)
	}
}
