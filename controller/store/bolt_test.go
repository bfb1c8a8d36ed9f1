package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/ovs-vnet/ovs-vnet/internal/testbed"
)

// TestBoltDamaged: a state file with a damaged data page, or one that is
// not a bbolt file at all, is refused at Open with ErrDamaged and a message
// saying what to do — no panic, and the file is left as it is.
func TestBoltDamaged(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateNetwork(ctx, network("blue", "10.1.0.0/16")); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		p := port(fmt.Sprintf("p%03d", i), "blue", fmt.Sprintf("10.1.%d.%d", 1+i/200, 1+i%200))
		if err := s.CreatePort(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	page := testbed.DamageBolt(t, path)
	before, _ := os.ReadFile(path)
	_, err = Open(path)
	if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "restore it from a backup or move it away") ||
		strings.Contains(err.Error(), "panic") {
		t.Fatalf("page %d damaged: Open: %v, want a refusal (ErrDamaged)", page, err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Fatal("Open changed the damaged file")
	}

	garbage := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a file of garbage: Open: %v, want ErrDamaged", err)
	}

	if err := os.WriteFile(garbage, before[:4096], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(garbage); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a file cut short: Open: %v, want ErrDamaged", err)
	}
}

// TestBoltBadRecord: a record that does not decode (written behind the
// store's back) makes Load fail with ErrDamaged, naming the record.
func TestBoltBadRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(networksBucket).Put([]byte("blue"), []byte("{not json")) })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(context.Background()); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "networks/blue") {
		t.Fatalf("Load: %v, want ErrDamaged naming networks/blue", err)
	}
}
