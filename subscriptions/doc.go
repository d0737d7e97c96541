// Package subscriptions keeps Microsoft Graph change-notification
// subscriptions on mail folders alive and catches up on mail whose
// notification never arrived.
//
// A Manager holds exactly one subscription per configured mailbox folder. It
// renews each at about half of its remaining life, creates a new one when
// Graph has forgotten it, answers lifecycle events (reauthorizationRequired,
// subscriptionRemoved, missed), and sweeps each folder with a Graph delta
// query on start, after every creation, on "missed" and on a slow timer,
// queueing every message it finds.
//
// The Manager depends on four small interfaces declared here: Graph (the six
// calls it makes), Store (subscription secrets, delta links, a lease and
// write-once settings), Queue (where found messages go) and Clock. It imports
// only the standard library, so it is cheap to build and to test; package
// subscriptionstest holds in-memory fakes of all four. It logs through a
// log/slog Logger and reports what it does (creations, renewals, resyncs,
// changes of leadership) as Events to a callback, which a service may turn
// into metrics.
//
// Several replicas may run a Manager against one database: a lease in the
// Store elects the one that acts, the others stand by and take over within
// the lease's time to live when the leader stops.
package subscriptions
