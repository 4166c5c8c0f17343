package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"
)

// markerTable is the table (MySQL and DynamoDB) that holds the stand-in's test markers.
const markerTable = "insync_markers"

type database struct {
	db *sql.DB

	mu    sync.Mutex
	ready bool // the marker table exists
}

func newDatabase(c databaseConfig) (*database, error) {
	cfg := mysql.NewConfig()
	cfg.User = c.User
	cfg.Passwd = c.Password
	cfg.Net = "tcp"
	cfg.Addr = net.JoinHostPort(c.Host, strconv.Itoa(c.Port))
	cfg.DBName = c.Name
	cfg.Timeout = 3 * time.Second
	cfg.ReadTimeout = 10 * time.Second
	cfg.WriteTimeout = 10 * time.Second
	cfg.TLSConfig = c.TLS
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(2)
	db.SetConnMaxIdleTime(time.Minute)
	db.SetConnMaxLifetime(10 * time.Minute)
	return &database{db: db}, nil
}

func (d *database) check(ctx context.Context) error {
	var one int
	return d.db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

func (d *database) ensureTable(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ready {
		return nil
	}
	_, err := d.db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+markerTable+
		" (k VARCHAR(191) NOT NULL PRIMARY KEY, v MEDIUMTEXT NOT NULL)"+
		" DEFAULT CHARSET = utf8mb4")
	if err != nil {
		return fmt.Errorf("create table %s: %w", markerTable, err)
	}
	d.ready = true
	return nil
}

// tableGone forgets the table after MySQL says it does not exist (error 1146).
func (d *database) tableGone(err error) {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == 1146 {
		d.mu.Lock()
		d.ready = false
		d.mu.Unlock()
	}
}

func (d *database) put(ctx context.Context, key, value string) error {
	if err := d.ensureTable(ctx); err != nil {
		return err
	}
	_, err := d.db.ExecContext(ctx, "INSERT INTO "+markerTable+
		" (k, v) VALUES (?, ?) ON DUPLICATE KEY UPDATE v = VALUES(v)", key, value)
	d.tableGone(err)
	return err
}

func (d *database) get(ctx context.Context, key string) (*string, error) {
	if err := d.ensureTable(ctx); err != nil {
		return nil, err
	}
	var v string
	err := d.db.QueryRowContext(ctx, "SELECT v FROM "+markerTable+" WHERE k = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	d.tableGone(err)
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func (d *database) keys(ctx context.Context) ([]string, error) {
	if err := d.ensureTable(ctx); err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, "SELECT k FROM "+markerTable+" ORDER BY k")
	if err != nil {
		d.tableGone(err)
		return nil, err
	}
	defer rows.Close()
	keys := []string{}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}
