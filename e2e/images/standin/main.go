// Command standin stands in for the inSync CloudMaster and storage node images in end-to-end
// tests. It honours the contract the operator renders (docs/images.md): it reads the config
// file and environment the operator gives the pod, connects to MySQL, the DynamoDB-compatible
// metadata store and the object store, listens on its port only once they answer, serves
// /health and a small marker API, and drains on SIGTERM.
//
//	standin cloudmaster [-config PATH]   (default /etc/inSyncCloud/cloudmaster.conf)
//	standin node [-config PATH]          (default /etc/inSyncStorage/storage.conf)
//
// The role may also come from the program's name (a link called cloudmaster or node), and the
// config path from INSYNC_CONFIG.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-sql-driver/mysql"

	// CA roots for https endpoints when the image has none (a static binary on scratch).
	_ "golang.org/x/crypto/x509roots/fallback"
)

var logger = log.New(os.Stdout, "", log.LstdFlags|log.LUTC|log.Lmicroseconds|log.Lmsgprefix)

func logf(format string, args ...any) { logger.Printf(format, args...) }

func usage() {
	fmt.Fprintf(os.Stderr, "usage: standin cloudmaster|node [-config PATH]\n")
}

func main() {
	os.Exit(run(os.Args))
}

func run(args []string) int {
	role := filepath.Base(args[0])
	rest := args[1:]
	if role != "cloudmaster" && role != "node" {
		if len(rest) == 0 {
			usage()
			return 2
		}
		role, rest = rest[0], rest[1:]
	}
	var defaultPath string
	switch role {
	case "cloudmaster":
		defaultPath = masterConfigPath
	case "node":
		defaultPath = nodeConfigPath
	default:
		fmt.Fprintf(os.Stderr, "standin: unknown role %q\n", role)
		usage()
		return 2
	}
	if v := os.Getenv("INSYNC_CONFIG"); v != "" {
		defaultPath = v
	}
	flags := flag.NewFlagSet(role, flag.ContinueOnError)
	configPath := flags.String("config", defaultPath, "config file")
	if err := flags.Parse(rest); err != nil {
		return 2
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "standin %s: unexpected arguments %q\n", role, flags.Args())
		return 2
	}
	logger.SetPrefix(role + " ")
	_ = mysql.SetLogger(logger)
	s, err := loadSettings()
	if err != nil {
		fmt.Fprintf(os.Stderr, "standin %s: %v\n", role, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if role == "cloudmaster" {
		err = runMaster(ctx, *configPath, s)
	} else {
		err = runNode(ctx, *configPath, s)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "standin %s: %v\n", role, err)
		return 1
	}
	return 0
}
