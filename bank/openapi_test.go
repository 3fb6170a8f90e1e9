package bank_test

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"github.com/otpcash/otpcash/bank"
	"github.com/otpcash/otpcash/bank/api"
	"github.com/otpcash/otpcash/bank/internal/banktest"
)

// openAPIDoc is bank/api/openapi.yaml as JSON values.
func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Fatalf("openapi.yaml: openapi %q, want 3.1.x", v)
	}
	return doc
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documentedRoutes lists the doc's operations as "METHOD /path".
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatal("openapi.yaml: no paths")
	}
	var out []string
	for path, item := range paths {
		ops, ok := item.(map[string]any)
		if !ok {
			t.Fatalf("openapi.yaml: path %s is not an object", path)
		}
		for name := range ops {
			if slices.Contains(httpMethods, name) {
				out = append(out, strings.ToUpper(name)+" "+path)
			}
		}
	}
	return out
}

// TestOpenAPIRoutes: every route the bank serves is described, and every
// operation described is served.
func TestOpenAPIRoutes(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	served := e.Bank.Routes()
	documented := documentedRoutes(t, openAPIDoc(t))
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in bank/api/openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s is in bank/api/openapi.yaml but not served", r)
		}
	}
}

// TestOpenAPIDeprecated: the operations the description marks deprecated
// are the routes whose answers say so (a Deprecation header and their
// successor's Link), and no other.
func TestOpenAPIDeprecated(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	h := e.Bank.Handler()
	doc := openAPIDoc(t)
	for _, r := range documentedRoutes(t, doc) {
		method, path, _ := strings.Cut(r, " ")
		op := doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		marked, _ := op["deprecated"].(bool)
		w := httptest.NewRecorder()
		// No token and no body: every route answers, if only with 401 or 400.
		h.ServeHTTP(w, httptest.NewRequest(method, strings.ReplaceAll(path, "{id}", "x"), nil))
		says := w.Header().Get("Deprecation") != ""
		if says != marked || says && !strings.Contains(w.Header().Get("Link"), `rel="successor-version"`) {
			t.Errorf("%s: deprecated %v in openapi.yaml, answered with Deprecation %q, Link %q",
				r, marked, w.Header().Get("Deprecation"), w.Header().Get("Link"))
		}
	}
}

// openAPISchemas compiles schemas of the doc, named by JSON pointer.
type openAPISchemas struct {
	t   *testing.T
	doc map[string]any
	c   *jsonschema.Compiler
}

func newOpenAPISchemas(t *testing.T) *openAPISchemas {
	doc := openAPIDoc(t)
	// Through JSON, so that numbers are what the validator expects.
	j, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020) // OpenAPI 3.1's dialect
	if err := c.AddResource("openapi.json", v); err != nil {
		t.Fatal(err)
	}
	return &openAPISchemas{t: t, doc: doc, c: c}
}

// at returns the JSON value at a JSON pointer of the doc, following a
// $ref that stands for the whole object, and the pointer it ends at.
func (s *openAPISchemas) at(ptr string) (map[string]any, string) {
	s.t.Helper()
	var node any = s.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := node.(map[string]any)
		if !ok {
			s.t.Fatalf("openapi.yaml: nothing at %s", ptr)
		}
		if node, ok = m[tok]; !ok {
			s.t.Fatalf("openapi.yaml: nothing at %s (no %q)", ptr, tok)
		}
	}
	m, ok := node.(map[string]any)
	if !ok {
		s.t.Fatalf("openapi.yaml: %s is not an object", ptr)
	}
	if ref, ok := m["$ref"].(string); ok && len(m) == 1 {
		return s.at(strings.TrimPrefix(ref, "#"))
	}
	return m, ptr
}

// body is the schema of an operation's JSON request body (status "") or
// of its response with status.
func (s *openAPISchemas) body(method, path, status string) *jsonschema.Schema {
	s.t.Helper()
	op := "/paths/" + strings.ReplaceAll(path, "/", "~1") + "/" + strings.ToLower(method)
	var ptr string
	if status == "" {
		_, ptr = s.at(op + "/requestBody")
	} else {
		_, ptr = s.at(op + "/responses/" + status)
	}
	s.at(ptr + "/content/application~1json/schema")
	sch, err := s.c.Compile("openapi.json#" + ptr + "/content/application~1json/schema")
	if err != nil {
		s.t.Fatalf("%s %s %s: %v", method, path, status, err)
	}
	return sch
}

func validate(sch *jsonschema.Schema, body []byte) error {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return err
	}
	return sch.Validate(v)
}

