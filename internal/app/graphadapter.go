package app

import (
	"context"
	"io"
	"time"

	"github.com/mail2archer/mail2archer/internal/email"
	"github.com/mail2archer/mail2archer/internal/graph"
	"github.com/mail2archer/mail2archer/internal/jobs"
	"github.com/mail2archer/mail2archer/internal/pipeline"
)

// pipelineGraph gives the workers the Graph calls they need, in their own
// types, so the pipeline does not depend on the Graph SDK.
type pipelineGraph struct{ *graph.Client }

func (g pipelineGraph) FetchMessage(ctx context.Context, mailbox, id string, mime io.Writer) (*pipeline.Message, error) {
	m, err := g.Client.FetchMessage(ctx, mailbox, id, mime)
	if err != nil {
		return nil, err
	}
	return &pipeline.Message{
		Meta: email.Metadata{
			InternetMessageID: m.InternetMessageID, Subject: m.Subject, WebLink: m.WebLink, ReceivedAt: m.ReceivedAt,
			From:   email.Address{Name: m.From.Name, Address: m.From.Address},
			Sender: email.Address{Name: m.Sender.Name, Address: m.Sender.Address},
		},
		Categories: m.Categories,
	}, nil
}

// SendAck sends an acknowledgment from the phishing mailbox. A shutdown
// does not cut it short: a send interrupted after the request was written
// may have gone out, which ends the job rather than sending twice.
func (g pipelineGraph) SendAck(ctx context.Context, mailbox string, a jobs.Ack) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return g.Client.SendMail(sctx, mailbox, graph.OutgoingMessage{
		To: []string{a.To}, Subject: a.Subject, Text: a.Text, HTML: a.HTML, SaveToSentItems: true,
		Headers: map[string]string{"X-Mail2Archer-Ack": a.Which},
	})
}
