package main

// Real peers on loopback for the tests: a throwaway MariaDB and moto's server (DynamoDB and S3
// on one port), and the stand-in binary itself, built once.

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

var standinBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "standin-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	standinBin = filepath.Join(dir, "standin")
	build := exec.Command("go", "build", "-buildvcs=false", "-o", standinBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the stand-in:", err)
		os.Exit(1)
	}
	code := m.Run()
	sharedMoto.stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// lookPath finds a program on PATH or in the sbin directories Debian puts servers in.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, name)
		if info, err := os.Stat(p); err == nil && !info.IsDir() {
			return p
		}
	}
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func listening(port int) bool {
	conn, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 500*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proc is a child process in its own process group, so that stopping it stops what it started.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process group and waits (SIGKILL after timeout).
func (p *proc) stop(timeout time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// moto is moto's server: DynamoDB and path-style S3 on one loopback port.
type moto struct {
	port int
	proc *proc
}

func startMoto(t *testing.T) *moto {
	t.Helper()
	bin := lookPath("moto_server")
	if bin == "" {
		t.Skip("moto_server is not installed (python3 -m pip install 'moto[server]==5.2.1'); " +
			"the integration tests need it")
	}
	m := &moto{port: freePort(t)}
	m.proc = startProc(t, "moto", nil, bin, "-H", "127.0.0.1", "-p", strconv.Itoa(m.port))
	deadline := time.Now().Add(60 * time.Second)
	for !listening(m.port) {
		if m.proc.exited() || time.Now().After(deadline) {
			m.stop()
			t.Fatalf("moto_server did not start:\n%s", m.proc.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return m
}

func (m *moto) stop() {
	if m != nil {
		m.proc.stop(10 * time.Second)
	}
}

func (m *moto) endpoint() string { return "http://127.0.0.1:" + strconv.Itoa(m.port) }

var (
	sharedMoto     *moto
	sharedMotoOnce sync.Once
)

// theMoto is one moto for the tests that do not stop it.
func theMoto(t *testing.T) *moto {
	t.Helper()
	if lookPath("moto_server") == "" {
		startMoto(t) // skips
	}
	sharedMotoOnce.Do(func() { sharedMoto = startMoto(t) })
	if sharedMoto == nil {
		t.Fatal("moto did not start")
	}
	return sharedMoto
}

// mariaDB is a throwaway MariaDB with database `insync` and user `insync`.
type mariaDB struct {
	t        *testing.T
	bin      string
	dir      string
	port     int
	proc     *proc
	user     string
	password string
}

func newMariaDB(t *testing.T) *mariaDB {
	t.Helper()
	server, install := lookPath("mariadbd"), lookPath("mariadb-install-db")
	if server == "" || install == "" {
		t.Skip("mariadbd/mariadb-install-db are not installed (apt-get install -y mariadb-server); " +
			"the integration tests need them")
	}
	db := &mariaDB{
		t: t, bin: server, dir: t.TempDir(), port: freePort(t),
		user: "insync", password: "s3cret-pw",
	}
	args := []string{install, "--no-defaults", "--datadir=" + db.data(), "--skip-test-db",
		"--auth-root-authentication-method=normal"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	return db
}

func (db *mariaDB) data() string   { return filepath.Join(db.dir, "data") }
func (db *mariaDB) socket() string { return filepath.Join(db.dir, "mysqld.sock") }

// start starts the server (again) and, the first time, creates the database and user.
func (db *mariaDB) start() {
	t := db.t
	t.Helper()
	args := []string{db.bin, "--no-defaults", "--datadir=" + db.data(),
		"--port=" + strconv.Itoa(db.port), "--bind-address=127.0.0.1", "--socket=" + db.socket(),
		"--pid-file=" + filepath.Join(db.dir, "mysqld.pid"), "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--skip-name-resolve"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	db.proc = startProc(t, "mariadbd", nil, args...)
	t.Cleanup(func() { db.stop() })
	var root *sql.DB
	deadline := time.Now().Add(60 * time.Second)
	for {
		if db.proc.exited() || time.Now().After(deadline) {
			t.Fatalf("mariadbd did not start:\n%s", db.proc.out.String())
		}
		cfg := mysql.NewConfig()
		cfg.User, cfg.Net, cfg.Addr = "root", "unix", db.socket()
		connector, err := mysql.NewConnector(cfg)
		if err != nil {
			t.Fatal(err)
		}
		root = sql.OpenDB(connector)
		if root.Ping() == nil {
			break
		}
		root.Close()
		time.Sleep(200 * time.Millisecond)
	}
	defer root.Close()
	for _, stmt := range []string{
		"CREATE DATABASE IF NOT EXISTS insync",
		fmt.Sprintf("CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'", db.user, db.password),
		fmt.Sprintf("GRANT ALL ON insync.* TO '%s'@'%%'", db.user),
	} {
		if _, err := root.Exec(stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func (db *mariaDB) stop() { db.proc.stop(30 * time.Second) }

// query opens the database as the application user over TCP.
func (db *mariaDB) open() *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net = db.user, db.password, "tcp"
	cfg.Addr, cfg.DBName = "127.0.0.1:"+strconv.Itoa(db.port), "insync"
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		db.t.Fatal(err)
	}
	return sql.OpenDB(connector)
}

// standin runs the stand-in binary with a config file and environment.
type standin struct {
	port int
	proc *proc
}

func startStandin(t *testing.T, role, config string, port int, env ...string) *standin {
	t.Helper()
	path := filepath.Join(t.TempDir(), role+".conf")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append([]string{
		"INSYNC_STANDIN_CHECK_INTERVAL=300ms",
		"INSYNC_STANDIN_LISTEN_HOST=127.0.0.1",
		"INSYNC_VERSION=5.9.1-test",
	}, env...)
	s := &standin{port: port, proc: startProc(t, role, env, standinBin, role, "-config", path)}
	t.Cleanup(func() {
		s.proc.stop(30 * time.Second)
		if t.Failed() || testing.Verbose() {
			t.Logf("%s output:\n%s", role, s.proc.out.String())
		}
	})
	return s
}

func (s *standin) url(path string) string {
	return "http://127.0.0.1:" + strconv.Itoa(s.port) + path
}

func (s *standin) waitListening(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !listening(s.port) {
		if s.proc.exited() || time.Now().After(deadline) {
			t.Fatalf("the stand-in is not listening on %d:\n%s", s.port, s.proc.out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 30 * time.Second}

// call makes a request and returns the status and body.
func call(t *testing.T, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.String()
}

// listenOn accepts (and closes) connections on a loopback port until closed.
func listenOn(t *testing.T, port int) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return ln
}