// TestOpenAPIExamples: each example body of testdata/ is valid against
// the schema of the operation it belongs to, and every example is checked.
func TestOpenAPIExamples(t *testing.T) {
	s := newOpenAPISchemas(t)
	examples := map[string]struct{ method, path, status string }{
		"account_response.json":             {"GET", "/v1/accounts/{id}", "200"},
		"backup_upload.json":                {"PUT", "/v1/backups/{id}", ""},
		"blind_exchange_keys_request.json":  {"POST", "/v1/exchange-keys", ""},
		"blind_exchange_keys_response.json": {"POST", "/v1/exchange-keys", "200"},
		"catalogue.json":                    {"GET", "/v1/catalogue", "200"},
		"conflicts_response.json":           {"GET", "/v1/admin/conflicts", "200"},
		"create_account_response.json":      {"POST", "/v1/accounts", "201"},
		"credit_request.json":               {"POST", "/v1/accounts/{id}/credit", ""},
		"credit_response.json":              {"POST", "/v1/accounts/{id}/credit", "200"},
		"deposit_request.json":              {"POST", "/v1/deposits", ""},
		"deposit_response.json":             {"POST", "/v1/deposits", "200"},
		"error_response.json":               {"POST", "/v1/withdrawals", "402"},
		"exchange_keys_request.json":        {"POST", "/v1/exchange-keys", ""},
		"exchange_keys_response.json":       {"POST", "/v1/exchange-keys", "200"},
		"redenomination_request.json":       {"POST", "/v1/redenominations", ""},
		"redenomination_response.json":      {"POST", "/v1/redenominations", "200"},
		"health_response.json":              {"GET", "/healthz", "200"},
		"history_response.json":             {"GET", "/v1/accounts/{id}/history", "200"},
		"reclaim_request.json":              {"POST", "/v1/reclaims", ""},
		"withdraw_request.json":             {"POST", "/v1/withdrawals", ""},
		"withdraw_response.json":            {"POST", "/v1/withdrawals", "200"},
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := examples[filepath.Base(f)]; !ok {
			t.Errorf("%s is not checked against openapi.yaml: name its operation in this test", f)
		}
	}
	for name, ex := range examples {
		body, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := validate(s.body(ex.method, ex.path, ex.status), body); err != nil {
			t.Errorf("%s against %s %s %s: %v", name, ex.method, ex.path, ex.status, err)
		}
	}
}

// TestOpenAPISchemasRefuse: the schemas are not empty promises; what the
// bank refuses, they refuse.
func TestOpenAPISchemasRefuse(t *testing.T) {
	s := newOpenAPISchemas(t)
	withdraw := s.body("POST", "/v1/withdrawals", "")
	keys := s.body("POST", "/v1/exchange-keys", "")
	for _, c := range []struct {
		name string
		sch  *jsonschema.Schema
		body string
	}{
		{"unknown field", withdraw, `{"id":"w","account":"a","keyId":"k","blinded":["AA"],"extra":1}`},
		{"no blinded", withdraw, `{"id":"w","account":"a","keyId":"k"}`},
		{"no coins", withdraw, `{"id":"w","account":"a","keyId":"k","blinded":[]}`},
		{"id with a space", withdraw, `{"id":"w 1","account":"a","keyId":"k","blinded":["AA"]}`},
		{"padded base64", withdraw, `{"id":"w","account":"a","keyId":"k","blinded":["AA=="]}`},
		{"both forms of keys", keys, `{"pubs":["AA"],"account":"a","keyId":"k","blinded":["AA"]}`},
		{"pubs without account", keys, `{"pubs":["AA"]}`},
	} {
		if err := validate(c.sch, []byte(c.body)); err == nil {
			t.Errorf("%s: %s is valid against the schema", c.name, c.body)
		}
	}
}

// TestOpenAPIServed: GET /v1/openapi.yaml answers the description compiled
// in, as YAML; another method is refused as on every route.
func TestOpenAPIServed(t *testing.T) {
	e := banktest.New(t, bank.Config{})
	h := e.Bank.Handler()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/v1/openapi.yaml", nil))
	res := w.Result()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/yaml" {
		t.Fatalf("GET /v1/openapi.yaml: %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, api.OpenAPI()) {
		t.Fatalf("GET /v1/openapi.yaml: %d bytes, not the %d of bank/api/openapi.yaml", len(body), len(api.OpenAPI()))
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/openapi.yaml", nil))
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/openapi.yaml: %d, want 405", w.Code)
	}
}

// TestOpenAPIErrorCodes: the codes the description lists, for errors and
// for refused deposits, are exactly the Code constants of bank/api.
func TestOpenAPIErrorCodes(t *testing.T) {
	s := newOpenAPISchemas(t)
	var documented []string
	for _, ptr := range []string{"/components/schemas/Error/properties/code", "/components/schemas/DepositResult/properties/code"} {
		m, _ := s.at(ptr)
		enum, ok := m["enum"].([]any)
		if !ok {
			t.Fatalf("openapi.yaml: %s has no enum", ptr)
		}
		for _, c := range enum {
			documented = append(documented, c.(string))
		}
	}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("api", "api.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			for i, name := range v.Names {
				if !strings.HasPrefix(name.Name, "Code") {
					continue
				}
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("api.%s is not a string literal", name.Name)
				}
				declared = append(declared, strings.Trim(lit.Value, `"`))
			}
		}
	}
	slices.Sort(documented)
	slices.Sort(declared)
	if !slices.Equal(documented, declared) {
		t.Errorf("openapi.yaml lists the codes %v, bank/api declares %v", documented, declared)
	}
}
