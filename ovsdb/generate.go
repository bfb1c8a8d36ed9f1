// Package ovsdb is the daemon's only path to the Open vSwitch database: one
// long-lived libovsdb client with a monitor cache, used for bridges and ports.
package ovsdb

// The models are generated from the schema of the OVS that runs here and are
// committed, so a build needs neither the schema nor the generator.
//go:generate go tool modelgen -p vswitch -o vswitch /usr/share/openvswitch/vswitch.ovsschema
