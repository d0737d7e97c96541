// Package jobs declares the queue's job kinds: the arguments that producers
// (the webhook server, the delta sweep) insert and workers consume. It holds
// no behaviour, so producers do not depend on the workers' dependencies.
package jobs

import (
	"github.com/riverqueue/river"
)

// ProcessMessage asks for one reported email to become one Archer incident.
// It is unique by mailbox and message id: however many notifications arrive
// for one email, one job exists while it is pending, running or done.
type ProcessMessage struct {
	// Mailbox is the mailbox (user id or UPN) the subscription was made
	// for, taken from the stored subscription, never from the notification.
	Mailbox string `json:"mailbox" river:"unique"`
	// MessageID is Graph's immutable id of the message.
	MessageID string `json:"message_id" river:"unique"`
	// Source says what queued the job: "notification", "resync" or
	// "replay".
	Source string `json:"source,omitempty"`
	// Replay, when set, asks for the email to be processed again on
	// purpose: the worker looks the record up by its key and creates it
	// only when Archer has none. It holds a value unique to the replay
	// (its time), which makes the job distinct from the email's first.
	Replay string `json:"replay,omitempty" river:"unique"`
}

// Kind identifies the job kind in the queue.
func (ProcessMessage) Kind() string { return "process_message" }

// InsertOpts makes the job unique by its mailbox and message id.
func (ProcessMessage) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Lifecycle carries a Graph lifecycle event (reauthorizationRequired,
// subscriptionRemoved, missed) to the subscriptions manager.
type Lifecycle struct {
	// SubscriptionID is the subscription the event concerns.
	SubscriptionID string `json:"subscription_id"`
	// Event is the lifecycleEvent value: one of the lifecycle event names
	// of package subscriptions (subscriptions.EventMissed, …).
	Event string `json:"event"`
	// Mailbox is the subscription's mailbox, from the store.
	Mailbox string `json:"mailbox"`
}

// Kind identifies the job kind in the queue.
func (Lifecycle) Kind() string { return "graph_lifecycle" }

// InsertOpts makes every lifecycle event a job of its own: an event is never
// taken for a duplicate of one that already started or finished (a second
// "missed" after the first resync ran must resync again). The queue cannot
// make a job unique only while it is pending (its unique states must include
// running), and the actions are cheap and idempotent (a reauthorize, a
// resync under the mailbox's lock), so repeats simply run again.
func (Lifecycle) InsertOpts() river.InsertOpts { return river.InsertOpts{} }

// WriteBack writes an incident's record id back to the reported message:
// a category and, when configured, a move to another folder. It is queued
// in the same transaction that stores the record id.
type WriteBack struct {
	Mailbox   string `json:"mailbox" river:"unique"`
	MessageID string `json:"message_id" river:"unique"`
	RecordID  int64  `json:"record_id"`
	// Categories are the message's categories when it was fetched; the
	// new one is added to them.
	Categories []string `json:"categories,omitempty"`
	// Category, when set, is written instead of the configured category
	// template's: the category of the rule that skipped the report.
	Category string `json:"category,omitempty"`
}

// Kind identifies the job kind in the queue.
func (WriteBack) Kind() string { return "write_back" }

// InsertOpts makes the job unique by its mailbox and message id.
func (WriteBack) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// Ack sends the acknowledgment of one report to the person who reported
// it. The texts are rendered when the report is processed, so the job only
// sends. It is unique by the report: one acknowledgment per report.
type Ack struct {
	Mailbox   string `json:"mailbox" river:"unique"`
	MessageID string `json:"message_id" river:"unique"`
	// To is the reporter's address.
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text,omitempty"`
	HTML    string `json:"html,omitempty"`
	// Text names which text it is: "record", "simulation" or "skipped".
	Which string `json:"which"`
}

// Kind identifies the job kind in the queue.
func (Ack) Kind() string { return "send_ack" }

// InsertOpts makes the job unique by its mailbox and message id, in every
// state but the ended ones, so a report is acknowledged once.
func (Ack) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
}
