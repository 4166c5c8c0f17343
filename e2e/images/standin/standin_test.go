package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
)

func TestParseINI(t *testing.T) {
	got, err := parseINI(strings.NewReader(`# comment
; another
[cloud]
name = fcloud
hostname=  fcloud.example  

[master]
listen_port = 8443
url = http://x/?a=b
`))
	if err != nil {
		t.Fatal(err)
	}
	if got["cloud"]["name"] != "fcloud" || got["cloud"]["hostname"] != "fcloud.example" ||
		got["master"]["listen_port"] != "8443" || got["master"]["url"] != "http://x/?a=b" {
		t.Fatalf("parsed %v", got)
	}
	for _, bad := range []string{"key = outside\n", "[cloud\n", "[cloud]\nno equals sign\n", "[]\n"} {
		if _, err := parseINI(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed without error", bad)
		}
	}
}

// renderedConfigs returns the config files in the operator's render snapshots, by name.
func renderedConfigs(t *testing.T) map[string]string {
	t.Helper()
	snaps, _ := filepath.Glob("../../../operator/tests/snapshots/render_examples__*.snap")
	if len(snaps) == 0 {
		t.Skip("the operator's render snapshots are not beside this module")
	}
	out := map[string]string{}
	for _, snap := range snaps {
		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		example := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(snap), "render_examples__"), ".snap")
		lines := strings.Split(string(data), "\n")
		for i := 0; i < len(lines); i++ {
			name, ok := strings.CutSuffix(strings.TrimSpace(lines[i]), ": |")
			if !ok || !strings.HasSuffix(name, ".conf") {
				continue
			}
			var body strings.Builder
			for i++; i < len(lines) && (lines[i] == "" || strings.HasPrefix(lines[i], "    ")); i++ {
				body.WriteString(strings.TrimPrefix(lines[i], "    ") + "\n")
			}
			out[example+"/"+name] = body.String()
		}
	}
	return out
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRenderedConfigs parses every config file the operator renders in its examples.
func TestRenderedConfigs(t *testing.T) {
	t.Setenv("INSYNC_DB_USER", "insync")
	t.Setenv("INSYNC_DB_PASSWORD", "pw")
	t.Setenv("INSYNC_NODE_INDEX", "2")
	configs := renderedConfigs(t)
	for _, want := range []string{"fcloud/cloudmaster.conf", "fcloud/storage.conf",
		"external-aws/cloudmaster.conf", "external-aws/storage.conf"} {
		if configs[want] == "" {
			t.Errorf("no %s in the snapshots", want)
		}
	}
	for name, text := range configs {
		t.Run(name, func(t *testing.T) {
			external := strings.HasPrefix(name, "external-aws/")
			if !external {
				t.Setenv("INSYNC_METADATA_ACCESS_KEY_ID", "id")
				t.Setenv("INSYNC_METADATA_SECRET_ACCESS_KEY", "key")
				t.Setenv("INSYNC_OBJECTSTORE_ACCESS_KEY_ID", "id")
				t.Setenv("INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY", "key")
			}
			var meta metadataConfig
			var objs objectStoreConfig
			switch filepath.Base(name) {
			case "cloudmaster.conf":
				c, err := loadMaster(writeTemp(t, text))
				if err != nil {
					t.Fatal(err)
				}
				if c.ListenPort != 8443 || c.Database.Port != 3306 || c.Database.Name == "" ||
					c.Database.TLS != "preferred" {
					t.Errorf("%+v", c)
				}
				meta, objs = c.Metadata, c.ObjectStore
			case "storage.conf":
				c, err := loadNode(writeTemp(t, text))
				if err != nil {
					t.Fatal(err)
				}
				if c.ListenPort != 6061 || c.DataDir != "/var/lib/inSyncStorage" || c.Index != 2 ||
					!strings.HasSuffix(c.MasterAddress, ":8443") {
					t.Errorf("%+v", c)
				}
				meta, objs = c.Metadata, c.ObjectStore
			default:
				t.Skip("not an inSync config")
			}
			if objs.Type != "s3" || objs.Bucket == "" {
				t.Errorf("objectstore %+v", objs)
			}
			if external {
				if meta.TablePrefix != "acme-" || meta.Keys != nil || objs.Keys != nil ||
					objs.PathStyle || objs.CreateBucket || objs.Endpoint.Scheme != "https" {
					t.Errorf("external: metadata %+v objectstore %+v", meta, objs)
				}
			} else if meta.Keys == nil || objs.Keys == nil || !objs.PathStyle || !objs.CreateBucket {
				t.Errorf("managed: metadata %+v objectstore %+v", meta, objs)
			}
		})
	}
}

