package main

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestNeverReadyVersion(t *testing.T) {
	for version, want := range map[string]bool{"": false, "5.9.1-r4178": false, neverReadyVersion: true} {
		t.Setenv("INSYNC_VERSION", version)
		s, err := loadSettings()
		if err != nil || s.neverReady != want {
			t.Errorf("INSYNC_VERSION=%q: neverReady %v, err %v; want %v", version, s.neverReady, err, want)
		}
	}
}

// With every gating check passing, the port opens at once; with neverReady it never does, and
// SIGTERM still ends the process cleanly.
func TestNeverReadyNeverListens(t *testing.T) {
	for _, neverReady := range []bool{false, true} {
		port := freePort(t)
		ctx, cancel := context.WithCancel(context.Background())
		s := settings{interval: 100 * time.Millisecond, listenHost: "127.0.0.1", neverReady: neverReady}
		done := make(chan error, 1)
		go func() { done <- serve(ctx, s, port, newHealth(nil), http.NotFoundHandler()) }()
		deadline := time.Now().Add(2 * time.Second)
		opened := false
		for !opened && time.Now().Before(deadline) {
			opened = listening(port)
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("neverReady=%v: serve returned %v on cancel", neverReady, err)
		}
		if opened == neverReady {
			t.Errorf("neverReady=%v: port %d listening within 2 s: %v", neverReady, port, opened)
		}
	}
}
