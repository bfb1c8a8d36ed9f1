package httpapi_test

import (
	"encoding"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/ovs-vnet/ovs-vnet/api/v1"
	"github.com/ovs-vnet/ovs-vnet/httpapi"
)

// The spec is what operators and client generators read; nothing but these
// tests, and TestOpenAPIAnswers beside them, would notice it drifting from
// routes(), the model's JSON or the statuses the handlers give.
const specFile = "../docs/openapi.yaml"

// openAPI is the parsed spec with the few look-ups the tests need.
type openAPI struct{ doc map[string]any }

func loadSpec(t *testing.T) *openAPI {
	t.Helper()
	data, err := os.ReadFile(specFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s is not YAML: %v", specFile, err)
	}
	return &openAPI{doc}
}

// mapping is node as a mapping with string keys; YAML gives other keys for
// an unquoted status code, which OpenAPI tools refuse.
func mapping(node any, at string) (map[string]any, error) {
	if m, ok := node.(map[string]any); ok {
		return m, nil
	}
	return nil, fmt.Errorf("%s: want a mapping with string keys (quote status codes: '200'), got %T", at, node)
}

func asList(v any) []any { l, _ := v.([]any); return l }

// resolve follows a local JSON pointer such as "#/components/schemas/Name".
func (s *openAPI) resolve(ref any) (any, error) {
	r, ok := ref.(string)
	if !ok || !strings.HasPrefix(r, "#/") {
		return nil, fmt.Errorf("$ref %v: only local references (#/...) are used here", ref)
	}
	var node any = s.doc
	for _, tok := range strings.Split(r[2:], "/") {
		m, _ := node.(map[string]any)
		next, ok := m[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
		if !ok {
			return nil, fmt.Errorf("$ref %s does not resolve: no %q", r, tok)
		}
		node = next
	}
	return node, nil
}

// deref follows the $refs of a response, parameter or schema to its target.
func (s *openAPI) deref(node any, at string) (map[string]any, error) {
	for range 10 {
		m, err := mapping(node, at)
		if err != nil || m["$ref"] == nil {
			return m, err
		}
		if node, err = s.resolve(m["$ref"]); err != nil {
			return nil, fmt.Errorf("%s: %w", at, err)
		}
	}
	return nil, fmt.Errorf("%s: $ref chain too long", at)
}

// operations maps "METHOD /path" to the spec's operation object.
func (s *openAPI) operations(t *testing.T) map[string]map[string]any {
	t.Helper()
	paths, err := mapping(s.doc["paths"], "paths")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]map[string]any{}
	for path, item := range paths {
		for _, m := range []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"} {
			if op, ok := item.(map[string]any)[m]; ok {
				key := strings.ToUpper(m) + " " + path
				if ops[key], err = mapping(op, key); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	return ops
}

// params are an operation's parameters, its path's included, by name.
func (s *openAPI) params(key string) (map[string]map[string]any, error) {
	_, path, _ := strings.Cut(key, " ")
	item := s.doc["paths"].(map[string]any)[path].(map[string]any)
	op, _ := item[strings.ToLower(strings.Split(key, " ")[0])].(map[string]any)
	out := map[string]map[string]any{}
	for i, p := range append(asList(item["parameters"]), asList(op["parameters"])...) {
		param, err := s.deref(p, fmt.Sprintf("%s.parameters[%d]", key, i))
		if err != nil {
			return nil, err
		}
		out[fmt.Sprint(param["name"])] = param
	}
	return out, nil
}

// response is the (dereferenced) response an operation lists for a status.
func (s *openAPI) response(op map[string]any, status string, at string) (map[string]any, bool, error) {
	rs, err := mapping(op["responses"], at+".responses")
	if err != nil || rs[status] == nil {
		return nil, false, err
	}
	r, err := s.deref(rs[status], at+".responses."+status)
	return r, err == nil, err
}

func TestOpenAPIRoutesMatchServer(t *testing.T) {
	served := map[string]bool{}
	for _, op := range httpapi.Served() {
		served[op] = true
	}
	inSpec := loadSpec(t).operations(t)
	for _, op := range slices.Sorted(maps.Keys(served)) {
		if inSpec[op] == nil {
			t.Errorf("the server serves %s (routes() in httpapi/api.go), but %s does not describe it", op, specFile)
		}
	}
	for _, op := range slices.Sorted(maps.Keys(inSpec)) {
		if !served[op] {
			t.Errorf("%s describes %s, which routes() in httpapi/api.go does not serve", specFile, op)
		}
	}
}

// walk calls fn on every mapping of node, with where it is.
func walk(node any, at string, fn func(m map[string]any, at string)) {
	switch n := node.(type) {
	case map[string]any:
		fn(n, at)
		for _, k := range slices.Sorted(maps.Keys(n)) {
			walk(n[k], at+"/"+k, fn)
		}
	case []any:
		for i, v := range n {
			walk(v, fmt.Sprintf("%s[%d]", at, i), fn)
		}
	case map[any]any:
		fn(nil, at)
	}
}

// TestOpenAPIDocument checks what a generator or validator would trip on,
// short of the full OpenAPI meta-schema.
func TestOpenAPIDocument(t *testing.T) {
	s := loadSpec(t)
	if v, _ := s.doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	if info, err := mapping(s.doc["info"], "info"); err != nil || info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs a title and a version: %v %v", info, err)
	}
	comps, err := mapping(s.doc["components"], "components")
	if err != nil {
		t.Fatal(err)
	}
	schemes, _ := comps["securitySchemes"].(map[string]any)
	walk(s.doc, "", func(m map[string]any, at string) {
		if m == nil {
			t.Errorf("%s: a mapping with non-string keys (quote status codes: '200')", at)
			return
		}
		if ref, ok := m["$ref"]; ok {
			if _, err := s.resolve(ref); err != nil {
				t.Errorf("%s: %v", at, err)
			}
		}
		// An example sits beside the schema it illustrates (media types,
		// parameters) or in it.
		if ex, ok := m["example"]; ok {
			schema, ok := m["schema"]
			if !ok {
				schema = m
			}
			if err := s.validate(schema, ex, at+"/example", true); err != nil {
				t.Errorf("example does not fit its schema: %v", err)
			}
		}
		for _, req := range asList(m["security"]) {
			names, err := mapping(req, at+"/security")
			if err != nil {
				t.Error(err)
			}
			for name := range names {
				if schemes[name] == nil {
					t.Errorf("%s/security names %q, which components.securitySchemes lacks", at, name)
				}
			}
		}
	})
	ids := map[string]string{}
	statusRE := regexp.MustCompile(`^[1-5][0-9][0-9]$`)
	for key, op := range s.operations(t) {
		id, _ := op["operationId"].(string)
		if id == "" || ids[id] != "" {
			t.Errorf("%s: operationId %q is missing or also %s's", key, id, ids[id])
		}
		ids[id] = key
		checkPathParams(t, s, key)
		rs, err := mapping(op["responses"], key+".responses")
		if err != nil || len(rs) == 0 {
			t.Errorf("%s: no responses (%v)", key, err)
		}
		for status := range rs {
			r, _, err := s.response(op, status, key)
			switch {
			case err != nil:
				t.Error(err)
			case !statusRE.MatchString(status):
				t.Errorf("%s: response key %q is not a status code", key, status)
			case r["description"] == nil:
				t.Errorf("%s %s: a response needs a description", key, status)
			case status == "204" && r["content"] != nil:
				t.Errorf("%s 204: has content, but a 204 has no body", key)
			case status != "204" && !hasSchemas(r["content"]):
				t.Errorf("%s %s: want content with a schema for each media type", key, status)
			}
		}
		if strings.HasPrefix(key, "PUT ") {
			rb, err := s.deref(op["requestBody"], key+".requestBody")
			if err != nil || rb["required"] != true || !hasSchemas(rb["content"]) {
				t.Errorf("%s: want a required requestBody with a schema (%v)", key, err)
			}
		}
	}
}

func hasSchemas(content any) bool {
	c, ok := content.(map[string]any)
	for _, mt := range c {
		if m, _ := mt.(map[string]any); m["schema"] == nil {
			return false
		}
	}
	return ok && len(c) > 0
}

// checkPathParams: each {param} of the path is a required path parameter
// with a schema, and each path parameter is in the path.
func checkPathParams(t *testing.T, s *openAPI, key string) {
	params, err := s.params(key)
	if err != nil {
		t.Error(err)
	}
	inPath := map[string]bool{}
	for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(key, -1) {
		inPath[m[1]] = true
		if p := params[m[1]]; p["in"] != "path" || p["required"] != true || p["schema"] == nil {
			t.Errorf("%s: {%s} needs a path parameter with required: true and a schema, got %v", key, m[1], p)
		}
	}
	for name, p := range params {
		if p["in"] == "path" && !inPath[name] {
			t.Errorf("%s: path parameter %q is not in the path", key, name)
		}
	}
}

// jsonFields are a struct's fields as encoding/json writes them: name → its
// JSON type, and whether it is always written (no omitempty).
func jsonFields(t reflect.Type) (types map[string]string, always []string) {
	kinds := map[reflect.Kind]string{reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer", reflect.Slice: "array", reflect.Struct: "object",
		reflect.Uint8: "integer", reflect.Uint16: "integer", reflect.Uint64: "integer"}
	types = map[string]string{}
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		typ := f.Type
		if typ.Kind() == reflect.Pointer {
			typ = typ.Elem() // written as what it points to (*bool: absent, true or false)
		}
		types[name] = kinds[typ.Kind()]
		if f.Type.Implements(reflect.TypeFor[encoding.TextMarshaler]()) {
			types[name] = "string" // netip.Addr, netip.Prefix
		}
		if types[name] == "" {
			types[name] = "(Go " + f.Type.String() + ", unknown to this test)"
		}
		if o := strings.Split(opts, ","); !slices.Contains(o, "omitempty") && !slices.Contains(o, "omitzero") {
			always = append(always, name)
		}
	}
	slices.Sort(always)
	return types, always
}

