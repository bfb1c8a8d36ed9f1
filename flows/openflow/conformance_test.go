package openflow

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// conformanceDir holds other projects' OpenFlow 1.3 vectors (see its README);
// they are read in place, never copied.
const conformanceDir = "../../../shared/conformance/openflow13"

// supported lists the vector files the codec decodes and re-encodes byte for
// byte. The list only grows; every other .packet file must fail with
// ErrUnsupported.
var supported = []string{
	"4-10-ofp_hello.packet",
	"4-13-ofp_echo_request.packet",
	"4-14-ofp_echo_reply.packet",
	"4-17-ofp_barrier_request.packet",
	"4-18-ofp_barrier_reply.packet",
	"4-5-ofp_features_request.packet",
	"4-6-ofp_features_reply.packet",
	"libofproto-OFP13-echo_reply.packet",
	"libofproto-OFP13-echo_request.packet",
	"libofproto-OFP13-features_reply.packet",
	"libofproto-OFP13-hello.packet",
}

func conformanceFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(conformanceDir, "*.packet"))
	if err != nil || len(files) == 0 {
		msg := "OpenFlow 1.3 conformance vectors expected in " + conformanceDir + " (shared/conformance/openflow13 beside the repository)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return files
}

func TestConformance(t *testing.T) {
	files := conformanceFiles(t)
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, m, err := Unmarshal(raw)
			if !slices.Contains(supported, name) {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("not in the supported list, so it must fail with ErrUnsupported; got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			h, _ := ParseHeader(raw)
			again, err := Marshal(h.Xid, m)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(again, raw) {
				t.Fatalf("round trip differs:\n got %x\nwant %x", again, raw)
			}
		})
	}
	for _, s := range supported {
		if !slices.Contains(files, filepath.Join(conformanceDir, s)) {
			t.Errorf("supported list names %s, which is not among the vectors", s)
		}
	}
}

func TestConformanceTruncated(t *testing.T) {
	conformanceFiles(t)
	raw, err := os.ReadFile(filepath.Join(conformanceDir, "libofproto-OFP13-flow_mod.truncated64"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Unmarshal(raw); !errors.Is(err, ErrMalformed) {
		t.Fatalf("truncated flow_mod: want ErrMalformed, got %v", err)
	}
	if !strings.Contains(conformanceDir, "shared") {
		t.Fatal("vectors must be read from shared/, not copied")
	}
}

func FuzzUnmarshal(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(conformanceDir, "*"))
	for _, file := range files {
		if raw, err := os.ReadFile(file); err == nil {
			f.Add(raw)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, m, err := Unmarshal(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		again, err := Marshal(h.Xid, m)
		if err != nil {
			t.Fatalf("decoded but cannot encode: %v", err)
		}
		if _, _, err := Unmarshal(again); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}
