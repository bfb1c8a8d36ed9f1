// Package fault is a test-only crash hook. Point marks a step of a
// multi-step change (an attach, a detach) where a crash must still converge
// on restart. In a normal build Point does nothing and costs nothing; in a
// build with the tag faultinject, a process whose environment has
// OVS_VNET_FAULT=<name> kills itself with SIGKILL the moment it reaches the
// point of that name: no deferred function, no rollback, no flush runs, as
// in a real crash; with OVS_VNET_FAULT=hang:<name> the step blocks for good
// instead, as a kernel call that never returns would. e2e/crash_test.go
// builds such a daemon and drives it through every point.
package fault

// Env is the environment variable naming the point to crash at.
const Env = "OVS_VNET_FAULT"
