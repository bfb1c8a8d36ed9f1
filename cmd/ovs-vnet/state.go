package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// stateFiles are the state dir and its database as far as this start
// creates them ("" where they were there before). A start refused on an
// empty state (controller.ErrEmptyState) removes them again: the next
// start must find what the operator left — a missing dir to mount or
// restore — and not a database of ours that looks like a state.
type stateFiles struct{ dir, db string }

// makeStateDir makes the state dir if it is missing.
func makeStateDir(dir string) (stateFiles, error) {
	var f stateFiles
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		f.dir = dir
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return f, fmt.Errorf("state dir: %w", err)
	}
	db := filepath.Join(dir, stateDB)
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		f.db = db
	}
	return f, nil
}

// remove deletes what this start made; the store is closed. The dir goes
// only if empty.
func (f stateFiles) remove() error {
	var err error
	if f.db != "" {
		err = os.Remove(f.db)
	}
	if f.dir != "" {
		err = errors.Join(err, os.Remove(f.dir))
	}
	return err
}

// stateDB is the single-host store's file in the state dir.
const stateDB = "state.db"

// emptyStateRefusal explains controller.ErrEmptyState to the operator.
func emptyStateRefusal(cfg config, f stateFiles, err error) error {
	where := "the state database " + filepath.Join(cfg.stateDir, stateDB)
	switch {
	case cfg.cluster.etcdEndpoints != "":
		where = fmt.Sprintf("the cluster's state in etcd %s under %s", cfg.cluster.etcdEndpoints, cfg.cluster.etcdPrefix)
	case f.dir != "":
		where += " (the state dir was missing; it is not left behind)"
	case f.db != "":
		where += " (it was missing; it is not left behind)"
	}
	return fmt.Errorf("refusing to start on %s: %w, which a start would delete. "+
		"If the state was lost (an unmounted volume, another --state-dir or --etcd-prefix), restore it and start again; "+
		"to delete them deliberately, start once with --reset-dataplane. Nothing was deleted: the dataplane forwards as before", where, err)
}
