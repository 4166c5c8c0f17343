package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// A server that closes a kept-alive connection just as the client reuses it (what Bynamo's
// 5-second idle timeout does now and then): the first connection answers one request, then reads
// the next and hangs up without a word; later connections answer normally. The call on the reused
// connection must succeed by resending, not fail with EOF.
func TestDynamoCallSurvivesAServerClosingAReusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for n := 0; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn, first bool) {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for answered := 0; ; answered++ {
					req, err := http.ReadRequest(r)
					if err != nil {
						return
					}
					_, _ = req.Body.Read(make([]byte, 1<<16))
					if first && answered == 1 {
						return // read the second request, then close without answering
					}
					_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"))
				}
			}(conn, n == 0)
		}
	}()

	endpoint, _ := url.Parse("http://" + ln.Addr().String())
	d := newDynamo(metadataConfig{
		Endpoint: endpoint,
		Region:   "us-east-1",
		Keys:     &staticKeys{ID: "id", Secret: "secret"},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := 1; i <= 2; i++ {
		if err := d.call(ctx, "DescribeTable", map[string]string{"TableName": "t"}, nil); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}
