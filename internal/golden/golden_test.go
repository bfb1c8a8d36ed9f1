package golden

import "testing"

func TestDiff(t *testing.T) {
	for _, c := range []struct{ name, want, got, diff string }{
		{"one line changed", "a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n",
			"@@ line 2\n  b\n  c\n- d\n+ D\n  e\n  f\n"},
		{"two changes close together", "a\nb\nc\nd\ne\n", "A\nb\nc\nd\nE\n",
			"@@ line 1\n- a\n+ A\n  b\n  c\n  d\n- e\n+ E\n"},
		{"two changes apart", "1\n2\n3\n4\n5\n6\n7\n8\n", "x\n2\n3\n4\n5\n6\n7\ny\n",
			"@@ line 1\n- 1\n+ x\n  2\n  3\n@@ line 6\n  6\n  7\n- 8\n+ y\n"},
		{"missing final newline", "a\n", "a",
			"@@ line 1\n- a\n+ a (no newline at end)\n"},
		{"file empty", "", "a\n", "@@ line 1\n+ a\n"},
	} {
		if got := Diff(c.want, c.got); got != c.diff {
			t.Errorf("%s: Diff =\n%s\nwant\n%s", c.name, got, c.diff)
		}
	}
}
