// Package layers holds the project's import rules, checked by its tests
// with `go list`:
//
//   - api/v1, the REST API's vocabulary, imports no package of the project;
//   - the API's users — client, cli, cni and the binaries vnetctl and
//     ovs-vnet-cni — link no model, no flows/ package, no datapath
//     package, no controller and no httpapi: they speak api/v1 only;
//   - datapath, the backends' interface, links no flows/ package and none
//     of its own subpackages (not datapath/explain): each backend brings
//     its own flows and explainer;
//   - the pipeline compiler (flows/pipeline) links not the applier
//     (flows/reconcile), and the flow-set types both share (flows/flowset)
//     link neither;
//   - the daemon's main (cmd/ovs-vnet) imports no flows/ package itself:
//     it only wires, and the OVS backend builds its flow machinery;
//   - the controller core neither imports net/http nor links httpapi: the
//     HTTP layer is httpapi's, over the controller's exported methods;
//   - no binary links a package written for tests (controllertest,
//     flowsettest, testbed, golden, testpki).
package layers