// schemaType is a schema's type, following $ref.
func (s *openAPI) schemaType(node any) string {
	for range 10 {
		m, _ := node.(map[string]any)
		if typ, ok := m["type"].(string); ok || m["$ref"] == nil {
			return typ
		}
		node, _ = s.resolve(m["$ref"])
	}
	return ""
}

func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	s := loadSpec(t)
	for _, c := range []struct {
		schema string
		typ    reflect.Type
	}{
		{"NetworkSpec", reflect.TypeFor[v1.NetworkSpec]()},
		{"Network", reflect.TypeFor[v1.Network]()},
		{"PortSpec", reflect.TypeFor[v1.PortSpec]()},
		{"Port", reflect.TypeFor[v1.Port]()},
		{"RouterSpec", reflect.TypeFor[v1.RouterSpec]()},
		{"Router", reflect.TypeFor[v1.Router]()},
		{"SecurityGroupSpec", reflect.TypeFor[v1.SecurityGroupSpec]()},
		{"Rule", reflect.TypeFor[v1.Rule]()},
		{"SecurityGroup", reflect.TypeFor[v1.SecurityGroup]()},
		{"SecurityGroupList", reflect.TypeFor[v1.SecurityGroupList]()},
		{"FloatingIPSpec", reflect.TypeFor[v1.FloatingIPSpec]()},
		{"FloatingIP", reflect.TypeFor[v1.FloatingIP]()},
		{"FloatingIPList", reflect.TypeFor[v1.FloatingIPList]()},
		{"PortForwardSpec", reflect.TypeFor[v1.PortForwardSpec]()},
		{"PortForward", reflect.TypeFor[v1.PortForward]()},
		{"PortForwardList", reflect.TypeFor[v1.PortForwardList]()},
		{"NATStats", reflect.TypeFor[v1.NATStats]()},
		{"Info", reflect.TypeFor[v1.Info]()},
		{"Host", reflect.TypeFor[v1.Host]()},
		{"Flow", reflect.TypeFor[v1.Flow]()},
		{"TraceStep", reflect.TypeFor[v1.Step]()},
		{"TraceResult", reflect.TypeFor[v1.Result]()},
	} {
		at := "components.schemas." + c.schema
		sch, err := s.deref(map[string]any{"$ref": "#/components/schemas/" + c.schema}, at)
		if err != nil {
			t.Error(err)
			continue
		}
		props, _ := sch["properties"].(map[string]any)
		types, always := jsonFields(c.typ)
		for _, name := range slices.Sorted(maps.Keys(types)) {
			if props[name] == nil {
				t.Errorf("%s has no property %q, which %v has", at, name, c.typ)
			} else if got := s.schemaType(props[name]); got != types[name] {
				t.Errorf("%s.%s is of type %q, but %v writes a JSON %s", at, name, got, c.typ, types[name])
			}
		}
		for _, name := range slices.Sorted(maps.Keys(props)) {
			if types[name] == "" {
				t.Errorf("%s has property %q, which %v has not (its JSON fields: %v)", at, name, c.typ, slices.Sorted(maps.Keys(types)))
			}
		}
		// Requests: the fields without omitempty are the ones the model
		// requires; answers: they are always written.
		required := slices.Sorted(func(yield func(string) bool) {
			for _, r := range asList(sch["required"]) {
				yield(fmt.Sprint(r))
			}
		})
		if !slices.Equal(required, always) {
			t.Errorf("%s.required is %v, but %v's fields without omitempty are %v", at, required, c.typ, always)
		}
		if strings.HasSuffix(c.schema, "Spec") && sch["additionalProperties"] != false {
			t.Errorf("%s: the server refuses unknown fields; want additionalProperties: false", at)
		}
	}
}

