package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// results holds every benchmark's metrics by name without the
// "Benchmark" prefix and the GOMAXPROCS suffix ("AttachSeq/ovs"), and by
// unit ("p99-ms@100", "ns/op").
type results map[string]map[string]float64

var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output; lines that are not results are
// skipped. A later result of the same benchmark replaces an earlier one.
func parse(r io.Reader, into results) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		m := map[string]float64{}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			m[f[i+1]] = v
		}
		into[name] = m
	}
	return sc.Err()
}

// get returns one figure and whether the run had it.
func (r results) get(bench, unit string) (float64, bool) {
	v, ok := r[bench][unit]
	return v, ok
}

// steps returns the series "<prefix>@N" of a benchmark as points sorted by N.
func (r results) steps(bench, prefix string) []point {
	var out []point
	for unit, v := range r[bench] {
		rest, ok := strings.CutPrefix(unit, prefix+"@")
		if !ok {
			continue
		}
		if n, err := strconv.ParseFloat(rest, 64); err == nil {
			out = append(out, point{n, v})
		}
	}
	sortPoints(out)
	return out
}
