package api

import (
	"bytes"
	_ "embed" // the OpenAPI description
)

//go:embed openapi.yaml
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 description of the bank's HTTP API, as
// YAML. The bank serves it at GET /v1/openapi.yaml; its tests check it
// against the routes the bank serves.
func OpenAPI() []byte { return bytes.Clone(openAPI) }
