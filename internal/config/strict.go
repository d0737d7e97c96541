package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/agnivade/levenshtein"
)

// DeploymentOnly are M2A_ variables that the deployment files read and the
// service does not (docker-compose.yml passes M2A_PUBLIC_HOST to Caddy;
// docker-compose.ha.yml gives M2A_POSTGRES_PASSWORD to PostgreSQL and puts
// it in M2A_DATABASE_URL). They are known names, so an .env file shared by
// both does not stop the service.
var DeploymentOnly = []string{"M2A_PUBLIC_HOST", "M2A_POSTGRES_PASSWORD"}

// TestOnly are M2A_ variables the project's test suite reads (the
// PostgreSQL server of its tests); a service started from a test shell
// ignores them.
var TestOnly = []string{"M2A_TEST_POSTGRES_URL"}

// KnownNames returns every M2A_ variable the service or its deployment
// files read, sorted: each setting, NAME_FILE for each secret, and
// DeploymentOnly.
func KnownNames() []string {
	var names []string
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		names = append(names, varName(f))
		if f.Tag.Get("secret") == "true" {
			names = append(names, varName(f)+"_FILE")
		}
	}
	names = append(names, DeploymentOnly...)
	names = append(names, TestOnly...)
	sort.Strings(names)
	return names
}

// unknownVariables names every M2A_ variable in environ (KEY=VALUE
// entries) that is not a known name, with the closest known name, so that a
// typo such as M2A_WRITEBACK_MOVETO stops the start instead of doing
// nothing.
func unknownVariables(environ []string) Problems {
	known := KnownNames()
	isKnown := map[string]bool{}
	for _, n := range known {
		isKnown[n] = true
	}
	var p Problems
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, Prefix+"_") || isKnown[name] {
			continue
		}
		msg := fmt.Sprintf("%s is not a setting of mail2archer", name)
		if c := closest(name, known); c != "" {
			msg += fmt.Sprintf("; did you mean %s?", c)
		}
		p = append(p, msg+" (remove it, or fix its name; the README's configuration table lists every variable)")
	}
	sort.Strings(p)
	return p
}

// closest returns the known name nearest to name, when it is near enough to
// be a typo.
func closest(name string, known []string) string {
	best, bestD := "", 1<<30
	for _, k := range known {
		if d := levenshtein.ComputeDistance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if bestD > max(3, len(name)/3) {
		return ""
	}
	return best
}
