// Package golden compares test output with a file kept under testdata/, the
// reviewed record of what the code produces. After a deliberate change,
//
//	go test ./PKG -update
//
// rewrites the files of PKG, and the diff of testdata/ is what to review.
// It is imported by tests only.
package golden

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kylelemons/godebug/diff"
)

// update is registered here, once, so that every package whose tests import
// golden takes -update the same way.
var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with what the tests produce")

// Check fails tb unless got equals the file at path, showing the lines that
// differ. Under -update it writes got to path first (making its directory).
func Check(tb testing.TB, path, got string) {
	tb.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		tb.Errorf("%s differs (- file, + got; go test -update rewrites it, then review the diff):\n%s", path, Diff(string(want), got))
	}
}

// context is how many unchanged lines Diff shows around a change.
const context = 2

// Diff shows the lines that turn want into got, "-" and "+" prefixed, with a
// few unchanged lines around each change and the line number in want where
// it starts: a golden file is up to a few hundred lines, of which a change
// touches one or two.
func Diff(want, got string) string {
	var b strings.Builder
	line := 1           // in want, of the chunk's first line
	var before []string // the previous chunk's unchanged lines
	shown := 0          // of before, already shown after the previous change
	changed := false    // whether the previous chunk was a change
	for _, c := range diff.DiffChunks(lines(want), lines(got)) {
		change := len(c.Added)+len(c.Deleted) > 0
		if change {
			from := max(shown, len(before)-context)
			if !changed || from > shown {
				fmt.Fprintf(&b, "@@ line %d\n", line-(len(before)-from))
			}
			for _, l := range before[from:] {
				b.WriteString("  " + l + "\n")
			}
			for _, l := range c.Deleted {
				b.WriteString("- " + l + "\n")
			}
			for _, l := range c.Added {
				b.WriteString("+ " + l + "\n")
			}
			shown = min(context, len(c.Equal))
			for _, l := range c.Equal[:shown] {
				b.WriteString("  " + l + "\n")
			}
		} else {
			shown = 0
		}
		changed = change
		line += len(c.Deleted) + len(c.Equal)
		before = c.Equal
	}
	return b.String()
}

// lines splits text into lines, keeping a missing final newline visible.
func lines(text string) []string {
	if text == "" {
		return nil
	}
	ls := strings.Split(text, "\n")
	if ls[len(ls)-1] == "" {
		return ls[:len(ls)-1]
	}
	ls[len(ls)-1] += " (no newline at end)"
	return ls
}