func TestSharedFilesystemAndDatabaseTLSConfig(t *testing.T) {
	t.Setenv("INSYNC_DB_USER", "insync")
	t.Setenv("INSYNC_DB_PASSWORD", "pw")
	c, err := loadMaster(writeTemp(t, `[master]
listen_port = 8443
[database]
host = db.example
port = 3306
name = insync
tls = true
[metadata]
endpoint = https://dynamodb.eu-west-1.amazonaws.com
region = eu-west-1
[objectstore]
type = filesystem
path = /mnt/insync-objects
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ObjectStore.Type != "filesystem" || c.ObjectStore.Path != "/mnt/insync-objects" ||
		c.Database.TLS != "true" {
		t.Errorf("%+v", c)
	}
}

func TestInvalidConfigExits1(t *testing.T) {
	cases := map[string]struct {
		role, config string
		env          []string
		want         []string
	}{
		"missing file": {role: "cloudmaster", want: []string{"cannot read config"}},
		"missing keys": {role: "cloudmaster", config: "[master]\nlisten_port = 99999\n[objectstore]\ntype = nfs\n",
			want: []string{"[master] listen_port = \"99999\" is not a port number", "[database] host is missing",
				"[metadata] endpoint is missing", "INSYNC_DB_USER is not set", "type = \"nfs\""}},
		"half a key pair": {role: "node",
			config: "[node]\nlisten_port = 6061\ndata_dir = /tmp\n[master]\naddress = m:8443\n" +
				"[metadata]\nendpoint = ftp://x\nregion = r\n[objectstore]\ntype = filesystem\npath = /tmp\n",
			env:  []string{"INSYNC_METADATA_ACCESS_KEY_ID=x", "INSYNC_NODE_INDEX=-1"},
			want: []string{"set both INSYNC_METADATA_ACCESS_KEY_ID", "not an http(s)://", "INSYNC_NODE_INDEX"}},
		"syntax": {role: "node", config: "listen_port = 1\n", want: []string{"line 1", "outside any [section]"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "absent.conf")
			if c.config != "" {
				path = writeTemp(t, c.config)
			}
			cmd := exec.Command(standinBin, c.role, "-config", path)
			cmd.Env = append(os.Environ(), c.env...)
			out, err := cmd.CombinedOutput()
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Fatalf("exit %d (%v), want 1:\n%s", code, err, out)
			}
			for _, want := range c.want {
				if !strings.Contains(string(out), want) {
					t.Errorf("stderr lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

// TestSigV4 checks the signer against AWS's documented example (IAM ListUsers).
func TestSigV4(t *testing.T) {
	req, _ := http.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	now, _ := time.Parse("20060102T150405Z", "20150830T123600Z")
	signV4(req, nil, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", "us-east-1", "iam", now)
	want := "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, " +
		"SignedHeaders=content-type;host;x-amz-date, " +
		"Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	if got := req.Header.Get("Authorization"); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func masterConfigText(dbPort int, m *moto, port int, bucket string) string {
	return fmt.Sprintf(`# Generated by insync-operator from InSyncCloud test/test; edits are overwritten.

[cloud]
name = test
hostname = test.example
master_port = 443
storage_port = 6061

[master]
listen_port = %d

[database]
host = 127.0.0.1
port = %d
name = insync

[metadata]
endpoint = %s
region = us-east-1

[objectstore]
type = s3
endpoint = %s
region = us-east-1
bucket = %s
path_style = true
create_bucket = true
`, port, dbPort, m.endpoint(), m.endpoint(), bucket)
}

func awsEnv(prefix string) []string {
	return []string{
		"INSYNC_METADATA_ACCESS_KEY_ID=" + prefix + "meta", "INSYNC_METADATA_SECRET_ACCESS_KEY=meta-secret",
		"INSYNC_OBJECTSTORE_ACCESS_KEY_ID=" + prefix + "objs", "INSYNC_OBJECTSTORE_SECRET_ACCESS_KEY=objs-secret",
	}
}

func decode(t *testing.T, body string) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	return v
}

func getHealth(t *testing.T, s *standin) (int, map[string]any) {
	t.Helper()
	code, body := call(t, "GET", s.url("/health"), "")
	return code, decode(t, body)
}

func s3Client(t *testing.T, m *moto) *minio.Client {
	t.Helper()
	u, _ := url.Parse(m.endpoint())
	c, err := newObjectStore(objectStoreConfig{
		Type: "s3", Endpoint: u, Region: "us-east-1", Bucket: "-", PathStyle: true,
		Keys: &staticKeys{ID: "test", Secret: "test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*s3Store).client
}

func objectText(t *testing.T, m *moto, bucket, key string) string {
	t.Helper()
	store := &s3Store{client: s3Client(t, m), bucket: bucket}
	data, err := store.get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if data == nil {
		return "<absent>"
	}
	return string(data)
}

// TestCloudMaster runs the CloudMaster against a real MariaDB and moto: it does not listen
// until all three datastores answer, keeps markers in all three, turns /health to 503 naming a
// datastore that goes away (and back when it returns), and drains on SIGTERM.
func TestCloudMaster(t *testing.T) {
	m := theMoto(t)
	db := newMariaDB(t) // installed, not started yet
	port := freePort(t)
	env := append(awsEnv("cm"), "INSYNC_DB_USER="+db.user, "INSYNC_DB_PASSWORD="+db.password)
	cm := startStandin(t, "cloudmaster", masterConfigText(db.port, m, port, "insync-cm"), port, env...)

	// Not listening while the database is down, though metadata and objectstore answer.
	waitFor(t, "the database error in the log", 30*time.Second, func() bool {
		return strings.Contains(cm.proc.out.String(), "database: error: ")
	})
	time.Sleep(time.Second)
	if listening(port) {
		t.Fatal("listening before the database answers")
	}
	log := cm.proc.out.String()
	for _, want := range []string{"metadata: ok", "objectstore: ok", "objectstore: created bucket insync-cm",
		"connection refused", "waiting for the datastores"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	db.start()
	cm.waitListening(t)
	code, h := getHealth(t, cm)
	host, _ := os.Hostname()
	want := map[string]any{"role": "cloudmaster", "database": "ok", "metadata": "ok", "objectstore": "ok",
		"version": "5.9.1-test", "hostname": host}
	if code != 200 || fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("health %d %v, want 200 %v", code, h, want)
	}

	// Markers round-trip through all three stores.
	code, body := call(t, "GET", cm.url("/markers/before"), "")
	if code != 404 || body != `{"database":null,"metadata":null,"objectstore":null}`+"\n" {
		t.Errorf("absent marker: %d %s", code, body)
	}
	for _, v := range []string{"first", "second value"} { // idempotent, last write wins
		code, body = call(t, "PUT", cm.url("/markers/upgrade-1"), v)
		if code != 200 || body != `{"database":"ok","metadata":"ok","objectstore":"ok"}`+"\n" {
			t.Fatalf("PUT: %d %s", code, body)
		}
	}
	call(t, "PUT", cm.url("/markers/a.b_c-2"), "x")
	code, body = call(t, "GET", cm.url("/markers/upgrade-1"), "")
	if code != 200 || body != `{"database":"second value","metadata":"second value","objectstore":"second value"}`+"\n" {
		t.Errorf("GET: %d %s", code, body)
	}
	code, body = call(t, "GET", cm.url("/markers"), "")
	if code != 200 || body != `{"database":["a.b_c-2","upgrade-1"],"metadata":["a.b_c-2","upgrade-1"],"objectstore":["a.b_c-2","upgrade-1"]}`+"\n" {
		t.Errorf("list: %d %s", code, body)
	}
	if code, _ := call(t, "PUT", cm.url("/markers/.hidden"), "x"); code != 400 {
		t.Errorf("bad key: %d", code)
	}
	// ... and really are in each store.
	sqlDB := db.open()
	defer sqlDB.Close()
	var v string
	if err := sqlDB.QueryRow("SELECT v FROM insync_markers WHERE k = 'upgrade-1'").Scan(&v); err != nil || v != "second value" {
		t.Errorf("MySQL row: %q %v", v, err)
	}
	if got := objectText(t, m, "insync-cm", "markers/upgrade-1"); got != "second value" {
		t.Errorf("object markers/upgrade-1: %q", got)
	}
	u, _ := url.Parse(m.endpoint())
	dyn := newDynamo(metadataConfig{Endpoint: u, Region: "us-east-1", Keys: &staticKeys{"a", "b"}})
	if got, err := dyn.get(context.Background(), "upgrade-1"); err != nil || got == nil || *got != "second value" {
		t.Errorf("DynamoDB item: %v %v", got, err)
	}

	// The database goes away: 503 naming it, the others still ok; back to 200 when it returns.
	db.stop()
	waitFor(t, "health to report the database down", 30*time.Second, func() bool {
		code, h := getHealth(t, cm)
		return code == 503 && strings.HasPrefix(h["database"].(string), "error: ")
	})
	_, h = getHealth(t, cm)
	if h["metadata"] != "ok" || h["objectstore"] != "ok" {
		t.Errorf("health with the database down: %v", h)
	}
	code, body = call(t, "PUT", cm.url("/markers/during-outage"), "x")
	if code != 503 || !strings.Contains(body, `"database":"error: `) || !strings.Contains(body, `"metadata":"ok"`) {
		t.Errorf("PUT with the database down: %d %s", code, body)
	}
	db.start()
	waitFor(t, "health to recover", 30*time.Second, func() bool {
		code, _ := getHealth(t, cm)
		return code == 200
	})

	// SIGTERM: the in-flight request finishes, new connections are refused, exit 0.
	assertDrains(t, cm)
	if !regexp.MustCompile(`GET /markers/upgrade-1 200 `).MatchString(cm.proc.out.String()) {
		t.Errorf("no request log line:\n%s", cm.proc.out.String())
	}
}

func assertDrains(t *testing.T, s *standin) {
	t.Helper()
	type answer struct {
		code int
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		resp, err := http.Get(s.url("/sleep?ms=2000"))
		if err != nil {
			slow <- answer{err: err}
			return
		}
		resp.Body.Close()
		slow <- answer{code: resp.StatusCode}
	}()
	time.Sleep(300 * time.Millisecond) // the request is in flight
	start := time.Now()
	if err := s.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the port to close", 5*time.Second, func() bool { return !listening(s.port) })
	if s.proc.exited() {
		t.Fatal("exited before the in-flight request finished")
	}
	a := <-slow
	if a.err != nil || a.code != 200 {
		t.Fatalf("in-flight request: %d %v", a.code, a.err)
	}
	select {
	case <-s.proc.done:
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit after draining")
	}
	if code := s.proc.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("exited %s after SIGTERM, before the 2 s request could finish", elapsed)
	}
	if !strings.Contains(s.proc.out.String(), "drained; exiting") {
		t.Errorf("no drain log line:\n%s", s.proc.out.String())
	}
}

