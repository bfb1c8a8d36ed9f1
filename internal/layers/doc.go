// Package layers holds the project's import rules, checked by its test
// with `go list -deps`:
//
//   - api/v1, the REST API's vocabulary, imports no package of the project;
//   - the API's users — client, cli, cni and the binaries vnetctl and
//     ovs-vnet-cni — link no model, no flows/ package, no datapath
//     package, no trace and no controller: they speak api/v1 only;
//   - datapath, the backends' interface, links no flows/ package and not
//     trace: each backend brings its own flows and explainer.
package layers
