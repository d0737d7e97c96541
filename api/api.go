// Package api holds mail2archer's contracts as files: the OpenAPI
// description of its HTTP routes, the mapping file's JSON schema and the
// example mapping for the simulator's Archer application. The example is
// embedded, so the sandbox and the bench use it without a checkout.
package api

import _ "embed"

// MappingExample is mapping.example.yaml.
//
//go:embed mapping.example.yaml
var MappingExample []byte
