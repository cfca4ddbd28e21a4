package runtime

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The functions' own HTTP server (CLOUDCALL_PORT, FC's custom runtime) had
// only a header timeout: unsigned callers sending a body a byte every few
// seconds held 3,000 connections until the process ran out of descriptors
// and signed calls timed out; an idle keep-alive connection stayed for ever.
// Now a request must arrive in time, idle connections close, and past the
// connection limit new ones wait instead of failing accept.
func TestTheHTTPServerDropsTricklingAndIdleConnections(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan struct{}, 16)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		served <- struct{}{}
		_, _ = w.Write([]byte(`{"errCode":0}`))
	})
	go func() {
		_ = serveOn(ctx, ln, h, slog.New(slog.DiscardHandler), serverBounds{Body: 300 * time.Millisecond, Idle: 300 * time.Millisecond, Conns: 2})
	}()
	addr := ln.Addr().String()

	// A body that trickles is cut off.
	slow, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer slow.Close()
	_, err = slow.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\na"))
	require.NoError(t, err)
	require.NoError(t, slow.SetReadDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, err = io.ReadAll(slow)
	require.NoError(t, err, "the server closed it (EOF), not our deadline")
	require.Less(t, time.Since(start), 4*time.Second)

	// An idle keep-alive connection is closed.
	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()
	_, err = idle.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"))
	require.NoError(t, err)
	<-served
	require.NoError(t, idle.SetReadDeadline(time.Now().Add(5*time.Second)))
	b, err := io.ReadAll(idle)
	require.NoError(t, err, "closed by the server after its answer and the idle time")
	require.Contains(t, string(b), `{"errCode":0}`)

	// Past the limit a connection waits for a free one, then is served.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		_, err = c.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"))
		require.NoError(t, err)
		held = append(held, c)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Post("http://"+addr+"/", "application/json", strings.NewReader(`{}`))
	require.NoError(t, err, "served once the trickling ones are dropped")
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, c := range held {
		c.Close()
	}
}

// SIGTERM in HTTP-server mode ended the process under a charge in flight:
// serveOn returned as Shutdown began, and the record stayed "in progress"
// for someone to reconcile (outside tester). A call running when the
// serving ends gets its answer, and serveOn returns only after it, with
// new connections refused meanwhile.
func TestTheHTTPServerLetsCallsInFlightFinish(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		_, _ = w.Write([]byte(`{"errCode":0}`))
	})
	done := make(chan error, 1)
	go func() {
		done <- serveOn(ctx, ln, h, slog.New(slog.DiscardHandler), serverBounds{Body: time.Second, Idle: time.Second, Conns: 4, Grace: 10 * time.Second})
	}()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Post("http://"+ln.Addr().String()+"/", "application/json", strings.NewReader(`{}`))
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	<-started
	cancel() // the signal
	select {
	case <-done:
		t.Fatal("serveOn returned with a call still running")
	case <-time.After(200 * time.Millisecond):
	}
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	require.Error(t, err, "no new connections once stopping")
	close(release)
	require.Equal(t, `{"errCode":0}`, <-answer)
	require.NoError(t, <-done)
}
