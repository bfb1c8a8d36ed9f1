package testbed

import (
	"encoding/binary"
	"os"
	"testing"
)

// DamageBolt overwrites with garbage the last leaf page in use of the bbolt
// file at path (a page holding keys and values, as a failing disk would
// damage it), and returns its number. The file must be closed.
func DamageBolt(tb testing.TB, path string) int {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	// bbolt's layout: pages of the OS page size (bolt.Options.PageSize
	// unset), each with a header of id (8 bytes), flags (2), count (2) and
	// overflow (4). Pages 0 and 1 are metas: after the header come magic,
	// version, page size, flags (4 each), the root bucket (16), the
	// freelist's page (8), the high-water mark (8) and the txid (8); the
	// newer txid is in force. The freelist page lists free page ids
	// (count 0xffff: the real count is the first of them).
	const (
		leafFlag   = 0x02
		header     = 16
		freelistAt = header + 32
		txidAt     = header + 48
	)
	size := os.Getpagesize()
	page := func(i int) []byte { return raw[i*size : (i+1)*size] }
	meta := page(0)
	if binary.LittleEndian.Uint64(page(1)[txidAt:]) > binary.LittleEndian.Uint64(meta[txidAt:]) {
		meta = page(1)
	}
	freelist := raw[int(binary.LittleEndian.Uint64(meta[freelistAt:]))*size:]
	free := map[uint64]bool{}
	count, ids := int(binary.LittleEndian.Uint16(freelist[10:])), freelist[header:]
	if count == 0xffff {
		count, ids = int(binary.LittleEndian.Uint64(ids)), ids[8:]
	}
	for k := range count {
		free[binary.LittleEndian.Uint64(ids[8*k:])] = true
	}
	leaf := -1
	for i := 2; (i+1)*size <= len(raw); i++ {
		p := page(i)
		if binary.LittleEndian.Uint64(p) == uint64(i) && binary.LittleEndian.Uint16(p[8:])&leafFlag != 0 && !free[uint64(i)] {
			leaf = i
		}
	}
	if leaf < 0 {
		tb.Fatalf("%s: no leaf page in use", path)
	}
	p := page(leaf)
	for j := range p {
		p[j] = byte(0xa5 ^ j)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	return leaf
}
