// Package email turns the raw MIME of a message in a phishing-report mailbox
// into the domain model an analyst works with: the report (who reported it,
// how they classified it), the reported original or originals, and for each
// original its headers, bodies, attachments with hashes and detected kinds,
// observables, authentication verdicts, phishing indicators and the Signals
// a verdict is made of.
//
// Real phishing is read the way a mail client shows it: the sender's
// address is recovered from invalid From headers, a blank text part does not
// hide the HTML body, links nested in open redirects and in Safe Links or
// URL Defense rewrites are unwrapped (each recording the URL it came from),
// and a message is read as an inline forward only when it is one (a forward
// or report subject, or a forwarded header block opening the body), never
// because it quotes a reply thread.
//
// The package is pure: it performs no I/O, starts no goroutines and keeps no
// state between calls. Every input is treated as hostile; size, nesting
// depth, part count and time are bounded by Options, and exceeding a bound is
// reported as an error value (ErrTooLarge, ErrTooDeep, ErrTooManyParts,
// ErrTimeout), never as a panic or a hang.
package email
