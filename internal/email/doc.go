// Package email turns the raw MIME of a message in a phishing-report mailbox
// into the domain model an analyst works with: the report (who reported it,
// how they classified it), the reported original or originals, and for each
// original its headers, bodies, attachments with hashes, observables,
// authentication verdicts and phishing indicators.
//
// The package is pure: it performs no I/O, starts no goroutines and keeps no
// state between calls. Every input is treated as hostile; size, nesting
// depth, part count and time are bounded by Options, and exceeding a bound is
// reported as an error value (ErrTooLarge, ErrTooDeep, ErrTooManyParts,
// ErrTimeout), never as a panic or a hang.
package email
