package server

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
)

// TestOpenAPIDescribesEveryRoute keeps api/openapi.yaml and the router in
// step: every served route is documented and every documented route served.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string][]string{}
	for path, ops := range doc.Paths {
		for method, op := range ops {
			listener := "public"
			if m, ok := op.(map[string]any); ok && m["x-listener"] == "admin" {
				listener = "admin"
			}
			documented[listener] = append(documented[listener], strings.ToUpper(method)+" "+path)
		}
	}
	srv, err := New(Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	for listener, router := range map[string]chi.Router{"public": srv.public, "admin": srv.admin} {
		var served []string
		if err := chi.Walk(router, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			served = append(served, method+" "+route)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		slices.Sort(documented[listener])
		slices.Sort(served)
		if !slices.Equal(documented[listener], served) {
			t.Errorf("openapi.yaml documents on the %s listener %v\nits router serves %v", listener, documented[listener], served)
		}
	}
}
