package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
)

// objectStore is the `[objectstore]` section: an S3 bucket or a shared-filesystem directory.
type objectStore interface {
	check(ctx context.Context) error
	put(ctx context.Context, key string, value []byte) error
	// get returns nil when the object does not exist.
	get(ctx context.Context, key string) ([]byte, error)
	// list returns the keys under prefix, without the prefix, sorted.
	list(ctx context.Context, prefix string) ([]string, error)
}

func newObjectStore(c objectStoreConfig) (objectStore, error) {
	if c.Type == "filesystem" {
		return &fsStore{root: c.Path}, nil
	}
	lookup := minio.BucketLookupDNS
	if c.PathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(c.Endpoint.Host, &minio.Options{
		Creds:        awsCredentials(c.Keys),
		Secure:       c.Endpoint.Scheme == "https",
		Region:       c.Region,
		BucketLookup: lookup,
		MaxRetries:   2,
	})
	if err != nil {
		return nil, fmt.Errorf("objectstore: %w", err)
	}
	return &s3Store{client: client, bucket: c.Bucket, region: c.Region, create: c.CreateBucket}, nil
}

type s3Store struct {
	client *minio.Client
	bucket string
	region string
	create bool
}

// check: the bucket exists (HEAD bucket proves the endpoint answers and takes our keys), or is
// created when `create_bucket = true`.
func (s *s3Store) check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if !s.create {
		return fmt.Errorf("bucket %s does not exist (and create_bucket is not true)", s.bucket)
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: s.region})
	if code := minio.ToErrorResponse(err).Code; err != nil &&
		code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
		return fmt.Errorf("create bucket %s: %w", s.bucket, err)
	}
	logf("objectstore: created bucket %s", s.bucket)
	return nil
}

func (s *s3Store) put(ctx context.Context, key string, value []byte) error {
	_, err := s.client.PutObject(ctx, s.bucket, key, bytes.NewReader(value), int64(len(value)),
		minio.PutObjectOptions{ContentType: "text/plain"})
	return err
}

func (s *s3Store) get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err == nil {
		defer obj.Close()
		var data []byte
		data, err = io.ReadAll(obj)
		if err == nil {
			return data, nil
		}
	}
	if resp := minio.ToErrorResponse(err); resp.Code == "NoSuchKey" ||
		(resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket") {
		return nil, nil
	}
	return nil, err
}

func (s *s3Store) list(ctx context.Context, prefix string) ([]string, error) {
	keys := []string{}
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{
		Prefix: prefix, Recursive: true,
	}) {
		if obj.Err != nil {
			return nil, obj.Err
		}
		keys = append(keys, strings.TrimPrefix(obj.Key, prefix))
	}
	sort.Strings(keys)
	return keys, nil
}

// fsStore keeps objects as files under root (`type = filesystem`, a shared volume).
type fsStore struct{ root string }

func (f *fsStore) check(context.Context) error {
	return probeDir(f.root)
}

func (f *fsStore) path(key string) string {
	return filepath.Join(f.root, filepath.FromSlash(key))
}

func (f *fsStore) put(_ context.Context, key string, value []byte) error {
	return writeFileAtomic(f.path(key), value)
}

func (f *fsStore) get(_ context.Context, key string) ([]byte, error) {
	data, err := os.ReadFile(f.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func (f *fsStore) list(_ context.Context, prefix string) ([]string, error) {
	return listFiles(f.path(prefix))
}

// probeDir proves dir exists and is writable by creating and removing a file in it.
func probeDir(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".standin-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_, werr := f.WriteString("probe")
	cerr := f.Close()
	rerr := os.Remove(name)
	return errors.Join(werr, cerr, rerr)
}

// writeFileAtomic writes path through a temporary file in the same directory, so a reader (or a
// crash) never sees half a file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// listFiles returns the names of the regular files directly in dir (none when dir is absent),
// sorted, without temporary files.
func listFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{}, nil
	}
	if err != nil {
		return nil, err
	}
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}