// validate checks v, decoded JSON or YAML, against a schema with the JSON
// Schema keywords the spec uses; any other keyword is an error, so that a
// rule added to the spec is never silently unchecked. closed refuses
// properties a schema does not list: an answer carries what the spec says.
func (s *openAPI) validate(schema, v any, at string, closed bool) error {
	sch, err := mapping(schema, at+" (schema)")
	if err != nil {
		return err
	}
	obj, isObj := v.(map[string]any)
	arr, str := asList(v), fmt.Sprint(v)
	for _, k := range slices.Sorted(maps.Keys(sch)) {
		kv := sch[k]
		switch k {
		case "description", "example", "default", "format", "title", "then", "else":
		case "$ref":
			target, err := s.resolve(kv)
			if err == nil {
				err = s.validate(target, v, at, closed)
			}
			if err != nil {
				return err
			}
		case "type":
			if !hasType(v, kv.(string)) {
				return fmt.Errorf("%s: %s is not of type %s", at, show(v), kv)
			}
		case "const", "enum":
			allowed := asList(kv)
			if k == "const" {
				allowed = []any{kv}
			}
			if !slices.ContainsFunc(allowed, func(e any) bool { return same(v, e) }) {
				return fmt.Errorf("%s: %s is not %s %s", at, show(v), k, show(kv))
			}
		case "pattern":
			re, err := regexp.Compile(kv.(string))
			if err != nil {
				return fmt.Errorf("%s: pattern %q: %v", at, kv, err)
			}
			if _, isStr := v.(string); isStr && !re.MatchString(str) {
				return fmt.Errorf("%s: %q does not match %s", at, str, kv)
			}
		case "minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems":
			size, applies := number(v)
			if _, isStr := v.(string); isStr && strings.HasSuffix(k, "Length") {
				size, applies = float64(utf8.RuneCountInString(str)), true
			} else if strings.HasSuffix(k, "Items") {
				size, applies = float64(len(arr)), arr != nil
			}
			limit, _ := number(kv)
			if applies && (strings.HasPrefix(k, "min") && size < limit || strings.HasPrefix(k, "max") && size > limit) {
				return fmt.Errorf("%s: %s breaks %s %v", at, show(v), k, kv)
			}
		case "uniqueItems":
			seen := map[string]bool{}
			for _, e := range arr {
				if kv == true && seen[show(e)] {
					return fmt.Errorf("%s: %s is listed twice, but items must be unique", at, show(e))
				}
				seen[show(e)] = true
			}
		case "items":
			for i, e := range arr {
				if err := s.validate(kv, e, fmt.Sprintf("%s[%d]", at, i), closed); err != nil {
					return err
				}
			}
		case "required":
			for _, r := range asList(kv) {
				if _, ok := obj[r.(string)]; isObj && !ok {
					return fmt.Errorf("%s: required property %q is missing from %s", at, r, show(v))
				}
			}
		case "properties", "additionalProperties":
			props, _ := sch["properties"].(map[string]any)
			for _, name := range slices.Sorted(maps.Keys(obj)) {
				switch {
				case props[name] != nil && k == "properties":
					if err := s.validate(props[name], obj[name], at+"."+name, closed); err != nil {
						return err
					}
				case props[name] == nil && (k == "properties" && closed || k == "additionalProperties" && kv == false):
					return fmt.Errorf("%s: property %q is not in the schema (it lists %v)", at, name, slices.Sorted(maps.Keys(props)))
				}
			}
		case "not":
			if s.validate(kv, v, at, false) == nil {
				return fmt.Errorf("%s: %s must not match %s", at, show(v), show(kv))
			}
		case "if":
			branch := sch["else"]
			if s.validate(kv, v, at, false) == nil {
				branch = sch["then"]
			}
			if branch != nil {
				if err := s.validate(branch, v, at, false); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("%s: keyword %q is unknown to this test's validator: teach it, or do without", at, k)
		}
	}
	return nil
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

func hasType(v any, typ string) bool {
	n, isNum := number(v)
	switch typ {
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "integer":
		return isNum && n == float64(int64(n))
	}
	return typ == "number" && isNum
}

func same(a, b any) bool {
	x, aNum := number(a)
	y, bNum := number(b)
	if aNum || bNum {
		return aNum && bNum && x == y
	}
	return reflect.DeepEqual(a, b)
}

func show(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 120 {
		return string(b[:117]) + "..."
	}
	return string(b)
}
