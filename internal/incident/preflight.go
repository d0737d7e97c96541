package incident

import (
	"context"
	"fmt"

	"github.com/mail2archer/mail2archer/internal/archer"
)

// Lookup is the part of the Archer client the full preflight needs: the
// metadata, and finding records by the key field.
type Lookup interface {
	Metadata
	FindByField(ctx context.Context, app *archer.Application, level *archer.Level, f archer.Field, value string) ([]int64, error)
}

// ProbeKey is the value the preflight looks up in the key field to prove
// that the exactly-once lookup works; finding nothing is success.
const ProbeKey = "mail2archer-preflight-probe"

// Preflight resolves the mapping against Archer (Compile) and looks a
// record up by its key field once, as every job does before it creates a
// record: an API user who cannot read the level through the Content API is
// found at start, not at the first email.
func (m *Mapping) Preflight(ctx context.Context, a Lookup) (*Compiled, error) {
	c, err := m.Compile(ctx, a)
	if err != nil {
		return nil, fmt.Errorf("mapping preflight against Archer: %w", err)
	}
	if err := c.ProbeLookup(ctx, a); err != nil {
		return nil, err
	}
	return c, nil
}

// ProbeLookup looks ProbeKey up in the key field.
func (c *Compiled) ProbeLookup(ctx context.Context, a Lookup) error {
	if _, err := a.FindByField(ctx, c.App, c.Level, c.KeyField, ProbeKey); err != nil {
		return fmt.Errorf("mapping preflight: look up a record by the key field %q: %w", c.KeyField.Name, err)
	}
	return nil
}
