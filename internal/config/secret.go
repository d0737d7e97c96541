package config

import "encoding/json"

// Secret holds a credential. It prints as "<secret>" through every fmt verb,
// JSON and zerolog, so it cannot leak into a log line or an error by accident.
// Use Reveal to hand the value to the one call that needs it.
type Secret string

const redacted = "<secret>"

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "<secret>", or "" when the secret is empty.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString returns the same as String, so %#v does not leak the value either.
func (s Secret) GoString() string { return s.String() }

// MarshalJSON encodes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText encodes the redacted form.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
