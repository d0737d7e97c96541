package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the River client of the store's database, whatever its driver:
// the calls the service and the operator commands make on the queue. Both
// *river.Client[*sql.Tx] (SQLite) and *river.Client[pgx.Tx] (PostgreSQL)
// satisfy it; what needs a transaction of the database's own type stays
// inside the store (CompleteMessage).
type Queue interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	StopAndCancel(ctx context.Context) error
	Stopped() <-chan struct{}
	Subscribe(kinds ...river.EventKind) (<-chan *river.Event, func())
	Insert(ctx context.Context, args river.JobArgs, opts *river.InsertOpts) (*rivertype.JobInsertResult, error)
	InsertMany(ctx context.Context, params []river.InsertManyParams) ([]*rivertype.JobInsertResult, error)
	JobList(ctx context.Context, params *river.JobListParams) (*river.JobListResult, error)
	JobGet(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobRetry(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobCancel(ctx context.Context, id int64) (*rivertype.JobRow, error)
	JobDelete(ctx context.Context, id int64) (*rivertype.JobRow, error)
}

var (
	_ Queue = (*river.Client[*sql.Tx])(nil)
	_ Queue = (*river.Client[pgx.Tx])(nil)
)

// NewQueue builds a River client on this database. The caller starts and
// stops it; it must be stopped before the store is closed.
func (s *Store) NewQueue(cfg *river.Config) (Queue, error) {
	var q Queue
	var err error
	if s.pg != nil {
		q, err = river.NewClient(s.pg.driver, cfg)
	} else {
		q, err = river.NewClient(s.sqlite, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("create queue client: %w", err)
	}
	return q, nil
}
