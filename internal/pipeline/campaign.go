package pipeline

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/riverqueue/river"
	"github.com/rs/zerolog"

	"github.com/mail2archer/mail2archer/internal/archer"
	"github.com/mail2archer/mail2archer/internal/campaign"
	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/incident"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/outcome"
	"github.com/mail2archer/mail2archer/internal/store"
)

// CampaignStore is the part of the state database that groups reports of
// one email into campaigns.
type CampaignStore interface {
	JoinCampaign(ctx context.Context, keys []string, window time.Duration, now time.Time, r store.CampaignReport, recordKey string) (store.Campaign, bool, error)
	CampaignReports(ctx context.Context, id string) (store.Campaign, []store.CampaignReport, error)
	HoldCampaign(ctx context.Context, id, holder string, now time.Time, ttl time.Duration) (bool, error)
	ReleaseCampaign(ctx context.Context, id, holder string) error
	SaveCampaignRecord(ctx context.Context, c store.Campaign, holder string) error
}

// outcomeAddedToCampaign is the outcome of a report that updated the record
// of the campaign it joined.
const outcomeAddedToCampaign = "added_to_campaign"

// holdPoll and holdWait are how often and how long a job tries to become
// its campaign's writer before it snoozes (holdSnooze).
const (
	holdPoll   = 25 * time.Millisecond
	holdWait   = time.Second
	holdSnooze = time.Second
)

// processCampaign puts the report in its campaign and makes the campaign's
// record show it: the campaign's first writer creates the record (looked up
// by the campaign's key first, as every create), later ones update the
// report count, the reporters, the latest report and the fields that grow.
// One job at a time writes a campaign's record; the values it writes are
// computed from the stored reports, not added to what Archer holds, so an
// update repeated after a crash writes the same values again and no report
// is counted twice.
func (w *MessageWorker) processCampaign(ctx context.Context, job *river.Job[jobs.ProcessMessage], mapping *incident.Compiled,
	rep *email.Report, inc *incident.Incident, f finish, hasIntent bool, log zerolog.Logger) (int64, string, error) {
	a := job.Args
	cc := mapping.Campaign
	cs := w.opts.Campaigns
	if cs == nil {
		return 0, "", fmt.Errorf("campaign: the mapping groups reports, and the worker has no campaign store")
	}
	now := w.opts.Now()
	keys := campaign.Keys(rep, cc.Keys)
	if len(keys) == 0 {
		// Nothing to group by: a record of its own, keyed by the report.
		keys = []string{"report:" + inc.Key}
	}
	at := rep.ReceivedAt
	if at.IsZero() {
		at = now
	}
	member := store.CampaignReport{Mailbox: a.Mailbox, MessageID: a.MessageID, Reporter: rep.Reporter.Address, At: at}
	c, opened, err := cs.JoinCampaign(ctx, keys, cc.Window, now, member, inc.Key)
	if err != nil {
		return 0, "", err
	}
	log = log.With().Str("campaign", c.ID).Logger()
	holder := fmt.Sprintf("job %d", job.ID)
	if err := w.holdCampaign(ctx, cs, c.ID, holder); err != nil {
		return 0, "", err
	}
	defer func() {
		if err := cs.ReleaseCampaign(context.WithoutCancel(ctx), c.ID, holder); err != nil {
			log.Warn().Err(err).Msg("could not release the campaign; it frees itself after the job timeout")
		}
	}()
	c, reports, err := cs.CampaignReports(ctx, c.ID)
	if err != nil {
		return 0, "", err
	}
	if _, err := w.opts.Store.SaveIntent(ctx, intentOf(a, rep, c.RecordKey, f.rule)); err != nil {
		return 0, "", err
	}
	state := incident.CampaignState{Append: c.Append, Attachments: c.Attachments}
	for _, r := range reports {
		state.Reports = append(state.Reports, incident.CampaignReport{Reporter: r.Reporter, At: r.At})
	}
	me := a.Mailbox + "/" + a.MessageID
	var result string
	if c.RecordID == 0 {
		result, err = w.createCampaignRecord(ctx, mapping, inc, &c, state, !w.opts.TrustLocalState || hasIntent || !opened || a.Replay != "", log)
	} else {
		result, err = w.updateCampaignRecord(ctx, cc, inc, &c, state, slices.Contains(c.Done, me))
	}
	if err != nil {
		return 0, "", err
	}
	c.Applied = len(reports)
	if !slices.Contains(c.Done, me) {
		c.Done = append(c.Done, me)
	}
	if err := cs.SaveCampaignRecord(ctx, c, holder); err != nil {
		return 0, "", err
	}
	f.recordID, f.reports = c.RecordID, len(reports)
	if err := w.commit(ctx, job, mapping, f, result, log); err != nil {
		return 0, "", err
	}
	log.Debug().Int("reports", len(reports)).Str("outcome", result).Msg("campaign record written")
	return c.RecordID, result, nil
}