func nodeConfigText(port int, dataDir, masterAddr string, metaEndpoint, objectstore string) string {
	return fmt.Sprintf(`[cloud]
name = test
hostname = test.example
master_port = 443
storage_port = 6061

[node]
listen_port = %d
data_dir = %s

[master]
address = %s

[metadata]
endpoint = %s
region = us-east-1

[objectstore]
%s`, port, dataDir, masterAddr, metaEndpoint, objectstore)
}

func s3Section(m *moto, bucket string) string {
	return fmt.Sprintf("type = s3\nendpoint = %s\nregion = us-east-1\nbucket = %s\npath_style = true\ncreate_bucket = true\n",
		m.endpoint(), bucket)
}

// TestNode runs a storage node against its own moto: markers land in its data dir and the
// bucket and survive a restart on the same data dir; moto going away turns /health to 503.
func TestNode(t *testing.T) {
	m := startMoto(t)
	defer m.stop()
	dataDir := t.TempDir()
	port := freePort(t)
	masterPort := freePort(t) // nothing listens: the master is informational
	conf := nodeConfigText(port, dataDir, "127.0.0.1:"+strconv.Itoa(masterPort), m.endpoint(),
		s3Section(m, "insync-node"))
	env := append(awsEnv("node"), "INSYNC_NODE_INDEX=3", "INSYNC_NODE_NAME=test-node-3",
		"INSYNC_NODE_ADDRESS=test-node-3.test-node:6061")
	n := startStandin(t, "node", conf, port, env...)
	n.waitListening(t)
	code, h := getHealth(t, n)
	if code != 200 || h["role"] != "node" || h["index"] != float64(3) || h["name"] != "test-node-3" ||
		h["metadata"] != "ok" || h["objectstore"] != "ok" || h["datadir"] != "ok" ||
		!strings.HasPrefix(h["master"].(string), "error: ") || h["version"] != "5.9.1-test" {
		t.Fatalf("health %d %v", code, h)
	}

	code, body := call(t, "PUT", n.url("/markers/m1"), "node data")
	if code != 200 || body != `{"datadir":"ok","objectstore":"ok"}`+"\n" {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if data, err := os.ReadFile(filepath.Join(dataDir, "markers", "m1")); err != nil || string(data) != "node data" {
		t.Errorf("marker file: %q %v", data, err)
	}
	if got := objectText(t, m, "insync-node", "nodes/3/markers/m1"); got != "node data" {
		t.Errorf("object: %q", got)
	}

	// Restart on the same data dir: the marker is still there.
	n.proc.stop(30 * time.Second)
	n = startStandin(t, "node", conf, port, env...)
	n.waitListening(t)
	code, body = call(t, "GET", n.url("/markers/m1"), "")
	if code != 200 || body != `{"datadir":"node data","objectstore":"node data"}`+"\n" {
		t.Errorf("GET after restart: %d %s", code, body)
	}
	code, body = call(t, "GET", n.url("/markers"), "")
	if code != 200 || body != `{"datadir":["m1"],"objectstore":["m1"]}`+"\n" {
		t.Errorf("list: %d %s", code, body)
	}
	if code, _ := call(t, "GET", n.url("/markers/absent"), ""); code != 404 {
		t.Errorf("absent marker: %d", code)
	}

	// The master's port opens: reported, while readiness never depended on it.
	ln := listenOn(t, masterPort)
	defer ln.Close()
	waitFor(t, "the master to be reported ok", 10*time.Second, func() bool {
		_, h := getHealth(t, n)
		return h["master"] == "ok"
	})

	// moto goes away: metadata and objectstore turn to errors, 503; the data dir stays ok.
	m.stop()
	waitFor(t, "health to report moto down", 30*time.Second, func() bool {
		code, h := getHealth(t, n)
		return code == 503 && strings.HasPrefix(h["metadata"].(string), "error: ") &&
			strings.HasPrefix(h["objectstore"].(string), "error: ")
	})
	if _, h := getHealth(t, n); h["datadir"] != "ok" {
		t.Errorf("datadir: %v", h["datadir"])
	}
	// The data dir goes away too.
	if err := os.RemoveAll(dataDir); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "health to report the data dir", 10*time.Second, func() bool {
		_, h := getHealth(t, n)
		return strings.HasPrefix(h["datadir"].(string), "error: ")
	})
	assertDrains(t, n)
}

