// Package v1 is the vocabulary of ovs-vnet's REST API (docs/API.md,
// docs/openapi.yaml): the requests it takes and the answers it gives, as
// the daemon writes them and client, vnetctl and the CNI plugin read them.
//
// It is a leaf: it imports nothing of the project, so that a client links
// neither the datapath nor the flow compiler. The objects the daemon stores
// and their rules are package model's; model turns a spec into an object
// and an object into its view here.
package v1