// holdCampaign makes this job its campaign's only writer, waiting a little
// for another job to finish; then the job snoozes and tries again later,
// spending no attempt.
func (w *MessageWorker) holdCampaign(ctx context.Context, cs CampaignStore, id, holder string) error {
	ttl := w.opts.Timeout + 30*time.Second
	deadline := time.Now().Add(holdWait)
	for {
		ok, err := cs.HoldCampaign(ctx, id, holder, w.opts.Now(), ttl)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return &failure{err: fmt.Errorf("campaign %s: another report is being written to its record", id),
				d: outcome.Decision{Action: outcome.Snooze, After: holdSnooze, Reason: "campaign_busy"}}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(holdPoll):
		}
	}
}

// createCampaignRecord creates the campaign's record from this report,
// carrying the campaign's key and its reports so far.
func (w *MessageWorker) createCampaignRecord(ctx context.Context, mapping *incident.Compiled, inc *incident.Incident,
	c *store.Campaign, state incident.CampaignState, lookup bool, log zerolog.Logger) (string, error) {
	cc := mapping.Campaign
	inc.Key = c.RecordKey
	inc.Record.Text(mapping.KeyField, c.RecordKey)
	cc.SetReports(inc.Record, state.Reports)
	recordID, adopted, fileIDs, err := w.findOrCreate(ctx, mapping, inc, c.RecordKey, lookup, log)
	if err != nil {
		return "", err
	}
	c.RecordID = recordID
	c.Append = cc.AppendValues(inc.Record)
	c.Attachments = map[int64][]int64{}
	for i, id := range fileIDs {
		if f := inc.Files[i].Field; slices.ContainsFunc(cc.AttachEach(), func(x archer.Field) bool { return x.ID == f.ID }) {
			c.Attachments[f.ID] = append(c.Attachments[f.ID], id)
		}
	}
	return outcomeOf(adopted), nil
}

// updateCampaignRecord writes a later report onto the campaign's record:
// the reports' fields, the lines it adds to the fields that grow and, with
// attach_each_report, its original. done says the record already holds
// this report's lines and files (the job ran before and died after the
// update).
func (w *MessageWorker) updateCampaignRecord(ctx context.Context, cc *incident.CompiledCampaign, inc *incident.Incident,
	c *store.Campaign, state incident.CampaignState, done bool) (string, error) {
	mine := inc
	if done {
		// Only the counts: its lines and files are on the record.
		mine = &incident.Incident{Key: inc.Key, Record: archer.NewRecord(inc.Record.LevelID())}
	}
	upd, grown, changed := cc.Update(mine, state, c.Applied)
	if !done && len(cc.AttachEach()) > 0 {
		var files []incident.File
		for _, f := range inc.Files {
			if slices.ContainsFunc(cc.AttachEach(), func(x archer.Field) bool { return x.ID == f.Field.ID }) {
				files = append(files, f)
			}
		}
		ids, err := w.upload(ctx, files)
		if err != nil {
			return "", err
		}
		atts := map[int64][]int64{}
		for k, v := range c.Attachments {
			atts[k] = slices.Clone(v)
		}
		for i, id := range ids {
			atts[files[i].Field.ID] = append(atts[files[i].Field.ID], id)
		}
		for _, f := range cc.AttachEach() {
			if len(atts[f.ID]) > 0 {
				upd.Attachments(f, atts[f.ID])
			}
		}
		c.Attachments = atts
		changed = changed || len(ids) > 0
	}
	if changed {
		if err := w.opts.Archer.UpdateRecord(ctx, c.RecordID, upd); err != nil {
			return "", w.archerFailure(fmt.Errorf("update record %d: %w", c.RecordID, err))
		}
	}
	c.Append = grown
	return outcomeAddedToCampaign, nil
}
