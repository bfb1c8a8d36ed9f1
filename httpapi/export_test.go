package httpapi

import "github.com/prometheus/client_golang/prometheus"

// Served lists "METHOD /path" of every route the handler serves, for the
// test that holds them to docs/openapi.yaml (package httpapi_test).
func Served() []string {
	var ops []string
	for _, rt := range (&API{}).routes(prometheus.NewRegistry()) {
		for m := range rt.methods {
			ops = append(ops, m+" "+rt.path)
		}
	}
	return ops
}