// TestNodeSharedFilesystem: `type = filesystem` keeps objects as files under the shared path.
func TestNodeSharedFilesystem(t *testing.T) {
	m := theMoto(t)
	objects := t.TempDir()
	port := freePort(t)
	conf := nodeConfigText(port, t.TempDir(), "127.0.0.1:1", m.endpoint(),
		"type = filesystem\npath = "+objects+"\n")
	n := startStandin(t, "node", conf, port, append(awsEnv("fs"), "INSYNC_NODE_INDEX=0")...)
	n.waitListening(t)
	if code, body := call(t, "PUT", n.url("/markers/k"), "v"); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if data, err := os.ReadFile(filepath.Join(objects, "nodes", "0", "markers", "k")); err != nil || string(data) != "v" {
		t.Errorf("object file: %q %v", data, err)
	}
	if code, body := call(t, "GET", n.url("/markers/k"), ""); code != 200 || body != `{"datadir":"v","objectstore":"v"}`+"\n" {
		t.Errorf("GET: %d %s", code, body)
	}
}

// TestBucketNotCreated: without create_bucket a missing bucket is an error, not created.
func TestBucketNotCreated(t *testing.T) {
	m := theMoto(t)
	u, _ := url.Parse(m.endpoint())
	store, err := newObjectStore(objectStoreConfig{Type: "s3", Endpoint: u, Region: "us-east-1",
		Bucket: "never-created", PathStyle: true, Keys: &staticKeys{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	err = store.check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bucket never-created does not exist") {
		t.Fatalf("check: %v", err)
	}
}

// TestRoleFromProgramName: a link named cloudmaster or node needs no role argument.
func TestRoleFromProgramName(t *testing.T) {
	for _, role := range []string{"cloudmaster", "node"} {
		link := filepath.Join(t.TempDir(), role)
		if err := os.Symlink(standinBin, link); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(link, "-config", "/nonexistent/"+role+".conf")
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 ||
			!strings.Contains(string(out), "standin "+role+": cannot read config") {
			t.Errorf("%s: exit %d: %s", role, cmd.ProcessState.ExitCode(), out)
		}
	}
	cmd := exec.Command(standinBin, "proxy")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), `unknown role "proxy"`) {
		t.Errorf("unknown role: exit %d: %s", cmd.ProcessState.ExitCode(), out)
	}
}
