// Command benchreport turns the output of `make bench` into docs/BENCHMARKS.md
// and its SVG plots:
//
//	go run ./hack/benchreport -out docs -analysis hack/benchreport/analysis.md RESULTS...
//
// RESULTS are files of `go test -bench` output; the run's date is when the
// last of them was written. The machine is described as it is when the
// report is written, which `make bench` does right after the run.
package main

import (
	"bytes"
	"cmp"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	out := flag.String("out", "docs", "directory of BENCHMARKS.md; the plots go to its bench/ subdirectory")
	analysis := flag.String("analysis", "", "markdown appended to the report (the profiles and what they showed)")
	flag.Parse()
	if err := run(*out, *analysis, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(out, analysisFile string, inputs []string) error {
	if len(inputs) == 0 {
		return fmt.Errorf("no result files given")
	}
	r := results{}
	var ran time.Time // when the last result was written: the run's date
	for _, in := range inputs {
		f, err := os.Open(in)
		if err != nil {
			return err
		}
		if st, err := f.Stat(); err == nil && st.ModTime().After(ran) {
			ran = st.ModTime()
		}
		err = parse(f, r)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
	}
	if len(r) == 0 {
		return fmt.Errorf("no benchmark results in %s", strings.Join(inputs, ", "))
	}
	var analysis string
	if analysisFile != "" {
		raw, err := os.ReadFile(analysisFile)
		if err != nil {
			return err
		}
		analysis = string(raw)
	}
	plotDir := filepath.Join(out, "bench")
	if err := os.MkdirAll(plotDir, 0o755); err != nil {
		return err
	}
	plots := map[string]string{}
	for name, c := range charts(r) {
		file := filepath.Join(plotDir, name+".svg")
		if err := os.WriteFile(file, []byte(c.svg()), 0o644); err != nil {
			return err
		}
		plots[name] = "bench/" + name + ".svg"
	}
	var doc bytes.Buffer
	writeReport(&doc, r, describeMachine(ran), plots, analysis)
	return os.WriteFile(filepath.Join(out, "BENCHMARKS.md"), doc.Bytes(), 0o644)
}

func describeMachine(ran time.Time) machine {
	m := machine{date: ran.UTC().Format("2006-01-02 15:04 MST"), cores: runtime.NumCPU(), goVersion: runtime.Version()}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(raw), "MemTotal: %f kB", &kb); err == nil {
			m.memGiB = kb / (1 << 20)
		}
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		var b []byte
		for _, c := range u.Release {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		m.kernel = string(b)
	}
	m.ovs = "OVS version unknown"
	if v, err := exec.Command("ovs-vswitchd", "--version").Output(); err == nil {
		m.ovs, _, _ = strings.Cut(string(v), "\n")
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, cmp.Compare)
	return keys
}
