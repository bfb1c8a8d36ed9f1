package fault

import "testing"

// TestPointIsNoop: without the faultinject tag Point never kills, whatever
// the environment says.
func TestPointIsNoop(t *testing.T) {
	if Enabled {
		t.Skip("built with faultinject")
	}
	t.Setenv(Env, "x")
	Point("x")
}
