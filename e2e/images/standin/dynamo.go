package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
)

// dynamo is a minimal DynamoDB JSON-protocol client: the few calls the stand-in makes.
type dynamo struct {
	endpoint string
	region   string
	creds    *credentials.Credentials
	http     *http.Client
	table    string // the marker table, with the configured prefix

	mu     sync.Mutex
	active bool // the marker table is known to exist and be ACTIVE
}

// awsCredentials are static keys, or the pod's ambient identity (AWS_* variables, web identity
// token, container or instance role).
func awsCredentials(keys *staticKeys) *credentials.Credentials {
	if keys != nil {
		return credentials.NewStaticV4(keys.ID, keys.Secret, "")
	}
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.IAM{},
	})
}

func newDynamo(c metadataConfig) *dynamo {
	return &dynamo{
		endpoint: strings.TrimSuffix(c.Endpoint.String(), "/") + "/",
		region:   c.Region,
		creds:    awsCredentials(c.Keys),
		http:     &http.Client{Timeout: 15 * time.Second},
		table:    c.TablePrefix + markerTable,
	}
}

// dynamoError is an error answer, e.g. `ResourceNotFoundException: Requested resource not found`.
type dynamoError struct {
	Status  int
	Type    string
	Message string
}

func (e *dynamoError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Type, e.Message, e.Status)
}

func isDynamoError(err error, kind string) bool {
	var de *dynamoError
	return errors.As(err, &de) && de.Type == kind
}

func (d *dynamo) call(ctx context.Context, op string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "DynamoDB_20120810."+op)
	v, err := d.creds.GetWithContext(&credentials.CredContext{Client: d.http, Context: ctx})
	if err != nil {
		return fmt.Errorf("metadata credentials: %w", err)
	}
	signV4(req, body, v.AccessKeyID, v.SecretAccessKey, v.SessionToken, d.region, "dynamodb", time.Now())
	// Every call the stand-in makes is safe to send twice (reads, a PutItem that overwrites, a
	// CreateTable whose repeat is "in use"). Saying so lets net/http resend a request whose pooled
	// connection the server closed as it was being reused, which a POST otherwise fails with EOF:
	// Bynamo (Node) drops idle connections after 5 s, the probe comes every few seconds, and the
	// two meet now and then. A nil value marks the request without sending the header; it is set
	// after signing so the signature does not name a header that never goes out.
	req.Header["X-Idempotency-Key"] = nil
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Type     string `json:"__type"`
			Message  string `json:"message"`
			Message2 string `json:"Message"`
		}
		_ = json.Unmarshal(data, &e)
		de := &dynamoError{Status: resp.StatusCode, Type: e.Type, Message: e.Message}
		if i := strings.LastIndex(de.Type, "#"); i >= 0 {
			de.Type = de.Type[i+1:]
		}
		if de.Message == "" {
			de.Message = e.Message2
		}
		if de.Type == "" {
			de.Type = "HTTP" + resp.Status
			de.Message = strings.TrimSpace(string(data))
		}
		return de
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

type tableDescription struct {
	Table struct {
		TableStatus string `json:"TableStatus"`
	} `json:"Table"`
	TableDescription struct {
		TableStatus string `json:"TableStatus"`
	} `json:"TableDescription"`
}

// check proves the store answers and accepts our signature: DescribeTable on the marker table,
// where "no such table" is an answer too (and needs no permission beyond that table).
func (d *dynamo) check(ctx context.Context) error {
	err := d.call(ctx, "DescribeTable", map[string]string{"TableName": d.table}, nil)
	if err == nil || isDynamoError(err, "ResourceNotFoundException") {
		return nil
	}
	return err
}

// ensureTable creates the marker table when absent and waits until it is ACTIVE.
func (d *dynamo) ensureTable(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.active {
		return nil
	}
	created := false
	for {
		var desc tableDescription
		err := d.call(ctx, "DescribeTable", map[string]string{"TableName": d.table}, &desc)
		switch {
		case err == nil && desc.Table.TableStatus == "ACTIVE":
			d.active = true
			return nil
		case err == nil:
		case isDynamoError(err, "ResourceNotFoundException") && !created:
			err := d.call(ctx, "CreateTable", map[string]any{
				"TableName": d.table,
				"AttributeDefinitions": []map[string]string{
					{"AttributeName": "k", "AttributeType": "S"},
				},
				"KeySchema":   []map[string]string{{"AttributeName": "k", "KeyType": "HASH"}},
				"BillingMode": "PAY_PER_REQUEST",
			}, nil)
			if err != nil && !isDynamoError(err, "ResourceInUseException") {
				return fmt.Errorf("create table %s: %w", d.table, err)
			}
			logf("metadata: created table %s", d.table)
			created = true
		case isDynamoError(err, "ResourceNotFoundException"):
		default:
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("table %s is not ACTIVE: %w", d.table, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// tableGone forgets that the table exists, after an answer that says it does not.
func (d *dynamo) tableGone(err error) {
	if isDynamoError(err, "ResourceNotFoundException") {
		d.mu.Lock()
		d.active = false
		d.mu.Unlock()
	}
}

type attr struct {
	S string `json:"S"`
}

func (d *dynamo) put(ctx context.Context, key, value string) error {
	if err := d.ensureTable(ctx); err != nil {
		return err
	}
	err := d.call(ctx, "PutItem", map[string]any{
		"TableName": d.table,
		"Item":      map[string]attr{"k": {key}, "v": {value}},
	}, nil)
	d.tableGone(err)
	return err
}

// get returns the marker's value, or nil when there is none.
func (d *dynamo) get(ctx context.Context, key string) (*string, error) {
	if err := d.ensureTable(ctx); err != nil {
		return nil, err
	}
	var out struct {
		Item map[string]attr `json:"Item"`
	}
	err := d.call(ctx, "GetItem", map[string]any{
		"TableName":      d.table,
		"Key":            map[string]attr{"k": {key}},
		"ConsistentRead": true,
	}, &out)
	d.tableGone(err)
	if err != nil || out.Item == nil {
		return nil, err
	}
	v := out.Item["v"].S
	return &v, nil
}

func (d *dynamo) keys(ctx context.Context) ([]string, error) {
	if err := d.ensureTable(ctx); err != nil {
		return nil, err
	}
	keys := []string{}
	var start map[string]attr
	for {
		in := map[string]any{"TableName": d.table, "ProjectionExpression": "k", "ConsistentRead": true}
		if start != nil {
			in["ExclusiveStartKey"] = start
		}
		var out struct {
			Items            []map[string]attr `json:"Items"`
			LastEvaluatedKey map[string]attr   `json:"LastEvaluatedKey"`
		}
		if err := d.call(ctx, "Scan", in, &out); err != nil {
			d.tableGone(err)
			return nil, err
		}
		for _, item := range out.Items {
			keys = append(keys, item["k"].S)
		}
		if len(out.LastEvaluatedKey) == 0 {
			sort.Strings(keys)
			return keys, nil
		}
		start = out.LastEvaluatedKey
	}
}
