// Package pgdb makes throwaway PostgreSQL databases on a server, for the
// tests and the bench: each gets a database of its own, dropped when it is
// done, so that they run in parallel on one server without seeing each
// other's rows.
package pgdb

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the variable that gives the tests a PostgreSQL server: the
// URL of a database on it, as a role that may create databases.
const EnvURL = "M2A_TEST_POSTGRES_URL"

// Create makes a new empty database on the server serverURL points at and
// returns its URL and a function that drops it. prefix starts its name.
func Create(ctx context.Context, serverURL, prefix string) (string, func() error, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres server URL: %w", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + "_" + hex.EncodeToString(b)
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", u.Redacted(), err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, serverURL)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	du := *u
	du.Path = "/" + name
	return du.String(), drop, nil
}

// Database returns the URL of a new database on the server of
// M2A_TEST_POSTGRES_URL, dropped when the test ends; without that variable
// the test is skipped, saying so.
func Database(t testing.TB) string {
	t.Helper()
	server := os.Getenv(EnvURL)
	if server == "" {
		t.Skipf("no PostgreSQL server: set %s (e.g. postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable) to run this test", EnvURL)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dbURL, drop, err := Create(ctx, server, "m2a_test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Logf("%v", err)
		}
	})
	return dbURL
}

// Available reports whether the tests have a PostgreSQL server.
func Available() bool { return os.Getenv(EnvURL) != "" }
